package cache_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
)

// readShared reads key as SharedBytes through GetOrSet (loading want on a
// miss), and again once the loaded value is stored, so that what it returns
// is a hit: the bytes the store holds. It fails the test unless it gets want.
func readShared(t *testing.T, c *cache.Cache, key, want string, ttl time.Duration, opts ...cache.GetOrSetOption) cache.SharedBytes {
	t.Helper()
	var b cache.SharedBytes
	for range 2 {
		var err error
		b, err = cache.GetOrSet(t.Context(), c, key, ttl, func(context.Context) (cache.SharedBytes, error) {
			return cache.SharedBytes(want), nil
		}, opts...)
		if err != nil || string(b) != want {
			t.Fatalf("GetOrSet(%q) = %q, %v; want %q", key, b, err, want)
		}
		waitStored(t, c, key)
	}
	return b
}

// vouched reads key (storing "v1" first) and returns its value's stamp.
func vouched(t *testing.T, c *cache.Cache, key string, ttl time.Duration, opts ...cache.GetOrSetOption) cache.Stamp {
	t.Helper()
	if err := c.Set(t.Context(), key, cache.SharedBytes("v1"), ttl); err != nil {
		t.Fatal(err)
	}
	b := readShared(t, c, key, "v1", ttl, opts...)
	s, ok := c.Vouch(key, b, opts...)
	if !ok {
		t.Fatalf("Vouch(%q) of the value just read: not vouched", key)
	}
	if !s.CurrentAt(time.Now()) {
		t.Fatalf("a stamp just made is not current")
	}
	return s
}

// TestStampEndsWithEveryWrite: once any write to the key (through the
// cache, or straight to its store) or to every key has returned, the stamp
// of what was read before it is no longer current.
func TestStampEndsWithEveryWrite(t *testing.T) {
	writes := []struct {
		name string
		do   func(ctx context.Context, c *cache.Cache) error
	}{
		{"Set", func(ctx context.Context, c *cache.Cache) error { return c.Set(ctx, "k", cache.SharedBytes("v2"), 0) }},
		{"Set of the same value", func(ctx context.Context, c *cache.Cache) error {
			return c.Set(ctx, "k", cache.SharedBytes("v1"), time.Minute)
		}},
		{"Delete", func(ctx context.Context, c *cache.Cache) error { return c.Delete(ctx, "k") }},
		{"DeleteMany", func(ctx context.Context, c *cache.Cache) error { return c.DeleteMany(ctx, []string{"a", "k"}) }},
		{"SetMany", func(ctx context.Context, c *cache.Cache) error {
			return c.SetMany(ctx, map[string]any{"k": "v2"}, 0)
		}},
		{"Clear", func(ctx context.Context, c *cache.Cache) error { return c.Clear(ctx) }},
		{"Increment", func(ctx context.Context, c *cache.Cache) error {
			if err := c.Set(ctx, "n", "1", 0); err != nil {
				return err
			}
			_, err := c.Increment(ctx, "k", 1, 0)
			if err != nil { // k holds "v1", not an integer: refused, nothing changed
				return nil
			}
			return fmt.Errorf("Increment of a non-integer succeeded")
		}},
		{"Store().Delete", func(ctx context.Context, c *cache.Cache) error { return c.Store().Delete(ctx, "k") }},
		{"Store().Set", func(ctx context.Context, c *cache.Cache) error {
			return c.Store().Set(ctx, "k", []byte("v1"), 0)
		}},
		{"InvalidateTags of another tag", func(ctx context.Context, c *cache.Cache) error {
			return c.InvalidateTags(ctx, "unrelated")
		}},
		{"Close", func(ctx context.Context, c *cache.Cache) error { return c.Close() }},
	}
	for _, w := range writes {
		t.Run(w.name, func(t *testing.T) {
			c := newCache(t)
			s := vouched(t, c, "k", time.Minute)
			if err := w.do(t.Context(), c); err != nil {
				t.Fatal(err)
			}
			current := s.CurrentAt(time.Now())
			if w.name == "Increment" {
				// A refused Increment writes nothing: the stamp may stand.
				return
			}
			if current {
				t.Errorf("after %s returned, the stamp of what was read before is still current", w.name)
			}
		})
	}
}

