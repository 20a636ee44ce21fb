package cache

import (
	"context"
	"reflect"
	"time"
)

// Early refresh (refresh_ahead, [RefreshAhead]): a GetOrSet hit on an entry
// past the given fraction of its ttl is served at once, and starts one
// background reload of the key: one per process (the flight), and one
// across processes when the store is a [Locker] (the first to take the
// key's lease reloads; the others see the lease, or the new entry, and do
// nothing). So a key read steadily never makes a request wait for its load.

// refreshBackoff reports whether an early refresh of key failed less than
// the fail-safe throttle ago, so that a failing source is not asked again
// on every hit of the refresh window.
func (c *Cache) refreshBackoff(key string, now time.Time) bool {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	until, ok := c.refreshFails[key]
	if !ok {
		return false
	}
	if now.Before(until) {
		return true
	}
	delete(c.refreshFails, key)
	return false
}

// maxRefreshFails bounds the keys whose failed refresh is remembered.
const maxRefreshFails = 4096

// refreshFailed remembers that key's early refresh failed, until until.
// Past maxRefreshFails keys it forgets the expired ones, and if that is not
// enough, all of them: at worst a failing source is asked once more.
func (c *Cache) refreshFailed(key string, until time.Time) {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	if c.refreshFails == nil {
		c.refreshFails = make(map[string]time.Time)
	}
	if len(c.refreshFails) >= maxRefreshFails {
		now := time.Now()
		for k, t := range c.refreshFails {
			if !now.Before(t) {
				delete(c.refreshFails, k)
			}
		}
		if len(c.refreshFails) >= maxRefreshFails {
			clear(c.refreshFails)
		}
	}
	c.refreshFails[key] = until
}

// refresh starts a background reload of key, whose fresh entry e is due for
// it, unless a load of key as this type is already running.
func (c *Cache) refresh(ctx context.Context, key string, typ reflect.Type, ttl time.Duration, p policy, e Entry,
	load func(context.Context) (any, error), decode func([]byte) (any, error)) {
	f, leader := c.joinFlight(key, typ, false)
	if !leader {
		return
	}
	p.outcome = nil
	j := &loadJob{
		key: key, ttl: ttl, p: p, seen: e.Created, storeOK: true, refresh: true,
		load: load, decode: decode,
	}
	go c.runFlight(ctx, f, j)
}
