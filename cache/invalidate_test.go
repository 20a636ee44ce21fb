package cache_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/cache/memory"
	"github.com/ushka-go/ushka/cache/redis"
	"github.com/ushka-go/ushka/internal/redistest"
	"github.com/ushka-go/ushka/internal/testutil"
)

// eachBackend runs test on a fresh in_memory cache and on a fresh cache over a
// real redis-server: the invalidation rules are the front end's, and must hold
// over a remote store as well as over a local one.
func eachBackend(t *testing.T, test func(t *testing.T, c *cache.Cache)) {
	t.Run("backend=in_memory", func(t *testing.T) {
		t.Parallel()
		test(t, newCache(t))
	})
	for _, near := range []bool{false, true} {
		name := "backend=redis"
		if near {
			name += "/near_cache"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			s, err := redis.Open(t.Context(), cache.Config{RedisURL: cache.SecretURL("redis://" + srv.Addr), Timeout: time.Second, NearCache: near})
			if err != nil {
				t.Fatal(err)
			}
			c := cache.New(s, cache.WithLogger(nil))
			t.Cleanup(func() { c.Close() })
			test(t, c)
		})
	}
}

// source is the data a load reads: a version that the test changes before it
// invalidates the cache, as an application changes its database and then
// deletes the cached copy.
type source struct{ version atomic.Int32 }

// staleLoad starts a GetOrSet of key whose load reads src and then blocks
// until release is closed. It returns once the load has read src, and a
// channel that yields what that GetOrSet returned.
func staleLoad(t *testing.T, c *cache.Cache, key string, src *source, release <-chan struct{}) <-chan int32 {
	t.Helper()
	read := make(chan struct{})
	got := make(chan int32, 1)
	go func() {
		v, err := cache.GetOrSet(context.Background(), c, key, time.Minute, func(context.Context) (int32, error) {
			v := src.version.Load()
			close(read)
			<-release
			return v, nil
		})
		if err != nil {
			t.Error(err)
		}
		got <- v
	}()
	<-read
	return got
}

// TestDeleteDuringLoadIsNotUndone is the regression test of issue 8, item 1:
// a load that read the source before a Delete neither reaches a caller that
// asks after the Delete returned nor lands in the store. On the code before
// the fix, the second GetOrSet joined the stale flight and returned 1, and 1
// was stored for the whole TTL.
func TestDeleteDuringLoadIsNotUndone(t *testing.T) {
	for _, inv := range []struct {
		name       string
		invalidate func(ctx context.Context, c *cache.Cache, key string) error
	}{
		{"Delete", func(ctx context.Context, c *cache.Cache, key string) error { return c.Delete(ctx, key) }},
		{"Clear", func(ctx context.Context, c *cache.Cache, _ string) error { return c.Clear(ctx) }},
		{"Set", func(ctx context.Context, c *cache.Cache, key string) error {
			return c.Set(ctx, key, int32(2), time.Minute)
		}},
	} {
		t.Run("by="+inv.name, func(t *testing.T) {
			eachBackend(t, func(t *testing.T, c *cache.Cache) {
				ctx := t.Context()
				var src source
				src.version.Store(1)
				release := make(chan struct{})
				first := staleLoad(t, c, "report", &src, release)

				src.version.Store(2) // the database changes...
				if err := inv.invalidate(ctx, c, "report"); err != nil {
					t.Fatal(err) // ...and the application invalidates the cache
				}
				// A caller arriving now must not join the load that read 1.
				// (Before the fix it joined it, and waited for it.)
				wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				v, err := cache.GetOrSet(wctx, c, "report", time.Minute, func(context.Context) (int32, error) {
					return src.version.Load(), nil
				})
				if err != nil {
					close(release)
				}
				if err != nil || v != 2 {
					t.Fatalf("GetOrSet after %s = (%d, %v), want 2: it joined a load that began before the invalidation", inv.name, v, err)
				}
				close(release)
				<-first // the caller that asked first may get 1: it asked before the invalidation
				c.WaitIdle(ctx)
				if got, found, err := cache.Get[int32](ctx, c, "report"); err != nil || (found && got != 2) {
					t.Fatalf("Get after the stale load ended = (%d, %v, %v), want 2 or a miss: the stale load's value was stored", got, found, err)
				}
			})
		})
	}
}

