package cache_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/cache/cachetest"
	"github.com/ushka-go/ushka/cache/redis"
	"github.com/ushka-go/ushka/internal/redistest"
)

// bulkBackends runs test on every backend eachBackend does, on a Redis
// Cluster of three masters (keys in different slots), and over a store
// without the bulk and atomic capabilities (Chaos's wrapper passes on none
// of them), where the front end's fallbacks do the work.
func bulkBackends(t *testing.T, test func(t *testing.T, c *cache.Cache)) {
	eachBackend(t, test)
	t.Run("backend=redis/cluster", func(t *testing.T) {
		t.Parallel()
		cl := redistest.StartCluster(t, 3)
		a := cl.Addrs()
		s, err := redis.Open(t.Context(), cache.Config{RedisURL: cache.SecretURL("redis://" + a[0] + "?addr=" + a[1] + "&addr=" + a[2]), Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		c := cache.New(s, cache.WithLogger(nil))
		t.Cleanup(func() { c.Close() })
		test(t, c)
	})
	t.Run("backend=no_capabilities", func(t *testing.T) {
		t.Parallel()
		var chaos cachetest.Chaos
		test(t, overChaos(t, &chaos))
	})
}

func keysN(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

type item struct {
	N    int    `json:"n"`
	Name string `json:"name"`
}

// TestBulkRoundTrip: SetMany then GetMany (both forms), with misses and
// repeats; DeleteMany; an invalid key fails the whole call before anything
// is written.
func TestBulkRoundTrip(t *testing.T) {
	bulkBackends(t, func(t *testing.T, c *cache.Cache) {
		ctx := t.Context()
		keys := keysN("b", 50)
		items := make(map[string]item, len(keys))
		for i, k := range keys {
			if i%5 != 0 {
				items[k] = item{i, k}
			}
		}
		if err := cache.SetMany(ctx, c, items, time.Minute); err != nil {
			t.Fatal(err)
		}
		got, err := cache.GetMany[item](ctx, c, append(keys, keys[1]))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(items) {
			t.Errorf("GetMany found %d keys, want %d", len(got), len(items))
		}
		for k, v := range items {
			if got[k] != v {
				t.Errorf("GetMany %q = %+v, want %+v", k, got[k], v)
			}
		}
		var into map[string]item
		if err := c.GetMany(ctx, keys[:3], &into); err != nil || len(into) != 2 || into[keys[1]] != items[keys[1]] {
			t.Errorf("c.GetMany into a nil map = %v, %v", into, err)
		}
		if err := c.SetMany(ctx, map[string]any{"raw": []byte("bytes"), "s": "text"}, 0); err != nil {
			t.Fatal(err)
		}
		strs, err := cache.GetMany[string](ctx, c, []string{"raw", "s"})
		if err != nil || strs["raw"] != "bytes" || strs["s"] != "text" {
			t.Errorf("GetMany[string] = %v, %v", strs, err)
		}

		if err := c.DeleteMany(ctx, keys[:10]); err != nil {
			t.Fatal(err)
		}
		got, _ = cache.GetMany[item](ctx, c, keys[:12])
		if len(got) != 1 || got[keys[11]] != items[keys[11]] {
			t.Errorf("after DeleteMany of 10 keys, GetMany of 12 found %v, want %s alone (%s never was)", got, keys[11], keys[10])
		}

		err = c.SetMany(ctx, map[string]any{"ok": 1, "": 2}, 0)
		if !errors.Is(err, cache.ErrInvalidKey) {
			t.Errorf("SetMany with an empty key = %v, want ErrInvalidKey", err)
		}
		if _, found, _ := cache.Get[int](ctx, c, "ok"); found {
			t.Error("SetMany with an invalid key wrote the valid one: want nothing written")
		}
		if err := c.SetMany(ctx, map[string]any{"ch": make(chan int)}, 0); err == nil {
			t.Error("SetMany of a value that does not encode returned nil")
		}
		if _, err := cache.GetMany[int](ctx, c, []string{"a", ""}); !errors.Is(err, cache.ErrInvalidKey) {
			t.Errorf("GetMany with an empty key = %v, want ErrInvalidKey", err)
		}
		if err := c.GetMany(ctx, keys, map[int]string{}); err == nil {
			t.Error("GetMany into a map[int]string returned nil")
		}
	})
}

// TestBulkPartialFailure: over a failing store, GetMany reports each key's
// error in a *KeysError, and SetMany and DeleteMany return one naming every
// key; the cache still answers what it can.
func TestBulkPartialFailure(t *testing.T) {
	var chaos cachetest.Chaos
	c := chaosCache(t, &chaos)
	ctx := t.Context()
	if err := cache.SetMany(ctx, c, map[string]int{"a": 1, "b": 2}, 0); err != nil {
		t.Fatal(err)
	}
	chaos.Fail(errors.New("connection reset"), cachetest.OpGet)
	got, err := cache.GetMany[int](ctx, c, []string{"a", "b"})
	var ke *cache.KeysError
	if !errors.As(err, &ke) || len(ke.Errs) != 2 || len(got) != 0 {
		t.Fatalf("GetMany over a failing store = %v, %v; want a KeysError naming both keys", got, err)
	}
	chaos.Heal()
	chaos.Fail(errors.New("connection reset"), cachetest.OpDelete)
	err = c.DeleteMany(ctx, []string{"a", "b"})
	if !errors.As(err, &ke) || len(ke.Errs) != 2 {
		t.Fatalf("DeleteMany over a failing store = %v, want a KeysError naming both keys", err)
	}
}

// TestDeleteManyIsFinal: a DeleteMany during a GetOrSet load of one of its
// keys is not undone by the load's value, as for Delete.
func TestDeleteManyIsFinal(t *testing.T) {
	eachBackend(t, func(t *testing.T, c *cache.Cache) {
		var src source
		release := make(chan struct{})
		got := staleLoad(t, c, "k", &src, release)
		src.version.Add(1)
		if err := c.DeleteMany(t.Context(), []string{"other", "k"}); err != nil {
			t.Fatal(err)
		}
		close(release)
		<-got
		v, err := cache.GetOrSet(t.Context(), c, "k", time.Minute, func(context.Context) (int32, error) { return src.version.Load(), nil })
		if err != nil || v != 1 {
			t.Fatalf("GetOrSet after DeleteMany = %d, %v; want the new version 1, not the load that began before", v, err)
		}
	})
}

// TestGetOrSetManyOneBatch: the hits are not loaded; the misses go to one
// call of loadMany, in the order asked; a key it leaves out is missing from
// the result and loaded again next time; the values are cached.
func TestGetOrSetManyOneBatch(t *testing.T) {
	bulkBackends(t, func(t *testing.T, c *cache.Cache) {
		ctx := t.Context()
		keys := keysN("g", 30)
		if err := cache.SetMany(ctx, c, map[string]int{keys[0]: 100, keys[7]: 107}, 0); err != nil {
			t.Fatal(err)
		}
		var calls atomic.Int32
		var asked []string
		load := func(_ context.Context, missing []string) (map[string]int, error) {
			calls.Add(1)
			asked = missing
			out := make(map[string]int, len(missing))
			for _, k := range missing {
				if k != keys[29] { // the source has no keys[29]
					out[k] = len(k)
				}
			}
			return out, nil
		}
		got, err := cache.GetOrSetMany(ctx, c, append(keys, keys[3]), time.Minute, load)
		if err != nil {
			t.Fatal(err)
		}
		if calls.Load() != 1 {
			t.Fatalf("loadMany called %d times, want once", calls.Load())
		}
		want := slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return k == keys[0] || k == keys[7] })
		sorted := slices.Clone(asked)
		sort.Strings(sorted)
		sort.Strings(want)
		if !slices.Equal(sorted, want) {
			t.Errorf("loadMany asked for %v, want the 28 misses %v", asked, want)
		}
		if len(got) != 29 || got[keys[0]] != 100 || got[keys[7]] != 107 || got[keys[5]] != len(keys[5]) {
			t.Errorf("GetOrSetMany = %v (%d keys), want 29 with the hits' values", got, len(got))
		}
		if _, ok := got[keys[29]]; ok {
			t.Error("a key loadMany left out is in the result")
		}
		waitStored(t, c, keys[5])
		calls.Store(0)
		got, err = cache.GetOrSetMany(ctx, c, keys, time.Minute, load)
		if err != nil || len(got) != 29 || calls.Load() != 1 || !slices.Equal(asked, []string{keys[29]}) {
			t.Errorf("second GetOrSetMany: %d keys, %v, %d calls asking %v; want only the key left out loaded again", len(got), err, calls.Load(), asked)
		}
	})
}

// waitStored waits until key is readable: a remote store receives loaded
// values after the callers have them.
func waitStored(t *testing.T, c *cache.Cache, key string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		var raw []byte // whatever the value, as stored
		if found, _ := c.Get(t.Context(), key, &raw); found {
			return
		}
	}
	t.Fatalf("%q was never stored", key)
}

