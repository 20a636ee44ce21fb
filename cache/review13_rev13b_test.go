package cache_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
)

// TestReview13CounterEdges: ttl only at creation, overflow and non-integers
// leave the value, math.MinInt64.
func TestReview13CounterEdges(t *testing.T) {
	bulkBackends(t, func(t *testing.T, c *cache.Cache) {
		ctx := t.Context()
		// MinInt64 from a missing key, then one below: overflow, unchanged.
		if n, err := c.Increment(ctx, "min", math.MinInt64, 0); err != nil || n != math.MinInt64 {
			t.Fatalf("Increment(missing, MinInt64) = %d, %v", n, err)
		}
		if _, err := c.Increment(ctx, "min", -1, 0); !errors.Is(err, cache.ErrNotInteger) {
			t.Errorf("MinInt64 - 1 = %v, want ErrNotInteger", err)
		}
		if v, _, _ := cache.Get[int64](ctx, c, "min"); v != math.MinInt64 {
			t.Errorf("after the overflow: %d", v)
		}
		if n, err := c.Increment(ctx, "min", math.MaxInt64, 0); err != nil || n != -1 {
			t.Errorf("MinInt64 + MaxInt64 = %d, %v; want -1", n, err)
		}
		if _, err := c.Set(ctx, "max", int64(math.MaxInt64), 0), error(nil); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Increment(ctx, "max", 1, 0); !errors.Is(err, cache.ErrNotInteger) {
			t.Errorf("MaxInt64 + 1 = %v", err)
		}
		if v, _, _ := cache.Get[int64](ctx, c, "max"); v != math.MaxInt64 {
			t.Errorf("after the overflow: %d", v)
		}
		_ = c.Set(ctx, "s", "abc", 0)
		if _, err := c.Increment(ctx, "s", 1, 0); !errors.Is(err, cache.ErrNotInteger) {
			t.Errorf("Increment of text = %v", err)
		}
		if v, _, _ := cache.Get[string](ctx, c, "s"); v != "abc" {
			t.Errorf("text after a refused Increment: %q", v)
		}
		// -1 - MinInt64 would be MaxInt64, in range; but Redis's DECRBY
		// refuses a decrement of MinInt64 whatever the value, and every
		// backend behaves as Redis does: refused, the value unchanged.
		_ = c.Set(ctx, "neg", -1, 0)
		if n, err := c.Decrement(ctx, "neg", math.MinInt64, 0); !errors.Is(err, cache.ErrNotInteger) {
			t.Errorf("Decrement(-1, MinInt64) = %d, %v; want ErrNotInteger, as Redis's DECRBY", n, err)
		}
		if v, _, _ := cache.Get[int64](ctx, c, "neg"); v != -1 {
			t.Errorf("after a refused Decrement: %d, want -1", v)
		}
	})
}

// TestReview13CounterTTLOnlyAtCreation: an existing counter keeps its ttl,
// and a ttl-less counter keeps none, on the stores that claim Counter.
func TestReview13CounterTTLOnlyAtCreation(t *testing.T) {
	bulkBackends(t, func(t *testing.T, c *cache.Cache) {
		if _, ok := c.Store().(cache.Counter); !ok {
			t.Skip("no Counter: the fallback rewrites the ttl (documented)")
		}
		ctx := t.Context()
		if _, err := c.Increment(ctx, "short", 1, 300*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Increment(ctx, "short", 1, time.Hour); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Increment(ctx, "forever", 1, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Increment(ctx, "forever", 1, 200*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		time.Sleep(450 * time.Millisecond)
		if v, found, _ := cache.Get[int64](ctx, c, "short"); found {
			t.Errorf("counter created with 300ms still there after 450ms (= %d): a later Increment reset its ttl", v)
		}
		if v, found, _ := cache.Get[int64](ctx, c, "forever"); !found || v != 2 {
			t.Errorf("counter created without ttl: %d, %v; a later Increment gave it one", v, found)
		}
		// Expired counter counts from 0 again.
		if n, err := c.Increment(ctx, "short", 1, time.Minute); err != nil || n != 1 {
			t.Errorf("Increment of an expired counter = %d, %v; want 1", n, err)
		}
		// Add on an expired key adds.
		if added, err := c.Add(ctx, "add", 1, 100*time.Millisecond); err != nil || !added {
			t.Fatal(added, err)
		}
		time.Sleep(150 * time.Millisecond)
		if added, err := c.Add(ctx, "add", 2, time.Minute); err != nil || !added {
			t.Errorf("Add after expiry = %v, %v", added, err)
		}
	})
}

// TestReview13CounterTextAcrossBackends: a value one backend counts, the
// other must count too.
func TestReview13CounterTextAcrossBackends(t *testing.T) {
	bulkBackends(t, func(t *testing.T, c *cache.Cache) {
		ctx := t.Context()
		for _, s := range []string{"+5", "007", "-0"} {
			_ = c.Set(ctx, "x", s, 0)
			n, err := c.Increment(ctx, "x", 1, 0)
			if !errors.Is(err, cache.ErrNotInteger) { // what Redis (INCRBY) answers
				t.Errorf("Increment of %q = %d, %v; Redis refuses it with ErrNotInteger", s, n, err)
			}
		}
	})
}
