package cache

import (
	"sync/atomic"
	"unsafe"
)

// Stats is a snapshot of a [Cache]'s counters since it was created.
type Stats struct {
	// Hits counts reads that found a value.
	Hits uint64 `json:"hits"`
	// Misses counts reads that found nothing (missing or expired).
	Misses uint64 `json:"misses"`
	// Sets counts values written.
	Sets uint64 `json:"sets"`
	// Deletes counts Delete calls that succeeded.
	Deletes uint64 `json:"deletes"`
	// Loads counts calls of a GetOrSet load function.
	Loads uint64 `json:"loads"`
	// Errors counts failed operations: store errors, values that could not be
	// encoded or decoded, failed loads. Invalid keys and TTLs are not counted,
	// nor are callers' own cancellations, nor the calls the circuit breaker
	// refused (Refused counts those).
	Errors uint64 `json:"errors"`
	// Stale counts values fail-safe served past their ttl.
	Stale uint64 `json:"stale"`
	// Refreshes counts early refreshes that ran a load.
	Refreshes uint64 `json:"refreshes"`
	// NearHits counts the Hits that the store's near cache served from
	// process memory, without a round trip (see [NearCacher]); the rest of
	// Hits came from the store itself.
	NearHits uint64 `json:"near_hits"`
	// NearEntries and NearBytes are what the store's near cache holds now:
	// its entries, and the memory it accounts for them (the bound that
	// near_cache_max_bytes sets). Zero without a near cache.
	NearEntries int   `json:"near_entries"`
	NearBytes   int64 `json:"near_bytes"`

	// Breaker is the state of the circuit breaker in front of a remote
	// store: "closed", "open" or "half_open" (see [BreakerState]); empty for
	// an in-process store, which has none.
	Breaker string `json:"breaker,omitempty"`
	// BreakerOpened counts the times the breaker opened.
	BreakerOpened uint64 `json:"breaker_opened"`
	// Refused counts the calls the breaker refused at once with
	// [ErrUnavailable], without asking the store.
	Refused uint64 `json:"refused"`
	// Queued counts the invalidations (Delete, Clear, and the Delete a
	// failed Set owes) queued because the store did not answer.
	Queued uint64 `json:"queued"`
	// Replayed counts the queued invalidations applied to the store once it
	// answered again.
	Replayed uint64 `json:"replayed"`
	// Dropped counts the queued invalidations dropped because the queue was
	// full (invalidation_queue_max); a Clear of the whole cache, replayed in
	// their place, removes what they would have.
	Dropped uint64 `json:"dropped"`
	// QueuedNow is how many invalidations wait to be replayed now.
	QueuedNow int `json:"queued_now"`
}

// HitRatio returns Hits / (Hits + Misses), or 0 before any read.
func (s Stats) HitRatio() float64 {
	if s.Hits+s.Misses == 0 {
		return 0
	}
	return float64(s.Hits) / float64(s.Hits+s.Misses)
}

// counter is an atomic counter alone on its cache line, so that goroutines
// counting hits on one core do not slow those counting misses on another.
type counter struct {
	n atomic.Uint64
	_ [56]byte
}

func (c *counter) add()         { c.n.Add(1) }
func (c *counter) load() uint64 { return c.n.Load() }

// hotStripes is how many counters a hot count (hits, misses) is spread
// over: one shared counter costs every core a cache-line transfer per
// count, which at two goroutines was a tenth of a cached HTTP response.
const hotStripes = 32

// hotCounter is a counter spread over stripes, each alone on its cache
// line. A goroutine counts on the stripe its stack's address picks, so that
// two goroutines running at once on two cores mostly count on two lines,
// each staying in its core's cache (a stripe picked at random per count
// moved the line between cores half the time).
type hotCounter struct {
	stripes [hotStripes]counter
}

func (c *hotCounter) add() {
	var onStack byte
	p := uint64(uintptr(unsafe.Pointer(&onStack))) >> 11 // stacks are 2 KiB apart or more
	c.stripes[(p*0x9E3779B97F4A7C15)>>(64-5)].add()
}

func (c *hotCounter) load() uint64 {
	var n uint64
	for i := range c.stripes {
		n += c.stripes[i].load()
	}
	return n
}

// counters starts with a cache line of padding: without it the hits counter
// shared a line with the Cache fields every call reads (store, codec,
// closed), and each hit on one core evicted them from the other's cache.
// Where the allocator placed the Cache decided whether it happened: reads at
// two goroutines cost 1x or 2x otter + the same codec from one run to the
// next (bench/README.md).
type counters struct {
	_                                          [64]byte
	hits, misses, nearHits                     hotCounter
	sets, deletes, loads, errors               counter
	stale, refreshes                           counter
	opened, refused, queued, replayed, dropped counter
}

func (c *counters) snapshot() Stats {
	return Stats{
		Hits:      c.hits.load(),
		Misses:    c.misses.load(),
		Sets:      c.sets.load(),
		Deletes:   c.deletes.load(),
		Loads:     c.loads.load(),
		Errors:    c.errors.load(),
		Stale:     c.stale.load(),
		Refreshes: c.refreshes.load(),
		NearHits:  c.nearHits.load(),

		BreakerOpened: c.opened.load(),
		Refused:       c.refused.load(),
		Queued:        c.queued.load(),
		Replayed:      c.replayed.load(),
		Dropped:       c.dropped.load(),
	}
}