// TestGetOrSetManySingleFlight: concurrent GetOrSetManys of overlapping
// keys, and GetOrSets of some of them, load each key once.
func TestGetOrSetManySingleFlight(t *testing.T) {
	bulkBackends(t, func(t *testing.T, c *cache.Cache) {
		keys := keysN("s", 45)
		var mu sync.Mutex
		loads := map[string]int{}
		gate := make(chan struct{})
		load := func(_ context.Context, missing []string) (map[string]int, error) {
			<-gate
			mu.Lock()
			defer mu.Unlock()
			out := map[string]int{}
			for _, k := range missing {
				loads[k]++
				out[k] = 1
			}
			return out, nil
		}
		var wg sync.WaitGroup
		for g := range 6 {
			wg.Go(func() {
				part := keys[g*5 : g*5+20] // overlapping windows
				got, err := cache.GetOrSetMany(context.Background(), c, part, time.Minute, load)
				if err != nil || len(got) != len(part) {
					t.Errorf("GetOrSetMany = %d keys, %v; want %d", len(got), err, len(part))
				}
			})
		}
		for _, k := range keys[:5] {
			wg.Go(func() {
				v, err := cache.GetOrSet(context.Background(), c, k, time.Minute, func(ctx context.Context) (int, error) {
					m, err := load(ctx, []string{k})
					return m[k], err
				})
				if err != nil || v != 1 {
					t.Errorf("GetOrSet %q = %d, %v", k, v, err)
				}
			})
		}
		time.Sleep(50 * time.Millisecond)
		close(gate)
		wg.Wait()
		for k, n := range loads {
			if n != 1 {
				t.Errorf("key %q loaded %d times, want once", k, n)
			}
		}
	})
}

