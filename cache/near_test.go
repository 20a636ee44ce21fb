package cache_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/internal/redistest"
)

// nearCache is a cache on srv with near_cache on and the given GetOrSet
// defaults: one process's worth of state, as redisCache's.
func nearCache(t *testing.T, srv *redistest.Server, opts ...cache.GetOrSetOption) *cache.Cache {
	t.Helper()
	return nearCacheWithin(t, srv, 200*time.Millisecond, opts...)
}

// nearCacheWithin is nearCache with another timeout.
func nearCacheWithin(t *testing.T, srv *redistest.Server, timeout time.Duration, opts ...cache.GetOrSetOption) *cache.Cache {
	t.Helper()
	return openRedisCache(t, srv, cache.Config{Timeout: timeout, NearCache: true}, opts...)
}

// TestNearCacheCarriesAnotherProcesssDelete: with the near cache on, a
// Delete in another process reaches this one through Redis's invalidation,
// and drops the copy fail-safe keeps for outages. So when Redis then dies
// and the load fails, the deleted value is not served stale: the Delete is
// final in every process, not only in Redis. (Without the near cache a
// process hears nothing of another's Delete, and serves its copy; the
// README says so.)
func TestNearCacheCarriesAnotherProcesssDelete(t *testing.T) {
	srv := redistest.Start(t)
	a := nearCache(t, srv, cache.StaleFor(time.Hour))
	b := redisCache(t, srv)
	ctx := t.Context()
	var src flaky
	src.version.Store(1)
	// The first call loads and stores the report; the second reads it back,
	// with tracking, as every later request of the process does. (Redis
	// tracks a key for a client from its read until the next change, its
	// own write included: a process hears of another's Delete of a key it
	// has read since it last wrote it.)
	for range 2 {
		if v, err := cache.GetOrSet(ctx, a, "report", time.Minute, src.load); err != nil || v != 1 {
			t.Fatalf("GetOrSet = (%d, %v)", v, err)
		}
		a.WaitIdle(ctx)
	}
	if v, ok := a.LocalCopy("report"); !ok {
		t.Fatalf("no fail-safe copy of the report: %q", v)
	}
	deleteReachesTheCopy(t, srv, a, b, &src)
}

// TestNearCacheHitsCountedApart: GetOrSet and Get count the hits the near
// cache served apart from those read from Redis.
func TestNearCacheHitsCountedApart(t *testing.T) {
	srv := redistest.Start(t)
	c := nearCache(t, srv)
	ctx := t.Context()
	for range 3 {
		if _, err := cache.GetOrSet(ctx, c, "k", time.Minute, func(ctx context.Context) (int, error) { return 7, nil }); err != nil {
			t.Fatal(err)
		}
		c.WaitIdle(ctx)
	}
	var v int
	if found, err := c.Get(ctx, "k", &v); err != nil || !found || v != 7 {
		t.Fatalf("Get = %d, %v, %v", v, found, err)
	}
	// The first GetOrSet missed and loaded; the second read Redis (the
	// value its own Fill wrote was forgotten, as every own write is); the
	// third and the Get were near hits.
	if st := c.Stats(); st.Misses != 1 || st.Hits != 3 || st.NearHits != 2 {
		t.Fatalf("Stats = %+v, want 1 miss and 3 hits, 2 of them near", st)
	}
}

// TestNearCacheCarriesADeleteAfterTheProcesssOwnFill: a process loads a
// key through GetOrSet (its Fill writes the entry), and another process
// deletes it before the first reads it again. The Fill ends with a read of
// the key, so that Redis goes on reporting changes to it: the Delete drops
// the first process's fail-safe copy, and with Redis then dead and the
// load failing, the deleted value is not served. (Before, a write ended
// the process's tracking of the key, and the hostile review's process
// served the deleted value.)
func TestNearCacheCarriesADeleteAfterTheProcesssOwnFill(t *testing.T) {
	srv := redistest.Start(t)
	a := nearCache(t, srv, cache.StaleFor(time.Hour))
	b := redisCache(t, srv)
	ctx := t.Context()
	var src flaky
	src.version.Store(1)
	if v, err := cache.GetOrSet(ctx, a, "report", time.Minute, src.load); err != nil || v != 1 {
		t.Fatalf("GetOrSet = (%d, %v)", v, err)
	}
	a.WaitIdle(ctx)
	deleteReachesTheCopy(t, srv, a, b, &src)
}

