package cache

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"strconv"
	"time"

	intcounter "github.com/ushka-go/ushka/internal/counter"
	"github.com/ushka-go/ushka/internal/errs"
)

// Atomic writes: Add (set if absent) and Increment/Decrement. A store that
// does them atomically implements Adder and Counter (in_memory in its map,
// redis with SET NX, and INCRBY in one MULTI/EXEC with SET NX PX, across processes); for a
// store without them the front end does them under a lock of its own,
// which makes them atomic within this process only.

// Adder is implemented by a [Store] that stores a value only if its key is
// missing (or expired), atomically: SET NX on Redis.
type Adder interface {
	// Add stores value under key for ttl, as Set does, unless the key is
	// there; added reports whether it stored it.
	Add(ctx context.Context, key string, value []byte, ttl time.Duration) (added bool, err error)
}

// Counter is implemented by a [Store] that adds to an integer stored under
// a key atomically, across every process that shares the store.
type Counter interface {
	// Increment adds delta to the integer stored under key, as decimal
	// text, and returns the sum. A missing (or expired) key counts as 0
	// and is created with ttl (0: no expiry); an existing key keeps its
	// ttl. A value that is not a decimal integer, or a sum that would
	// overflow an int64, is an error matching [ErrNotInteger], and nothing
	// is written.
	Increment(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error)
}

// ErrNotInteger is the error of an Increment or Decrement of a key whose
// value is not a decimal integer, or whose sum would overflow an int64.
var ErrNotInteger = errs.ErrNotInteger

// Add stores value under key for ttl, as [Cache.Set] does, only if the key
// is missing or expired, and reports whether it did: atomically, across
// processes on Redis (SET NX). A ttl of 0 means the cache's default TTL.
//
// On a store without [Adder] (a third-party one), Add is atomic within
// this process only.
func (c *Cache) Add(ctx context.Context, key string, value any, ttl time.Duration) (added bool, err error) {
	if err := c.check("add", key); err != nil {
		return false, err
	}
	if err := checkTTL(key, ttl); err != nil {
		return false, err
	}
	b, err := c.encode(value)
	if err != nil {
		c.stats.errors.add()
		return false, fmt.Errorf("cache: add %q: encode %T: %w", key, value, err)
	}
	if ttl == 0 {
		ttl = c.defaultTTL
	}
	c.stopLoads(key, false)
	defer c.endInvalidation(key, false)
	if added, err = c.addBytes(ctx, key, b, ttl); err != nil {
		c.failed(ctx, err)
		return false, fmt.Errorf("cache: add %q: %w", key, err)
	}
	if added {
		c.stats.sets.add()
	}
	return added, nil
}

// Increment adds delta to the integer stored under key and returns the
// sum, atomically: across processes on Redis (INCRBY), in one round trip.
// A missing or expired key counts as 0 and is created with ttl (0: the
// cache's default TTL); an existing key keeps the ttl it has. The value is
// stored as decimal text, which [Cache.Get] reads as a number with the
// JSON codec (the default). A value that is not an integer, or a sum past
// the range of int64, is an error matching [ErrNotInteger], and the value
// is left as it was.
//
// Increment does not retry on its own: when it fails for want of an answer
// it cannot tell whether the store applied it, so retrying might count
// twice.
//
// On a store without [Counter] (a third-party one), Increment is atomic
// within this process only.
func (c *Cache) Increment(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	if err := c.check("increment", key); err != nil {
		return 0, err
	}
	if err := checkTTL(key, ttl); err != nil {
		return 0, err
	}
	if ttl == 0 {
		ttl = c.defaultTTL
	}
	c.stopLoads(key, false)
	defer c.endInvalidation(key, false)
	var n int64
	err := c.atomic(ctx, "increment", key, func(ctx context.Context) (err error) {
		if c.counter != nil {
			n, err = c.counter.Increment(ctx, key, delta, ttl)
			return err
		}
		// The front end's: read, add, write back, keeping the ttl only as
		// well as Set can (the store's remaining ttl is not known: the key
		// is written again with ttl).
		b, found, err := c.store.Get(ctx, key)
		if err != nil {
			return err
		}
		var cur int64
		if found {
			if cur, err = ParseCounter(b); err != nil {
				return err
			}
		}
		if n, err = AddCounter(cur, delta); err != nil {
			return err
		}
		return c.store.Set(ctx, key, strconv.AppendInt(nil, n, 10), ttl)
	})
	if err != nil {
		if !errors.Is(err, ErrNotInteger) {
			c.failed(ctx, err)
		}
		return 0, fmt.Errorf("cache: increment %q: %w", key, err)
	}
	c.stats.sets.add()
	return n, nil
}

// Decrement subtracts delta from the integer stored under key and returns
// the result: [Cache.Increment] by -delta. A delta of math.MinInt64 is
// refused with [ErrNotInteger] whatever the value, as Redis's DECRBY does,
// so that every backend answers alike.
func (c *Cache) Decrement(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	if delta == math.MinInt64 {
		return 0, fmt.Errorf("cache: decrement %q by %d: %w", key, delta, ErrNotInteger)
	}
	return c.Increment(ctx, key, -delta, ttl)
}

// ParseCounter reads a counter's stored value: a decimal integer, as
// [Counter.Increment] stores it. Anything else is an error matching
// [ErrNotInteger]. It is for Counter implementations.
func ParseCounter(b []byte) (int64, error) { return intcounter.Parse(b) }

// AddCounter returns cur + delta, or an error matching [ErrNotInteger]
// when the sum overflows an int64. It is for Counter implementations.
func AddCounter(cur, delta int64) (int64, error) { return intcounter.Add(cur, delta) }

// addBytes stores b under key for ttl unless the key is there: with the
// store's Adder, or read then written under the front end's lock.
func (c *Cache) addBytes(ctx context.Context, key string, b []byte, ttl time.Duration) (added bool, err error) {
	err = c.atomic(ctx, "add", key, func(ctx context.Context) error {
		if c.adder != nil {
			added, err = c.adder.Add(ctx, key, b, ttl)
			return err
		}
		_, found, err := c.store.Get(ctx, key)
		if err != nil || found {
			return err
		}
		added = true
		return c.store.Set(ctx, key, b, ttl)
	})
	return added, err
}

var atomicSeed = maphash.MakeSeed()

// atomic runs do, a read-modify-write of key (op): past the breaker when
// the store is remote, and under the front end's lock of the key when the
// store cannot do it atomically itself. A key whose invalidation waits to
// be replayed is refused: the store still holds the value this process
// takes for deleted, which an Add would keep and an Increment add to. A
// remote write whose outcome is unknown is not queued: replaying an Add or
// an Increment could apply it twice.
func (c *Cache) atomic(ctx context.Context, op, key string, do func(context.Context) error) error {
	if (op == "add" && c.adder == nil) || (op == "increment" && c.counter == nil) {
		mu := &c.atomics[maphash.String(atomicSeed, key)%uint64(len(c.atomics))]
		mu.Lock()
		defer mu.Unlock()
		return do(ctx) // c.store's calls go past the breaker themselves
	}
	if c.brk == nil {
		return do(ctx)
	}
	if c.brk.q.holds(key) {
		return sentinelf(ErrUnavailable, "%s: the key's invalidation waits to be replayed", c.brk.backend)
	}
	return c.pastBreaker(ctx, op, key, func() error { return do(ctx) })
}