// TestStampEndsWithTime: a stamp ends with its value's ttl, with its
// freshness under fail-safe, and where an early refresh is due, so that
// GetOrSet is asked again then.
func TestStampEndsWithTime(t *testing.T) {
	t.Run("ttl", func(t *testing.T) {
		c := newCache(t)
		now := time.Now()
		s := vouched(t, c, "k", time.Minute)
		if !s.CurrentAt(now.Add(59 * time.Second)) {
			t.Error("not current within the ttl")
		}
		if s.CurrentAt(now.Add(time.Minute + time.Second)) {
			t.Error("current past the ttl")
		}
	})
	t.Run("no ttl", func(t *testing.T) {
		c := newCache(t)
		s := vouched(t, c, "k", 0)
		if !s.CurrentAt(time.Now().Add(100 * 24 * time.Hour)) {
			t.Error("a value without expiry is not current 100 days on")
		}
	})
	t.Run("stale_ttl", func(t *testing.T) {
		c := newCache(t)
		now := time.Now()
		b := readShared(t, c, "k", "v1", time.Minute, cache.StaleFor(time.Hour))
		s, ok := c.Vouch("k", b, cache.StaleFor(time.Hour))
		if !ok {
			t.Fatal("not vouched")
		}
		if !s.CurrentAt(now.Add(50 * time.Second)) {
			t.Error("not current while fresh")
		}
		if s.CurrentAt(now.Add(time.Minute + time.Second)) {
			t.Error("current past its freshness: fail-safe's stale value is GetOrSet's to serve")
		}
	})
	t.Run("refresh_ahead", func(t *testing.T) {
		c := newCache(t)
		now := time.Now()
		b := readShared(t, c, "k", "v1", time.Minute, cache.RefreshAhead(0.5))
		s, ok := c.Vouch("k", b, cache.RefreshAhead(0.5))
		if !ok {
			t.Fatal("not vouched")
		}
		if !s.CurrentAt(now.Add(20 * time.Second)) {
			t.Error("not current before the refresh is due")
		}
		if s.CurrentAt(now.Add(31 * time.Second)) {
			t.Error("current once an early refresh is due: GetOrSet would start it")
		}
	})
}