// gatedStore holds every Set until its gate opens, to catch a Set of a loaded
// value in flight.
type gatedStore struct {
	cache.Store
	setting chan struct{} // receives once per Set that waits at the gate
	gate    chan struct{}
}

func (s *gatedStore) Set(ctx context.Context, key string, v []byte, ttl time.Duration) error {
	s.setting <- struct{}{}
	select {
	case <-s.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.Store.Set(ctx, key, v, ttl)
}

// newGatedCache returns an in_memory cache whose store holds every Set at
// its gate.
func newGatedCache(t *testing.T) (*cache.Cache, *gatedStore) {
	t.Helper()
	inner, err := memory.New(memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	gs := &gatedStore{Store: inner, setting: make(chan struct{}, 1), gate: make(chan struct{})}
	c := cache.New(gs, cache.WithLogger(nil))
	t.Cleanup(func() { c.Close() })
	return c, gs
}

// TestDeleteWaitsForAStoreOfALoadedValue covers the store half of issue 8,
// item 1: the write of a loaded value already on its way to the store when a
// Delete comes lands before the Delete, which then removes it.
func TestDeleteWaitsForAStoreOfALoadedValue(t *testing.T) {
	c, gs := newGatedCache(t)
	ctx := t.Context()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := cache.GetOrSet(wctx, c, "k", time.Minute, func(context.Context) (string, error) { return "old", nil })
	if err != nil {
		close(gs.gate)
	}
	if err != nil || v != "old" {
		t.Fatalf("GetOrSet = (%q, %v)", v, err)
	}
	<-gs.setting // the loaded value is being stored, and the caller already has it
	deleted := make(chan error, 1)
	go func() { deleted <- c.Delete(ctx, "k") }()
	select {
	case err := <-deleted:
		t.Fatalf("Delete returned (%v) while a store of a value loaded before it was still on its way", err)
	case <-time.After(20 * time.Millisecond):
	}
	close(gs.gate)
	if err := <-deleted; err != nil {
		t.Fatal(err)
	}
	if _, found, _ := cache.Get[string](ctx, c, "k"); found {
		t.Fatal("the loaded value outlived the Delete that came after its load")
	}
}

// TestGetOrSetReleasesWaitersBeforeTheStoreWrite is the regression test of
// issue 8, item 2: callers get the loaded value when the load returns, not
// after the store has (or has not) taken it. Before the fix, GetOrSet did not
// return until the gated Set was released.
func TestGetOrSetReleasesWaitersBeforeTheStoreWrite(t *testing.T) {
	c, gs := newGatedCache(t)
	ctx := t.Context()
	var loads atomic.Int32
	load := func(context.Context) (string, error) { loads.Add(1); return "v", nil }
	done := make(chan string, 2)
	go func() { v, _ := cache.GetOrSet(ctx, c, "k", time.Minute, load); done <- v }()
	select {
	case v := <-done:
		if v != "v" {
			t.Fatalf("GetOrSet = %q", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("GetOrSet waited for the store write of the loaded value")
	}
	<-gs.setting
	// A caller arriving while the write is on its way gets the loaded value
	// without a second load.
	if v, err := cache.GetOrSet(ctx, c, "k", time.Minute, load); err != nil || v != "v" {
		t.Fatalf("GetOrSet during the store write = (%q, %v)", v, err)
	}
	if n := loads.Load(); n != 1 {
		t.Fatalf("load ran %d times, want 1", n)
	}
	close(gs.gate)
	c.WaitIdle(ctx)
	if v, found, err := cache.Get[string](ctx, c, "k"); err != nil || !found || v != "v" {
		t.Fatalf("Get after the write = (%q, %v, %v)", v, found, err)
	}
}

// TestGetOrSetOnAHungRedisCostsOneTimeout is issue 8, item 2 on a real
// server: against a Redis that is connected but answers nothing (stopped with
// SIGSTOP), a GetOrSet takes the read's timeout plus the load, not another
// timeout for the write. Before the fix it took two timeouts and the load
// (about 410 ms here), past the caller's 350 ms deadline.
func TestGetOrSetOnAHungRedisCostsOneTimeout(t *testing.T) {
	srv := redistest.Start(t)
	s, err := redis.Open(t.Context(), cache.Config{RedisURL: cache.SecretURL("redis://" + srv.Addr), Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c := cache.New(s, cache.WithLogger(nil))
	defer c.Close()
	if err := c.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv.Pause()
	defer srv.Resume()
	ctx, cancel := context.WithTimeout(t.Context(), 350*time.Millisecond)
	defer cancel()
	start := time.Now()
	v, err := cache.GetOrSet(ctx, c, "k", time.Minute, func(context.Context) (string, error) {
		time.Sleep(10 * time.Millisecond)
		return "loaded", nil
	})
	if err != nil || v != "loaded" {
		t.Fatalf("GetOrSet on a hung Redis = (%q, %v) after %v, want the loaded value within one timeout plus the load", v, err, time.Since(start))
	}
	srv.Resume()
	c.WaitIdle(t.Context())
}

// TestPanicNobodyReceivesIsLoggedAndCounted is the regression test of issue 8,
// item 7: a panic in a load whose callers all gave up is logged with its stack
// and counted, not lost. Before the fix nothing was logged.
func TestPanicNobodyReceivesIsLoggedAndCounted(t *testing.T) {
	var logs testutil.Buffer
	s, _ := memory.New(memory.Options{})
	c := cache.New(s, cache.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	defer c.Close()
	ctx, cancel := context.WithCancel(t.Context())
	started, release := make(chan struct{}), make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		_, err := cache.GetOrSet(ctx, c, "k", 0, func(context.Context) (int, error) {
			close(started)
			<-release
			panic("kaboom")
		})
		errc <- err
	}()
	<-started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("GetOrSet = %v, want context.Canceled", err)
	}
	close(release)
	c.WaitIdle(t.Context())
	logged := logs.String()
	if !strings.Contains(logged, "kaboom") || !strings.Contains(logged, "goroutine") || !strings.Contains(logged, "level=ERROR") {
		t.Fatalf("the panic nobody received was not logged with its stack: %q", logged)
	}
	if got := c.Stats().Errors; got != 1 {
		t.Fatalf("Stats().Errors = %d, want the panic counted once", got)
	}
}

// TestPanicReceivedIsNotAlsoLogged: a panic that reaches a caller is that
// caller's to handle (an error is returned or logged, not both), though it is
// still counted.
func TestPanicReceivedIsNotAlsoLogged(t *testing.T) {
	var logs testutil.Buffer
	s, _ := memory.New(memory.Options{})
	c := cache.New(s, cache.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	defer c.Close()
	func() {
		defer func() { _ = recover() }()
		cache.GetOrSet(t.Context(), c, "k", 0, func(context.Context) (int, error) { panic("kaboom") })
	}()
	c.WaitIdle(t.Context())
	if logged := logs.String(); logged != "" {
		t.Fatalf("a panic its caller received was logged too: %q", logged)
	}
	if got := c.Stats().Errors; got != 1 {
		t.Fatalf("Stats().Errors = %d, want 1", got)
	}
}

// TestCallersCancellationIsNotACacheError is the regression test of issue 8,
// item 10, on a real Redis: a caller whose context was canceled or expired
// gets its context's error, and Stats().Errors stays 0. Before the fix each
// such call counted as a cache error.
func TestCallersCancellationIsNotACacheError(t *testing.T) {
	srv := redistest.Start(t)
	s, err := redis.Open(t.Context(), cache.Config{RedisURL: cache.SecretURL("redis://" + srv.Addr)})
	if err != nil {
		t.Fatal(err)
	}
	c := cache.New(s, cache.WithLogger(nil))
	defer c.Close()
	if err := c.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	expired, cancel2 := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel2()
	for _, ctx := range []context.Context{canceled, expired} {
		var s string
		if _, err := c.Get(ctx, "k", &s); err == nil {
			t.Fatal("Get with an ended context succeeded")
		}
		if err := c.Set(ctx, "k", "v", 0); err == nil {
			t.Fatal("Set with an ended context succeeded")
		}
		if err := c.Delete(ctx, "k"); err == nil {
			t.Fatal("Delete with an ended context succeeded")
		}
		if err := c.Clear(ctx); err == nil {
			t.Fatal("Clear with an ended context succeeded")
		}
		if _, err := cache.GetOrSet(ctx, c, "k", 0, func(context.Context) (int, error) { return 1, nil }); err == nil {
			t.Fatal("GetOrSet with an ended context succeeded")
		}
	}
	if got := c.Stats().Errors; got != 0 {
		t.Fatalf("Stats().Errors = %d after callers' own cancellations, want 0", got)
	}
}

// TestTTLAboveMaxIsRejected is issue 8, item 11 at the API: a ttl above
// cache.MaxTTL is ErrInvalidTTL on every backend, and nothing is written.
// Before the fix in_memory took it and Redis failed every such Set.
func TestTTLAboveMaxIsRejected(t *testing.T) {
	eachBackend(t, func(t *testing.T, c *cache.Cache) {
		ctx := t.Context()
		for _, ttl := range []time.Duration{cache.MaxTTL + time.Millisecond, 1<<63 - 1} {
			if err := c.Set(ctx, "k", "v", ttl); !errors.Is(err, cache.ErrInvalidTTL) {
				t.Errorf("Set(ttl=%v) = %v, want ErrInvalidTTL", ttl, err)
			}
			_, err := cache.GetOrSet(ctx, c, "k", ttl, func(context.Context) (string, error) {
				t.Error("load called with an invalid ttl")
				return "", nil
			})
			if !errors.Is(err, cache.ErrInvalidTTL) {
				t.Errorf("GetOrSet(ttl=%v) = %v, want ErrInvalidTTL", ttl, err)
			}
		}
		if _, found, _ := cache.Get[string](ctx, c, "k"); found {
			t.Fatal("a rejected ttl wrote a value")
		}
		if err := c.Set(ctx, "k", "v", cache.MaxTTL); err != nil {
			t.Fatalf("Set(ttl=MaxTTL) = %v", err)
		}
		if v, found, err := cache.Get[string](ctx, c, "k"); err != nil || !found || v != "v" {
			t.Fatalf("Get after Set(ttl=MaxTTL) = (%q, %v, %v)", v, found, err)
		}
	})
}

// TestFailedDecodeLeavesDstUntouched is issue 8, item 13's second half: an
// entry that does not decode into dst is an error and dst keeps what it held.
func TestFailedDecodeLeavesDstUntouched(t *testing.T) {
	c := newCache(t)
	ctx := t.Context()
	// Valid JSON for the first field, the wrong type for the second.
	if err := c.Set(ctx, "k", `{"generated_at":"new","data":"not a list"}`, 0); err != nil {
		t.Fatal(err)
	}
	dst := report{GeneratedAt: "mine", Data: []int{7}}
	if _, err := c.Get(ctx, "k", &dst); err == nil {
		t.Fatal("Get of an undecodable entry succeeded")
	}
	if dst.GeneratedAt != "mine" || len(dst.Data) != 1 || dst.Data[0] != 7 {
		t.Fatalf("a failed decode changed dst to %+v", dst)
	}
	// A hit replaces dst whole: what you read equals what was written.
	if err := c.Set(ctx, "k", report{Data: []int{1}}, 0); err != nil {
		t.Fatal(err)
	}
	if found, err := c.Get(ctx, "k", &dst); err != nil || !found {
		t.Fatal(found, err)
	}
	if dst.GeneratedAt != "" || len(dst.Data) != 1 || dst.Data[0] != 1 {
		t.Fatalf("Get into a used dst = %+v, want exactly the stored value", dst)
	}
}

// TestConcurrentInvalidationsAndLoads runs loads, Deletes and Clears of a few
// keys at once (for the race detector), then checks the final rule: after the
// last invalidation returned and every load ended, no key holds a version
// older than the one its last invalidation saw.
func TestConcurrentInvalidationsAndLoads(t *testing.T) {
	c := newCache(t)
	ctx := t.Context()
	keys := []string{"a", "b", "c"}
	var versions [3]atomic.Int32
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 300 {
				k := (w + i) % len(keys)
				switch i % 5 {
				case 0:
					versions[k].Add(1)
					if err := c.Delete(ctx, keys[k]); err != nil {
						t.Error(err)
					}
				case 1:
					if i%25 == 1 {
						for j := range versions {
							versions[j].Add(1)
						}
						if err := c.Clear(ctx); err != nil {
							t.Error(err)
						}
					}
				default:
					_, err := cache.GetOrSet(ctx, c, keys[k], time.Minute, func(context.Context) (int32, error) {
						return versions[k].Load(), nil
					})
					if err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	c.WaitIdle(ctx)
	for k, key := range keys {
		if v, found, _ := cache.Get[int32](ctx, c, key); found && v != versions[k].Load() {
			t.Errorf("key %s holds version %d after every load and invalidation ended, want %d", key, v, versions[k].Load())
		}
	}
}
