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
	key   string
	shard *atomic.Uint64 // the counters of the key's writes, as the store keeps them
	all   *atomic.Uint64
	sum   uint64        // their sum before the value was read
	made  time.Time     // when Vouch made it, with the monotonic clock's reading
	life  time.Duration // from made, by the monotonic clock, until the entry expires in the store
	fresh time.Time     // when the value stops being fresh or is due for an early refresh, by the wall clock as GetOrSet judges it (zero: no such bound)
	raw   []byte        // the entry's bytes as the store held them
	tags  []string      // the keys of the tags' tokens, for a tagged value
	state *stampState   // shared by the copies of s
}

// stampState is what the copies of a Stamp share.
type stampState struct {
	// touched is when (since made) the stamp last let the store see a read
	// of its keys: a value used from a stamp is not read from the store,
	// which would otherwise take it for unused and evict it first.
	touched atomic.Int64
	// gone is set when a touch found the entry (or a tag's token) no
	// longer stored: evicted. The eviction also changes the key's version,
	// but the store reports it just before the entry leaves, so a Vouch at
	// that moment could miss it; the touch catches it within touchEvery.
	gone atomic.Bool
}

// touchEvery is the longest a stamp in use goes without letting the store
// see a read of its keys; besides, one use in 1<<touchSampleBits (picked
// by a hash of the clock's reading) does, so that the store sees a value
// used often as used often.
const (
	touchEvery      = time.Second
	touchSampleBits = 6
)

// versioner is implemented by an in-process store that counts its writes
// (the in-memory store), so that a read can be vouched for (see Stamp).
type versioner interface {
	// Version returns the two counters whose sum changes with every write
	// to key completed after they are read, and with its eviction.
	Version(key string) (shard, all *atomic.Uint64)
	// BorrowEntry is Borrow, with how long the entry has left (0: it
	// never expires), on the store's own clock.
	BorrowEntry(ctx context.Context, key string) ([]byte, time.Duration, bool, error)
}

// Vouch returns a Stamp for value, which a [Get] or [GetOrSet] of key on c
// returned as a [SharedBytes] (the very bytes the store holds), when c can
// vouch for it: the store is in this process and counts its writes (the
// in-memory store), the key still holds those very bytes, fresh, and not
// yet due for an early refresh under opts (those of the GetOrSet calls the
// stamp stands in for). ok is false otherwise: a store shared with other
// processes (their writes are not seen here), a disabled or closed cache, a
// value the store no longer holds, a stale value. Vouch reads the store
// once, and once more per tag of a tagged value.
func (c *Cache) Vouch(key string, value SharedBytes, opts ...GetOrSetOption) (s Stamp, ok bool) {
	vs, isVersioner := c.inner.(versioner)
	if !isVersioner || len(value) == 0 || c.closed.Load() || keyProblem(key) != "" {
		return Stamp{}, false
	}
	p := c.policy
	if len(opts) > 0 {
		p = p.with(opts)
	}
	ctx := context.Background()
	now := time.Now() // before the read: the entry's time left is measured after it
	shard, all := vs.Version(key)
	sum := shard.Load() + all.Load() // before the read: a write after it changes the sum
	b, left, found, err := vs.BorrowEntry(ctx, key)
	if err != nil || !found {
		return Stamp{}, false
	}
	e, err := ParseEntry(b)
	if err != nil || len(e.Value) != len(value) || unsafe.SliceData(e.Value) != unsafe.SliceData(value) {
		return Stamp{}, false // not the bytes the caller read: they are an older entry's
	}
	if !e.freshAt(now) {
		return Stamp{}, false
	}
	life := MaxTTL // never expires: a write (or an eviction) is what ends it
	if left > 0 {
		life = left
	}
	fresh := e.Fresh
	if p.refreshAhead > 0 && !e.Fresh.IsZero() && !e.Created.IsZero() {
		// From then on a hit starts an early refresh: GetOrSet must see it.
		fresh = e.Created.Add(time.Duration(float64(e.Fresh.Sub(e.Created)) * p.refreshAhead))
	}
	// A tag's token read after the counters: an invalidation since writes
	// it (a bookkeeping key, which changes every key's sum), and its expiry
	// makes the entry read as missing, so it bounds the stamp too.
	var tags []string
	for _, t := range e.Tags {
		tk := TagKeyPrefix + t.Tag
		tok, tokLeft, found, err := vs.BorrowEntry(ctx, tk)
		if err != nil || !found || !sameToken(tok, t.Token) {
			return Stamp{}, false
		}
		if tokLeft > 0 {
			life = min(life, tokLeft)
		}
		tags = append(tags, tk)
	}
	if !fresh.IsZero() && !now.Before(fresh) {
		return Stamp{}, false
	}
	return Stamp{c: c, key: key, shard: shard, all: all, sum: sum, made: now, life: life, fresh: fresh,
		raw: b, tags: tags, state: new(stampState)}, true
}

// Current reports whether the value s vouches for is still what a
// [GetOrSet] of its key would return now as a fresh hit: no write has
// reached the key since it was read, it has not expired or been evicted,
// it is not due for an early refresh, and the cache is open. elapsed is
// how long ago [Cache.Vouch] made s, by the monotonic clock (so that a
// caller need not read the clock again). A true answer counts as a hit of
// the cache, as the read it saves would have.
func (s *Stamp) Current() (elapsed time.Duration, ok bool) {
	if s.c == nil {
		return 0, false
	}
	if s.fresh.IsZero() {
		elapsed = time.Since(s.made) // one reading, of the monotonic clock alone
		return elapsed, s.currentAt(elapsed, time.Time{})
	}
	now := time.Now()
	elapsed = now.Sub(s.made)
	return elapsed, s.currentAt(elapsed, now)
}

// currentAt is Current, elapsed after s was made and at wall-clock time
// now (read only when s has a freshness bound).
func (s *Stamp) currentAt(elapsed time.Duration, now time.Time) bool {
	if s.c == nil || s.shard.Load()+s.all.Load() != s.sum || elapsed >= s.life ||
		(!s.fresh.IsZero() && !now.Before(s.fresh)) || s.c.closed.Load() || s.state.gone.Load() {
		return false
	}
	last := s.state.touched.Load()
	if (uint64(elapsed)*0x9E3779B97F4A7C15)>>(64-touchSampleBits) == 0 || elapsed-time.Duration(last) >= touchEvery {
		if s.state.touched.CompareAndSwap(last, int64(elapsed)) && !s.touch() {
			s.state.gone.Store(true)
			return false
		}
	}
	s.c.stats.hits.add()
	return true
}

// touch reads s's key, and its tags' tokens, so that the store sees them
// in use; it reports whether they still hold what s was made from.
func (s *Stamp) touch() bool {
	b := s.c.borrow
	if b == nil {
		return true
	}
	ctx := context.Background()
	cur, found, err := b.Borrow(ctx, s.key)
	if err != nil {
		return true // closed: Current says so by itself
	}
	if !found || unsafe.SliceData(cur) != unsafe.SliceData(s.raw) {
		return false
	}
	for _, tk := range s.tags {
		if _, found, err := b.Borrow(ctx, tk); err == nil && !found {
			return false
		}
	}
	return true
}
