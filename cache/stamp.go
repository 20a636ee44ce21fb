package cache

import (
	"context"
	"sync/atomic"
	"time"
	"unsafe"
)

// A Stamp vouches, in this process, for a value that a read of a cache
// returned: until a write reaches the key (in this process: the store is
// in it) or the value stops being fresh, it is still what [GetOrSet] would
// return for the key, as a fresh hit. [Cache.Vouch] makes one; Current
// checks it in a few nanoseconds, without reading the store. It is what a
// layer that keeps ready forms of the values it reads (httpcache keeps
// whole responses) needs to stay exact without paying for a read per use.
//
// The zero Stamp vouches for nothing.
type Stamp struct {
	c     *Cache
	shard *atomic.Uint64 // the counters of the key's writes, as the store keeps them
	all   *atomic.Uint64
	sum   uint64        // their sum before the value was read
	made  time.Time     // when Vouch made it, with the monotonic clock's reading
	life  time.Duration // from made until the value stops being a fresh hit: its expiry, its freshness, or an early refresh
}

// versioner is implemented by an in-process store that counts its writes
// (the in-memory store), so that a read can be vouched for (see Stamp).
type versioner interface {
	// Version returns the two counters whose sum changes with every write
	// to key completed after they are read.
	Version(key string) (shard, all *atomic.Uint64)
	// BorrowEntry is Borrow, with the time the entry expires (zero:
	// never).
	BorrowEntry(ctx context.Context, key string) ([]byte, time.Time, bool, error)
}

// Vouch returns a Stamp for value, which a [Get] or [GetOrSet] of key on c
// returned as a [SharedBytes] (the very bytes the store holds), when c can
// vouch for it: the store is in this process and counts its writes (the
// in-memory store), the key still holds those very bytes, fresh, and not
// yet due for an early refresh under opts (those of the GetOrSet calls the
// stamp stands in for). ok is false otherwise: a store shared with other
// processes (their writes are not seen here), a disabled or closed cache, a
// value the store no longer holds, a stale value. Vouch reads the store
// once.
func (c *Cache) Vouch(key string, value SharedBytes, opts ...GetOrSetOption) (s Stamp, ok bool) {
	vs, isVersioner := c.inner.(versioner)
	if !isVersioner || len(value) == 0 || c.closed.Load() || keyProblem(key) != "" {
		return Stamp{}, false
	}
	p := c.policy
	if len(opts) > 0 {
		p = p.with(opts)
	}
	shard, all := vs.Version(key)
	sum := shard.Load() + all.Load() // before the read: a write after it changes the sum
	b, expires, found, err := vs.BorrowEntry(context.Background(), key)
	if err != nil || !found {
		return Stamp{}, false
	}
	e, err := ParseEntry(b)
	if err != nil || e.Absent || len(e.Value) != len(value) || unsafe.SliceData(e.Value) != unsafe.SliceData(value) {
		return Stamp{}, false // not the bytes the caller read: they are an older entry's
	}
	now := time.Now()
	if !e.freshAt(now) {
		return Stamp{}, false
	}
	until := expires
	if until.IsZero() {
		until = now.Add(MaxTTL) // never expires: a write is what ends it
	}
	if !e.Fresh.IsZero() && e.Fresh.Before(until) {
		until = e.Fresh
	}
	if p.refreshAhead > 0 && !e.Fresh.IsZero() && !e.Created.IsZero() {
		due := e.Created.Add(time.Duration(float64(e.Fresh.Sub(e.Created)) * p.refreshAhead))
		if due.Before(until) {
			until = due // from then on a hit starts an early refresh: GetOrSet must see it
		}
	}
	if len(e.Tags) > 0 {
		// The tokens are read after the counters: an invalidation of a tag
		// since writes a bookkeeping key, which changes every key's sum.
		if hold, err := c.tagsHold(context.Background(), e); err != nil || !hold {
			return Stamp{}, false
		}
	}
	if !now.Before(until) {
		return Stamp{}, false
	}
	return Stamp{c: c, shard: shard, all: all, sum: sum, made: now, life: until.Sub(now)}, true
}

// Current reports whether the value s vouches for is still what a
// [GetOrSet] of its key would return now as a fresh hit: no write has
// reached the key since it was read, its freshness has not run out, it is
// not due for an early refresh, and the cache is open. elapsed is how long
// ago [Cache.Vouch] made s, by the monotonic clock (one reading of it,
// which a caller can use rather than read the clock again). A true answer
// counts as a hit of the cache, as the read it saves would have.
func (s *Stamp) Current() (elapsed time.Duration, ok bool) {
	if s.c == nil {
		return 0, false
	}
	elapsed = time.Since(s.made)
	return elapsed, s.currentAfter(elapsed)
}

// currentAfter is Current, elapsed after s was made.
func (s *Stamp) currentAfter(elapsed time.Duration) bool {
	if s.c == nil || s.shard.Load()+s.all.Load() != s.sum || elapsed >= s.life || s.c.closed.Load() {
		return false
	}
	s.c.stats.hits.add()
	return true
}
