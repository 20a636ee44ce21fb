package cache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/cache/cachetest"
	"github.com/ushka-go/ushka/cache/memory"
)

// chaosCache is a cache over an in-memory store wrapped by chaos.
func chaosCache(t *testing.T, chaos *cachetest.Chaos) *cache.Cache {
	t.Helper()
	// These tests show Chaos's faults through the front end, call by call:
	// the breaker, which would refuse calls after a few failures, is kept
	// shut (TestBreaker* show it).
	return overChaos(t, chaos, cache.WithBreaker(cache.BreakerConfig{Failures: 1 << 30, HangAfter: time.Hour}))
}

// overChaos returns a cache over a new in-memory store wrapped in chaos,
// which the cache takes for a remote store (it puts its breaker in front),
// with no logger and opts; it is closed when t ends.
func overChaos(t testing.TB, chaos *cachetest.Chaos, opts ...cache.Option) *cache.Cache {
	t.Helper()
	s, err := memory.New(memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := cache.New(chaos.Wrap(s), append([]cache.Option{cache.WithLogger(nil)}, opts...)...)
	t.Cleanup(func() { c.Close() })
	return c
}

// TestChaosConformance: with no fault in force, a wrapped store keeps the
// Store contract: Chaos passes every call on as it is.
func TestChaosConformance(t *testing.T) {
	var chaos cachetest.Chaos
	cachetest.TestStore(t, func(t *testing.T) cache.Store {
		s, err := memory.New(memory.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return chaos.Wrap(s)
	})
}

var errBoom = errors.New("connection refused")

// TestChaosFail: Fail makes the named calls (or all) fail at once with the
// error given, matched by errors.Is; GetOrSet serves its load meanwhile;
// Heal ends it.
func TestChaosFail(t *testing.T) {
	var chaos cachetest.Chaos
	c := chaosCache(t, &chaos)
	ctx := t.Context()
	if err := c.Set(ctx, "k", "v", 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "k3", "v", 0); err != nil {
		t.Fatal(err)
	}
	chaos.Fail(errBoom)
	var v string
	if _, err := c.Get(ctx, "k", &v); !errors.Is(err, errBoom) {
		t.Fatalf("Get with every call failing = %v, want the injected error", err)
	}
	if err := c.Set(ctx, "k", "w", 0); !errors.Is(err, errBoom) {
		t.Fatalf("Set with every call failing = %v, want the injected error", err)
	}
	if got, err := cache.GetOrSet(ctx, c, "k2", 0, func(context.Context) (string, error) { return "loaded", nil }); err != nil || got != "loaded" {
		t.Fatalf("GetOrSet with the store failing = %q, %v, want its load's value", got, err)
	}
	c.WaitIdle(ctx) // its store of the loaded value, after the caller got it, fails too
	if err := c.Ping(ctx); !errors.Is(err, errBoom) {
		t.Fatalf("Ping with every call failing = %v, want the injected error", err)
	}
	chaos.Fail(errBoom, cachetest.OpDelete)
	// k3: "k", whose failed Set queued a Delete, reads as missing until the
	// Delete is replayed.
	if found, err := c.Get(ctx, "k3", &v); err != nil || !found || v != "v" {
		t.Fatalf("Get with only Delete failing = %q, %v, %v", v, found, err)
	}
	if found, err := c.Get(ctx, "k", &v); err != nil || found {
		t.Fatalf("Get of a key whose failed Set queued a Delete = %v, %v, want a miss", found, err)
	}
	if err := c.Delete(ctx, "k"); !errors.Is(err, errBoom) {
		t.Fatalf("Delete with Delete failing = %v, want the injected error", err)
	}
	chaos.Heal()
	if err := c.Delete(ctx, "k"); err != nil {
		t.Fatalf("Delete after Heal = %v", err)
	}
	if n := chaos.Injected(); n < 6 {
		t.Fatalf("Injected = %d, want at least the 6 calls that met a fault (the queued Delete's replays may add more)", n)
	}
}

// TestChaosHang: Hang blocks the named calls until their context ends;
// Heal releases the ones still blocked, which then run.
func TestChaosHang(t *testing.T) {
	var chaos cachetest.Chaos
	c := chaosCache(t, &chaos)
	if err := c.Set(t.Context(), "k", "v", 0); err != nil {
		t.Fatal(err)
	}
	chaos.Hang(cachetest.OpGet)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	var v string
	if _, err := c.Get(ctx, "k", &v); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get of a hung store with a 20ms deadline = %v, want DeadlineExceeded", err)
	}
	if err := c.Set(t.Context(), "other", "x", 0); err != nil {
		t.Fatalf("Set while only Get hangs = %v", err)
	}
	done := make(chan error, 1)
	go func() {
		var v string
		found, err := c.Get(context.Background(), "k", &v)
		if err == nil && (!found || v != "v") {
			err = errors.New("not the stored value")
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("a Get without a deadline returned while the store hangs: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	chaos.Heal()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the Get that Heal released: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Heal did not release a hung Get within 5s")
	}
}

// TestChaosDelay: Delay makes calls wait before they run, or fail when
// their context ends first.
func TestChaosDelay(t *testing.T) {
	var chaos cachetest.Chaos
	c := chaosCache(t, &chaos)
	chaos.Delay(time.Hour, cachetest.OpSet)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if err := c.Set(ctx, "k", "v", 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Set delayed an hour, with a 10ms deadline = %v, want DeadlineExceeded", err)
	}
	chaos.Delay(time.Millisecond)
	if err := c.Set(t.Context(), "k", "v", 0); err != nil {
		t.Fatalf("Set delayed 1ms = %v", err)
	}
}

// TestChaosFaultChanges: a second Hang keeps the calls already hung hung;
// Heal releases delayed calls as well as hung ones. (The second hostile
// review found both wrong.)
func TestChaosFaultChanges(t *testing.T) {
	var chaos cachetest.Chaos
	c := chaosCache(t, &chaos)
	get := func() <-chan error {
		done := make(chan error, 1)
		go func() {
			var v string
			_, err := c.Get(context.Background(), "k", &v)
			done <- err
		}()
		return done
	}
	stillWaiting := func(done <-chan error, what string) {
		t.Helper()
		select {
		case err := <-done:
			t.Fatalf("%s returned (%v)", what, err)
		case <-time.After(30 * time.Millisecond):
		}
	}
	released := func(done <-chan error, what string) {
		t.Helper()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s did not return within 5s", what)
		}
	}
	chaos.Hang(cachetest.OpGet)
	hung := get()
	stillWaiting(hung, "a Get hung by Hang(OpGet)")
	chaos.Hang()
	stillWaiting(hung, "a Get hung by Hang(OpGet), after Hang() made every call hang")
	chaos.Heal()
	released(hung, "the hung Get after Heal")

	chaos.Delay(time.Hour)
	delayed := get()
	stillWaiting(delayed, "a Get delayed an hour")
	chaos.Heal()
	released(delayed, "the delayed Get after Heal")
}
