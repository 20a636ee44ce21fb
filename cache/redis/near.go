package redis

import (
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/redis/rueidis"

	"github.com/ushka-go/ushka/internal/memstore"
)

// nearMaxAge is the longest a value stays in the near cache without being
// read from Redis again, whatever its ttl. Invalidations keep the near
// cache exact; this bounds what a change Redis never reported (a network
// partition that left a connection open) could cost.
const nearMaxAge = time.Minute

// nearSafety is taken off the time a near-cached value has left, so that it
// leaves the near cache before Redis expires it: Redis counts ttls in whole
// milliseconds, and rueidis stamps the reply's expiry in whole
// milliseconds of the wall clock.
const nearSafety = 2 * time.Millisecond

// nearOverhead is the heap otter holds per near-cache entry besides the
// arrays of its key and value: memstore's measured overhead (its doc
// comment) plus the 16 bytes by which a nearEntry is larger than its entry.
// TestNearCacheBoundsHeap measures it.
const nearOverhead = 181

// nearCache is the process's copy of the entries it read from Redis: the
// near cache of near_cache = true. It is one bounded map for every
// connection of the Store, keyed by the key without the prefix.
//
// Redis keeps it exact. Each read that fills it runs on a connection with
// client tracking on (rueidis's client-side caching: CLIENT TRACKING ON
// OPTOUT, then MULTI, PTTL, GET, EXEC), so that Redis sends that connection
// an invalidation when the key changes, by any client, after the read. A
// connection's replies and invalidations come in the order Redis ran them,
// so a value is in the map from its reply until the invalidation that
// follows it. Each connection is a nearView, the rueidis.CacheStore that
// rueidis calls with those replies and invalidations.
//
// What that order does not cover is this process's own writes: Redis sends
// their invalidation after the write's reply (redis/rueidis#534), and a
// reply read before the write may still be on its way. So a write of this
// process forgets the key once it has returned (forget): it removes the
// value and marks every read of the key then outstanding on any
// connection, whose replies are then not kept (nearView.skip).
// Read-your-writes holds from the moment the write returns.
//
// Reads that fill it run to their end even when their caller gives up
// (Store.nearMiss), so that each reply is matched with its own read.
type nearCache struct {
	prefix string
	data   *otter.Cache[string, nearEntry]
	start  time.Time // the monotonic clock's origin for entries' expiry

	onChange atomic.Pointer[func(key string)] // told of every invalidation

	// keepAbsent: a key read as missing is near-cached as missing. Not on
	// a Cluster: when an empty slot moves to another master, nothing is
	// deleted, so the old master, which tracks the missing key, sends no
	// invalidation when the key is written on the new one.
	keepAbsent atomic.Bool

	mu    sync.Mutex
	views map[*nearView]struct{}
}

// nearEntry is a near-cached answer: a value, or absent for a key that was
// missing (Redis tracks those too, and a later write invalidates them).
type nearEntry struct {
	value  []byte
	absent bool
	expire time.Duration // since nearCache.start
	view   *nearView     // the connection whose tracking covers it
}

func newNearCache(prefix string, maxBytes int64) (*nearCache, error) {
	n := &nearCache{prefix: prefix, start: time.Now(), views: map[*nearView]struct{}{}}
	c, err := otter.New(&otter.Options[string, nearEntry]{
		MaximumWeight: uint64(maxBytes),
		Weigher:       weighNear,
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, nearEntry]) time.Duration {
			return max(e.Value.expire-n.now(), 1)
		}),
	})
	if err != nil {
		return nil, err
	}
	n.data = c
	return n, nil
}

// weighNear is the heap an entry holds, as memstore weighs its own.
func weighNear(key string, e nearEntry) uint32 {
	w := memstore.AllocSize(len(key)) + memstore.AllocSize(cap(e.value)) + nearOverhead
	return uint32(min(w, math.MaxUint32))
}

func (n *nearCache) now() time.Duration { return time.Since(n.start) }

// get returns key's near-cached answer, if it has one that is still good:
// its connection is up and Redis has not expired it. otter checks the
// expiry: it was given the time left until e.expire when e was stored, and
// counts it on the same monotonic clock.
func (n *nearCache) get(key string) (nearEntry, bool) {
	e, ok := n.data.GetIfPresent(key)
	if !ok || e.view.dead.Load() {
		return nearEntry{}, false
	}
	return e, true
}

// forget is called after every write of this process to key, whatever its
// outcome: no read outstanding now is kept, and the value is dropped.
// Marking the reads first matters: a reply taken in between would put the
// old value back.
func (n *nearCache) forget(key string) {
	n.mu.Lock()
	for v := range n.views {
		v.skip(key)
	}
	n.mu.Unlock()
	n.data.Invalidate(key)
}

// forgetAll is forget of every key, after a Clear.
func (n *nearCache) forgetAll() {
	n.mu.Lock()
	for v := range n.views {
		v.skip("")
	}
	n.mu.Unlock()
	n.flush()
}

// flush drops every entry. Called when a connection is lost or Redis
// flushed a database: every connection's, since a failover or a restart
// may have changed keys that another connection's tracking does not cover.
func (n *nearCache) flush() { n.data.InvalidateAll() }

// close drops every entry and stops otter's goroutine.
func (n *nearCache) close() {
	n.flush()
	n.data.StopAllGoroutines()
}

