package cache

import (
	"context"
	"time"
)

// WaitIdle lets tests wait until every load has ended and every loaded
// value's store has landed or failed.
func (c *Cache) WaitIdle(ctx context.Context) { c.waitIdle(ctx) }

// LocalCopy returns the value of c's fail-safe copy of key, if any.
func (c *Cache) LocalCopy(key string) (string, bool) {
	s := c.localStale(key)
	return string(s.e.Value), s.ok
}

// RefreshFailsLen returns how many keys' failed refreshes c remembers.
func (c *Cache) RefreshFailsLen() int {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	return len(c.refreshFails)
}

// CurrentAt is Current as it would answer at now.
func (s *Stamp) CurrentAt(now time.Time) bool { return s.currentAt(now.Sub(s.made), now) }