// deleteReachesTheCopy deletes "report" through b, waits until a's fail-safe
// copy of it is gone, then stops Redis and checks that a's GetOrSet, whose
// load now fails, returns the load's error rather than the deleted value.
func deleteReachesTheCopy(t *testing.T, srv *redistest.Server, a, b *cache.Cache, src *flaky) {
	t.Helper()
	ctx := t.Context()
	if err := b.Delete(ctx, "report"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := a.LocalCopy("report"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the other process's Delete did not drop this process's fail-safe copy within 5s")
		}
		time.Sleep(time.Millisecond)
	}
	srv.Stop()
	src.fail.Store(true)
	if v, err := cache.GetOrSet(ctx, a, "report", time.Minute, src.load); !errors.Is(err, errDatabaseDown) {
		t.Fatalf("GetOrSet after another process's Delete, with Redis dead and the load failing = (%d, %v), want the load's error", v, err)
	}
}

// TestNearCacheDeleteRightAfterTheFill: another process deletes a key in
// the moment this process's load stores it. Redis is paused during the
// load so that the Fill and the Delete run back to back when it resumes,
// in either order. Whichever comes first, the deleted value is not kept as
// this process's fail-safe copy, so that it is not served when Redis then
// dies. (The second hostile review found the copy kept when the Delete ran
// between the Fill and the read that followed it.)
func TestNearCacheDeleteRightAfterTheFill(t *testing.T) {
	srv := redistest.Start(t)
	a := nearCacheWithin(t, srv, 3*time.Second, cache.StaleFor(time.Hour))
	b := nearCacheWithin(t, srv, 3*time.Second)
	ctx := t.Context()
	for try := range 10 {
		key := fmt.Sprintf("report%d", try)
		var wg sync.WaitGroup
		load := func(context.Context) (int, error) {
			srv.Pause()
			time.Sleep(20 * time.Millisecond)
			wg.Go(func() { time.Sleep(80 * time.Millisecond); _ = b.Delete(context.Background(), key) })
			wg.Go(func() { time.Sleep(200 * time.Millisecond); srv.Resume() })
			return 1, nil
		}
		if v, err := cache.GetOrSet(ctx, a, key, time.Minute, load); err != nil || v != 1 {
			t.Fatalf("GetOrSet = %d, %v", v, err)
		}
		wg.Wait()
		a.WaitIdle(ctx)
		time.Sleep(50 * time.Millisecond)
		if srv.Do("EXISTS", "ushka:"+key) == "0" {
			if v, kept := a.LocalCopy(key); kept {
				t.Fatalf("try %d: the key was deleted by another process, and this one kept its fail-safe copy %q", try, v)
			}
		}
	}
}

// TestNearCacheFailingRefreshKeepsTheCopy: an early refresh whose load
// fails, with the near cache on. The refresh's own lock writes come back as
// reports of changes to the key; they must not drop the fail-safe copy, so
// that with Redis then dead and the load still failing, the stale value is
// served. (The second hostile review found the copy dropped every time.)
func TestNearCacheFailingRefreshKeepsTheCopy(t *testing.T) {
	srv := redistest.Start(t)
	a := nearCacheWithin(t, srv, time.Second, cache.StaleFor(time.Hour), cache.FailSafeThrottle(time.Hour), cache.RefreshAhead(0.5))
	ctx := t.Context()
	var src flaky
	src.version.Store(1)
	if v, err := cache.GetOrSet(ctx, a, "k", 300*time.Millisecond, src.load); err != nil || v != 1 {
		t.Fatalf("GetOrSet = %d, %v", v, err)
	}
	a.WaitIdle(ctx)
	time.Sleep(200 * time.Millisecond) // past half the ttl: the next hit refreshes
	src.fail.Store(true)
	if v, err := cache.GetOrSet(ctx, a, "k", 300*time.Millisecond, src.load); err != nil || v != 1 {
		t.Fatalf("the hit that starts the refresh = %d, %v", v, err)
	}
	a.WaitIdle(ctx)
	time.Sleep(50 * time.Millisecond)
	srv.Stop()
	time.Sleep(200 * time.Millisecond) // the lost connection has emptied the near cache
	if v, err := cache.GetOrSet(ctx, a, "k", 300*time.Millisecond, src.load); err != nil || v != 1 {
		t.Fatalf("GetOrSet with Redis dead and the load failing = %d, %v, want the stale 1", v, err)
	}
}
