package cache

import "context"

// WaitIdle lets tests wait until every load has ended and every loaded
// value's store has landed or failed.
func (c *Cache) WaitIdle(ctx context.Context) { c.waitIdle(ctx) }