// usage returns the entries held and their weight.
func (n *nearCache) usage() (int, int64) {
	return n.data.EstimatedSize(), int64(n.data.WeightedSize())
}

// newView is the rueidis.NewCacheStoreFn: one view per connection.
func (n *nearCache) newView(rueidis.CacheStoreOption) rueidis.CacheStore {
	v := &nearView{n: n, reads: map[string]*nearReads{}}
	n.mu.Lock()
	n.views[v] = struct{}{}
	n.mu.Unlock()
	return v
}

// nearView is the near cache as one connection sees it: the
// rueidis.CacheStore rueidis calls with that connection's tracked reads,
// their replies and its invalidations.
type nearView struct {
	n    *nearCache
	dead atomic.Bool // the connection is closed: its entries are not served

	mu    sync.Mutex
	reads map[string]*nearReads // outstanding reads, by key without the prefix
}

// nearReads counts a key's outstanding reads on one connection.
type nearReads struct {
	n     int           // sent, not yet answered
	skip  int           // how many of the next replies not to keep
	since time.Duration // when the oldest of them was sent, at the latest
}

var _ rueidis.CacheStore = (*nearView)(nil)

// Flight implements rueidis.CacheStore. It never answers from the cache:
// the Store looked there before it called DoCache. It counts the read, so
// that its reply can be matched and its expiry reckoned from when it was
// sent.
func (v *nearView) Flight(key, cmd string, _ time.Duration, now time.Time) (rueidis.RedisMessage, rueidis.CacheEntry) {
	k, ok := strings.CutPrefix(key, v.n.prefix)
	if !ok || cmd != "GET" {
		return rueidis.RedisMessage{}, nil // not ours: its reply is not kept
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.reads == nil { // closed
		return rueidis.RedisMessage{}, nil
	}
	r := v.reads[k]
	if r == nil {
		r = &nearReads{since: now.Sub(v.n.start)}
		v.reads[k] = r
	}
	r.n++
	return rueidis.RedisMessage{}, nil
}

// answered takes one outstanding read of key off the count, and reports
// whether its reply may be kept, and since when its read was sent.
func (v *nearView) answered(k string) (keep bool, since time.Duration) {
	r := v.reads[k]
	if r == nil {
		return false, 0
	}
	r.n--
	keep = r.skip == 0
	if !keep {
		r.skip--
	}
	since = r.since
	if r.n == 0 {
		delete(v.reads, k)
	}
	return keep, since
}

// Update implements rueidis.CacheStore: the reply to a read, taken in the
// connection's order, is kept unless a write of this process came after
// the read was sent.
func (v *nearView) Update(key, cmd string, val rueidis.RedisMessage) int64 {
	pxat := val.CachePXAT()
	k, ok := strings.CutPrefix(key, v.n.prefix)
	if !ok || cmd != "GET" {
		return pxat
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	keep, since := v.answered(k)
	if !keep || v.dead.Load() {
		return pxat
	}
	e := nearEntry{view: v, expire: since + nearMaxAge}
	if pxat > 0 {
		// The reply's expiry is its arrival plus Redis's PTTL; reckon it
		// from when the read was sent instead, which is sooner.
		left := time.Until(time.UnixMilli(pxat)) - nearSafety
		e.expire = min(e.expire, since+left)
	}
	if e.expire <= v.n.now() {
		return pxat
	}
	if val.IsNil() {
		if !v.n.keepAbsent.Load() {
			return pxat
		}
		e.absent = true
	} else {
		s, err := val.ToString()
		if err != nil {
			return pxat
		}
		e.value = []byte(s)
	}
	v.n.data.Set(k, e)
	return pxat
}

// Cancel implements rueidis.CacheStore: a read that failed.
func (v *nearView) Cancel(key, cmd string, _ error) {
	k, ok := strings.CutPrefix(key, v.n.prefix)
	if !ok || cmd != "GET" {
		return
	}
	v.mu.Lock()
	v.answered(k)
	v.mu.Unlock()
}

// Delete implements rueidis.CacheStore: Redis's invalidations. nil means
// every key (the database was flushed). Each is passed on to onChange.
func (v *nearView) Delete(keys []rueidis.RedisMessage) {
	fn := v.n.onChange.Load()
	if keys == nil {
		v.n.flush()
		if fn != nil {
			(*fn)("")
		}
		return
	}
	for _, m := range keys {
		s, err := m.ToString()
		if err != nil {
			continue
		}
		if k, ok := strings.CutPrefix(s, v.n.prefix); ok && k != "" {
			v.n.data.Invalidate(k)
			if fn != nil {
				(*fn)(k)
			}
		}
	}
}

// Close implements rueidis.CacheStore: the connection is gone, and with it
// Redis's promise to report changes. Everything is dropped.
func (v *nearView) Close(error) {
	v.dead.Store(true)
	v.mu.Lock()
	v.reads = nil
	v.mu.Unlock()
	v.n.mu.Lock()
	delete(v.n.views, v)
	v.n.mu.Unlock()
	v.n.flush()
}

// skip marks key's outstanding reads on this connection (every key's, for
// ""), so that their replies are not kept.
func (v *nearView) skip(key string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if key == "" {
		for _, r := range v.reads {
			r.skip = r.n
		}
		return
	}
	if r := v.reads[key]; r != nil {
		r.skip = r.n
	}
}
