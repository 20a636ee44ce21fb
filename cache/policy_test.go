package cache_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/cache/memory"
	"github.com/ushka-go/ushka/internal/testutil"
)

// The GetOrSet policies on the in_memory backend, in a synctest bubble so
// that TTLs pass without sleeping. The same policies over Redis, across
// processes, are tested in package cache/redis.

// source is a load whose result the test controls: a version, or an error.
type flaky struct {
	version atomic.Int32
	fail    atomic.Bool
	slow    atomic.Int64 // a delay, in nanoseconds
	loads   atomic.Int32
}

var errDatabaseDown = errors.New("database down")

func (s *flaky) load(ctx context.Context) (int32, error) {
	s.loads.Add(1)
	if d := time.Duration(s.slow.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	if s.fail.Load() {
		return 0, errDatabaseDown
	}
	return s.version.Load(), nil
}

func policyCache(t *testing.T, logs *testutil.Buffer, opts ...cache.GetOrSetOption) *cache.Cache {
	t.Helper()
	s, err := memory.New(memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	if logs != nil {
		log = slog.New(slog.NewTextHandler(logs, nil))
	}
	c := cache.New(s, cache.WithLogger(log), cache.WithGetOrSetDefaults(opts...))
	t.Cleanup(func() { c.Close() })
	return c
}

func getOrSet(t *testing.T, c *cache.Cache, src *flaky, opts ...cache.GetOrSetOption) (int32, cache.Outcome, error) {
	t.Helper()
	var how cache.Outcome
	v, err := cache.GetOrSet(t.Context(), c, "report", time.Minute, src.load, append(opts, cache.ReportOutcome(&how))...)
	return v, how, err
}

func TestFailSafeServesStaleWhenTheLoadFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs testutil.Buffer
		c := policyCache(t, &logs, cache.StaleFor(time.Hour))
		var src flaky
		src.version.Store(1)
		if v, how, err := getOrSet(t, c, &src); err != nil || v != 1 || how != cache.OutcomeLoaded {
			t.Fatalf("first GetOrSet = (%d, %v, %v)", v, how, err)
		}
		time.Sleep(2 * time.Minute) // past the ttl, within stale_ttl
		src.fail.Store(true)
		v, how, err := getOrSet(t, c, &src)
		if err != nil || v != 1 || how != cache.OutcomeStale {
			t.Fatalf("GetOrSet with a failing load = (%d, %v, %v), want the stale 1", v, how, err)
		}
		if !strings.Contains(logs.String(), "cache serving a stale value") || !strings.Contains(logs.String(), "database down") {
			t.Fatalf("serving stale was not logged with its reason: %q", logs.String())
		}
		if s := c.Stats(); s.Stale != 1 {
			t.Fatalf("Stats().Stale = %d, want 1", s.Stale)
		}
		// Get keeps its contract: never a value past its ttl.
		if _, found, err := cache.Get[int32](t.Context(), c, "report"); found || err != nil {
			t.Fatalf("Get of a stale entry = (%v, %v), want a miss", found, err)
		}
		// Past stale_ttl there is nothing to serve: the error comes through.
		time.Sleep(2 * time.Hour)
		if _, _, err := getOrSet(t, c, &src); !errors.Is(err, errDatabaseDown) {
			t.Fatalf("GetOrSet past stale_ttl = %v, want the load's error", err)
		}
	})
}

func TestFailSafeThrottlesTheLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := policyCache(t, nil, cache.StaleFor(time.Hour), cache.FailSafeThrottle(10*time.Second))
		var src flaky
		src.version.Store(1)
		getOrSet(t, c, &src)
		time.Sleep(2 * time.Minute)
		src.fail.Store(true)
		src.loads.Store(0)
		for range 50 {
			if v, how, err := getOrSet(t, c, &src); err != nil || v != 1 || how != cache.OutcomeStale {
				t.Fatalf("GetOrSet while failing = (%d, %v, %v)", v, how, err)
			}
			time.Sleep(100 * time.Millisecond) // 5 s in all: within the throttle
		}
		if n := src.loads.Load(); n != 1 {
			t.Fatalf("the failing load ran %d times within one throttle, want 1", n)
		}
		time.Sleep(6 * time.Second) // the throttle has passed: one more try
		getOrSet(t, c, &src)
		if n := src.loads.Load(); n != 2 {
			t.Fatalf("the load ran %d times after the throttle passed, want 2", n)
		}
		src.fail.Store(false)
		src.version.Store(2)
		time.Sleep(11 * time.Second)
		if v, how, err := getOrSet(t, c, &src); err != nil || v != 2 || how != cache.OutcomeLoaded {
			t.Fatalf("GetOrSet once the load works again = (%d, %v, %v), want a fresh 2", v, how, err)
		}
	})
}

func TestFailSafeSoftTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := policyCache(t, nil, cache.StaleFor(time.Hour), cache.LoadTimeout(100*time.Millisecond))
		var src flaky
		src.version.Store(1)
		getOrSet(t, c, &src)
		time.Sleep(2 * time.Minute)
		src.version.Store(2)
		src.slow.Store(int64(time.Second))
		start := time.Now()
		v, how, err := getOrSet(t, c, &src)
		if err != nil || v != 1 || how != cache.OutcomeStale || time.Since(start) != 100*time.Millisecond {
			t.Fatalf("GetOrSet with a slow load = (%d, %v, %v) after %v, want the stale 1 after the 100ms soft timeout", v, how, err, time.Since(start))
		}
		// The load went on and stored its value.
		time.Sleep(time.Second)
		synctest.Wait()
		if v, how, err := getOrSet(t, c, &src); err != nil || v != 2 || how != cache.OutcomeHit {
			t.Fatalf("GetOrSet after the slow load ended = (%d, %v, %v), want the hit 2", v, how, err)
		}
	})
}

func TestLoadHardTimeoutCancelsTheLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := policyCache(t, nil, cache.LoadHardTimeout(time.Second))
		var src flaky
		src.slow.Store(int64(time.Hour))
		start := time.Now()
		if _, _, err := getOrSet(t, c, &src); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != time.Second {
			t.Fatalf("GetOrSet with a hung load = %v after %v, want the load's deadline after 1s", err, time.Since(start))
		}
	})
}

func TestRefreshAheadServesAtOnceAndReloadsOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := policyCache(t, nil, cache.RefreshAhead(0.8))
		var src flaky
		src.version.Store(1)
		getOrSet(t, c, &src)
		time.Sleep(50 * time.Second) // 83% of the minute
		src.version.Store(2)
		src.slow.Store(int64(time.Second))
		for range 20 {
			start := time.Now()
			if v, how, err := getOrSet(t, c, &src); err != nil || v != 1 || how != cache.OutcomeHit || time.Since(start) != 0 {
				t.Fatalf("GetOrSet due for refresh = (%d, %v, %v) after %v, want the cached 1 at once", v, how, err, time.Since(start))
			}
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if n := src.loads.Load(); n != 2 {
			t.Fatalf("load ran %d times, want 2: the first, and one refresh for 20 hits", n)
		}
		if v, _, _ := getOrSet(t, c, &src); v != 2 {
			t.Fatalf("GetOrSet after the refresh = %d, want 2", v)
		}
		if s := c.Stats(); s.Refreshes != 1 {
			t.Fatalf("Stats().Refreshes = %d, want 1", s.Refreshes)
		}
	})
}

func TestDeleteRemovesTheStaleValue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := policyCache(t, nil, cache.StaleFor(time.Hour))
		var src flaky
		src.version.Store(1)
		getOrSet(t, c, &src)
		time.Sleep(2 * time.Minute)
		if err := c.Delete(t.Context(), "report"); err != nil {
			t.Fatal(err)
		}
		src.fail.Store(true)
		if v, how, err := getOrSet(t, c, &src); !errors.Is(err, errDatabaseDown) {
			t.Fatalf("GetOrSet after Delete with a failing load = (%d, %v, %v), want the error: a deleted value is never served stale", v, how, err)
		}
	})
}

func TestEntryLayout(t *testing.T) {
	c := newCache(t)
	ctx := t.Context()
	// A value written by Set is stored as it is, even one that starts like
	// a header, and reads back as written.
	for _, v := range []string{"plain", cache.EntryMagic + "1 1 2 - - 0\nnot a header", cache.EntryMagic + "9"} {
		if err := c.Set(ctx, "k", v, 0); err != nil {
			t.Fatal(err)
		}
		if got, found, err := cache.Get[string](ctx, c, "k"); err != nil || !found || got != v {
			t.Fatalf("Get of %q = (%q, %v, %v)", v, got, found, err)
		}
	}
	raw := func(b string) {
		t.Helper()
		if err := c.Store().Set(ctx, "k", []byte(b), 0); err != nil {
			t.Fatal(err)
		}
	}
	// An entry of an unknown layout version, or a broken header, is a miss.
	for _, b := range []string{cache.EntryMagic + "2 1 2 - - 0\n\"v\"", cache.EntryMagic + "1 x\n\"v\"", cache.EntryMagic + "1 1 2 - - 0"} {
		raw(b)
		if _, found, err := cache.Get[string](ctx, c, "k"); found || err != nil {
			t.Fatalf("Get of %q = (%v, %v), want a miss", b, found, err)
		}
	}
	// A fresh entry with a header reads as its value; a placeholder misses.
	future := time.Now().Add(time.Hour).UnixMilli()
	raw(cache.EntryMagic + "1 1 " + itoa(future) + " - - 0\nv")
	if got, found, err := cache.Get[string](ctx, c, "k"); err != nil || !found || got != "v" {
		t.Fatalf("Get of a fresh entry = (%q, %v, %v)", got, found, err)
	}
	raw(cache.EntryMagic + "1 1 0 p abc " + itoa(future) + "\n")
	if _, found, err := cache.Get[string](ctx, c, "k"); found || err != nil {
		t.Fatalf("Get of a placeholder = (%v, %v), want a miss", found, err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