// TestGetOrSetManyFailures: a failing loadMany fails each key it was to
// load, named in a *KeysError, while the hits are returned; with fail-safe,
// a stale value is served instead; a panic reaches the caller.
func TestGetOrSetManyFailures(t *testing.T) {
	eachBackend(t, func(t *testing.T, c *cache.Cache) {
		ctx := t.Context()
		if err := c.Set(ctx, "hit", 1, 0); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("db down")
		got, err := cache.GetOrSetMany(ctx, c, []string{"hit", "m1", "m2"}, time.Minute,
			func(context.Context, []string) (map[string]int, error) { return nil, boom })
		var ke *cache.KeysError
		if !errors.As(err, &ke) || len(ke.Errs) != 2 || !errors.Is(err, boom) || got["hit"] != 1 || len(got) != 1 {
			t.Fatalf("GetOrSetMany with a failing load = %v, %v; want the hit and a KeysError for m1, m2", got, err)
		}

		ok := func(_ context.Context, missing []string) (map[string]string, error) {
			out := map[string]string{}
			for _, k := range missing {
				out[k] = "old"
			}
			return out, nil
		}
		if _, err := cache.GetOrSetMany(ctx, c, []string{"s1", "s2"}, 300*time.Millisecond, ok, cache.StaleFor(time.Hour)); err != nil {
			t.Fatal(err)
		}
		waitStored(t, c, "s1")
		waitStored(t, c, "s2")
		time.Sleep(350 * time.Millisecond)
		stale, err := cache.GetOrSetMany(ctx, c, []string{"s1", "s2"}, 300*time.Millisecond,
			func(context.Context, []string) (map[string]string, error) { return nil, boom }, cache.StaleFor(time.Hour))
		if err != nil || stale["s1"] != "old" || stale["s2"] != "old" {
			t.Fatalf("GetOrSetMany with fail-safe and a failing load = %v, %v; want the stale values", stale, err)
		}

		defer func() {
			if _, ok := recover().(*cache.LoadPanicError); !ok {
				t.Error("a panic in loadMany did not reach the caller as a *LoadPanicError")
			}
		}()
		_, _ = cache.GetOrSetMany(ctx, c, []string{"p1", "p2"}, time.Minute,
			func(context.Context, []string) (map[string]int, error) { panic("boom") })
	})
}