// TestVouchRefuses: no stamp for what the cache cannot vouch for.
func TestVouchRefuses(t *testing.T) {
	ctx := t.Context()
	t.Run("a copy of the value", func(t *testing.T) {
		c := newCache(t)
		b := readShared(t, c, "k", "v1", time.Minute)
		if _, ok := c.Vouch("k", append(cache.SharedBytes(nil), b...)); ok {
			t.Error("vouched for a copy: not the bytes the store holds")
		}
	})
	t.Run("a value replaced since", func(t *testing.T) {
		c := newCache(t)
		b := readShared(t, c, "k", "v1", time.Minute)
		if err := c.Set(ctx, "k", cache.SharedBytes("v1"), time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, ok := c.Vouch("k", b); ok {
			t.Error("vouched for the bytes of an entry replaced since")
		}
	})
	t.Run("another key's value", func(t *testing.T) {
		c := newCache(t)
		b := readShared(t, c, "a", "v1", time.Minute)
		readShared(t, c, "k", "v1", time.Minute)
		if _, ok := c.Vouch("k", b); ok {
			t.Error("vouched for another key's bytes")
		}
	})
	t.Run("a missing key", func(t *testing.T) {
		c := newCache(t)
		if _, ok := c.Vouch("k", cache.SharedBytes("v1")); ok {
			t.Error("vouched for a missing key")
		}
	})
	t.Run("a tagged value whose tag was invalidated", func(t *testing.T) {
		c := newCache(t)
		b := readShared(t, c, "k", "v1", time.Minute, cache.WithTags("t"))
		s, ok := c.Vouch("k", b, cache.WithTags("t"))
		if !ok {
			t.Fatal("a tagged value just read is not vouched for")
		}
		if err := c.InvalidateTags(ctx, "t"); err != nil {
			t.Fatal(err)
		}
		if s.CurrentAt(time.Now()) {
			t.Error("the stamp of a tagged value is current after its tag's invalidation")
		}
		if _, ok := c.Vouch("k", b); ok {
			t.Error("vouched for a tagged value after its tag's invalidation")
		}
	})
	t.Run("a store that does not count its writes", func(t *testing.T) {
		c := cache.New(&plainStore{s: newCache(t).Store()}, cache.WithLogger(nil))
		defer c.Close()
		b := readShared(t, c, "k", "v1", time.Minute)
		if _, ok := c.Vouch("k", b); ok {
			t.Error("vouched over a store whose writes it cannot see")
		}
	})
	t.Run("a disabled cache", func(t *testing.T) {
		c, err := cache.Open(ctx, cache.Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, ok := c.Vouch("k", cache.SharedBytes("v1")); ok {
			t.Error("a disabled cache vouched")
		}
	})
	t.Run("the zero Stamp", func(t *testing.T) {
		var s cache.Stamp
		if s.CurrentAt(time.Now()) {
			t.Error("the zero Stamp is current")
		}
	})
}

// plainStore passes on only the Store methods: a store the cache cannot
// vouch over, as a remote one.
type plainStore struct{ s cache.Store }

func (p *plainStore) Get(ctx context.Context, k string) ([]byte, bool, error) { return p.s.Get(ctx, k) }
func (p *plainStore) Set(ctx context.Context, k string, v []byte, ttl time.Duration) error {
	return p.s.Set(ctx, k, v, ttl)
}
func (p *plainStore) Delete(ctx context.Context, k string) error { return p.s.Delete(ctx, k) }
func (p *plainStore) Clear(ctx context.Context) error            { return p.s.Clear(ctx) }
func (p *plainStore) Close() error                               { return p.s.Close() }

// TestStampCountsHits: a current stamp counts as the hit it saves.
func TestStampCountsHits(t *testing.T) {
	c := newCache(t)
	s := vouched(t, c, "k", time.Minute) // one GetOrSet hit, one Current
	before := c.Stats().Hits
	for range 3 {
		s.CurrentAt(time.Now())
	}
	if got := c.Stats().Hits - before; got != 3 {
		t.Errorf("3 current stamps counted %d hits, want 3", got)
	}
}

// TestStampNeverOutlivesAWrite races readers that keep a stamp with a
// writer: once Set of version n has returned, no reader may find a stamp
// current for a value older than n. Run with -race.
func TestStampNeverOutlivesAWrite(t *testing.T) {
	c := newCache(t)
	ctx := t.Context()
	var written atomic.Int64 // the last version whose Set returned
	if err := c.Set(ctx, "k", cache.SharedBytes("0"), 0); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var violations atomic.Int64
	for range 4 {
		wg.Go(func() {
			var s cache.Stamp
			var have int64 = -1
			for {
				select {
				case <-stop:
					return
				default:
				}
				w := written.Load() // Set(w) has returned
				if _, current := s.Current(); have >= 0 && current {
					if have < w {
						violations.Add(1)
					}
					continue
				}
				b, found, err := cache.Get[cache.SharedBytes](ctx, c, "k")
				if err != nil || !found {
					continue
				}
				n, _ := strconv.ParseInt(string(b), 10, 64)
				if st, ok := c.Vouch("k", b); ok {
					s, have = st, n
				}
			}
		})
	}
	for i := int64(1); i <= 3000; i++ {
		if err := c.Set(ctx, "k", cache.SharedBytes(strconv.FormatInt(i, 10)), 0); err != nil {
			t.Fatal(err)
		}
		written.Store(i)
		if i%100 == 0 {
			time.Sleep(time.Millisecond) // let the readers make stamps
		}
	}
	close(stop)
	wg.Wait()
	if v := violations.Load(); v > 0 {
		t.Errorf("%d times a stamp was current for a value older than one whose Set had returned", v)
	}
}