// TestAddAndIncrement: the front end's Add and Increment on every backend:
// Add only if absent; Increment creates, adds, reads back with Get as a
// number; Decrement; concurrent increments are exact; a non-integer is
// ErrNotInteger; a disabled cache stores nothing.
func TestAddAndIncrement(t *testing.T) {
	bulkBackends(t, func(t *testing.T, c *cache.Cache) {
		ctx := t.Context()
		if added, err := c.Add(ctx, "a", item{1, "x"}, 0); err != nil || !added {
			t.Fatalf("Add of a missing key = %v, %v", added, err)
		}
		if added, err := c.Add(ctx, "a", item{2, "y"}, 0); err != nil || added {
			t.Fatalf("Add of a present key = %v, %v", added, err)
		}
		if v, _, _ := cache.Get[item](ctx, c, "a"); v.N != 1 {
			t.Errorf("Add replaced a present value: %+v", v)
		}
		if n, err := c.Increment(ctx, "n", 5, time.Minute); err != nil || n != 5 {
			t.Fatalf("Increment of a missing key = %d, %v", n, err)
		}
		if n, err := c.Decrement(ctx, "n", 7, time.Minute); err != nil || n != -2 {
			t.Fatalf("Decrement = %d, %v", n, err)
		}
		if v, found, err := cache.Get[int64](ctx, c, "n"); err != nil || !found || v != -2 {
			t.Errorf("Get[int64] of a counter = %d, %v, %v; want -2", v, found, err)
		}
		if err := c.Set(ctx, "obj", item{}, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Increment(ctx, "obj", 1, 0); !errors.Is(err, cache.ErrNotInteger) {
			t.Errorf("Increment of a struct = %v, want ErrNotInteger", err)
		}
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 25 {
					if _, err := c.Increment(context.Background(), "c", 1, 0); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		if v, _, _ := cache.Get[int](ctx, c, "c"); v != 200 {
			t.Errorf("8 goroutines incrementing 25 times: %d, want 200", v)
		}
		if _, err := c.Increment(ctx, "", 1, 0); !errors.Is(err, cache.ErrInvalidKey) {
			t.Errorf("Increment of an empty key = %v", err)
		}
		if _, err := c.Add(ctx, "k", 1, -time.Second); !errors.Is(err, cache.ErrInvalidTTL) {
			t.Errorf("Add with a negative ttl = %v", err)
		}
	})
	c, err := cache.Open(t.Context(), cache.Config{}) // disabled
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n, err := c.Increment(t.Context(), "n", 3, 0); err != nil || n != 3 {
		t.Errorf("Increment on a disabled cache = %d, %v; want 3 (nothing stored)", n, err)
	}
	if n, _ := c.Increment(t.Context(), "n", 3, 0); n != 3 {
		t.Errorf("a disabled cache kept a counter: %d", n)
	}
}

// TestGetOrSetManyCacheMisses: with CacheMisses, a key the batch load left
// out is not loaded again until the time passes, reads as missing, and a
// Set of it ends that at once.
func TestGetOrSetManyCacheMisses(t *testing.T) {
	bulkBackends(t, func(t *testing.T, c *cache.Cache) {
		ctx := t.Context()
		var asked [][]string
		var mu sync.Mutex
		load := func(_ context.Context, missing []string) (map[string]int, error) {
			mu.Lock()
			asked = append(asked, slices.Clone(missing))
			mu.Unlock()
			out := map[string]int{}
			for _, k := range missing {
				if k != "ghost" {
					out[k] = 1
				}
			}
			return out, nil
		}
		keys := []string{"real", "ghost"}
		for range 2 {
			got, err := cache.GetOrSetMany(ctx, c, keys, time.Minute, load, cache.CacheMisses(300*time.Millisecond))
			if err != nil || len(got) != 1 || got["real"] != 1 {
				t.Fatalf("GetOrSetMany = %v, %v; want real alone", got, err)
			}
			waitStored(t, c, "real")
			time.Sleep(20 * time.Millisecond) // the absent entry is stored after the callers go, on a remote store
		}
		mu.Lock()
		n := len(asked)
		mu.Unlock()
		if n != 1 {
			t.Fatalf("loadMany called %d times (%v), want once: the ghost is known missing", n, asked)
		}
		if _, found, err := cache.Get[int](ctx, c, "ghost"); err != nil || found {
			t.Errorf("Get of a key known missing = found %v, %v; want a miss", found, err)
		}
		if _, err := cache.GetOrSet(ctx, c, "ghost", time.Minute, func(context.Context) (int, error) { return 2, nil }); !errors.Is(err, cache.ErrNotLoaded) {
			t.Errorf("GetOrSet of a key known missing = %v, want ErrNotLoaded", err)
		}
		time.Sleep(350 * time.Millisecond)
		if _, err := cache.GetOrSetMany(ctx, c, keys, time.Minute, load, cache.CacheMisses(300*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		n = len(asked)
		mu.Unlock()
		if n != 2 {
			t.Fatalf("after the CacheMisses time, loadMany called %d times in all, want 2: the ghost is asked again", n)
		}
		if err := c.Set(ctx, "ghost", 5, 0); err != nil {
			t.Fatal(err)
		}
		if got, _ := cache.GetOrSetMany(ctx, c, keys, time.Minute, load, cache.CacheMisses(time.Minute)); got["ghost"] != 5 {
			t.Errorf("after a Set of the ghost, GetOrSetMany = %v, want its value", got)
		}
	})
}
