package cache_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/cache/cachetest"
	"github.com/ushka-go/ushka/cache/memory"
)

// The tests of this file come from the first hostile review of the outage
// breaker (issue 11). Each failed on the code it reviewed; its comment
// tells the bug it found, in the present tense of that code, and the test
// now keeps it from coming back.

// TestReview11SlowStoreTripsTheDefaultBreaker: with the defaults (timeout
// 250ms, breaker_hang_after = timeout/4 = 62.5ms), a store that answers
// every call, each in 100ms (well within the timeout: a cross-zone Redis,
// a large value, a fork of BGSAVE), opens the breaker as soon as one
// caller waits on it alone: the watchdog takes "no answer for 62.5ms" for
// a hang. Every call that would have succeeded in 100ms then fails at once
// with ErrUnavailable for breaker_retry, and this repeats after each
// probe: a healthy but slow backend flaps at low traffic, and the user's
// low-traffic service sees errors that the timeout was set to avoid.
func TestReview11SlowStoreTripsTheDefaultBreaker(t *testing.T) {
	var chaos cachetest.Chaos
	c := overChaos(t, &chaos) // defaults: timeout 250ms
	ctx := t.Context()
	if err := c.Set(ctx, "k", "v", 0); err != nil {
		t.Fatal(err)
	}
	chaos.Delay(100*time.Millisecond, cachetest.OpGet) // slow, never failing
	var calls, unavailable int
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		calls++
		var s string
		if _, err := c.Get(ctx, "k", &s); errors.Is(err, cache.ErrUnavailable) {
			unavailable++
		} else if err != nil {
			t.Fatalf("Get on a slow store = %v", err)
		}
	}
	if st := c.Stats(); st.BreakerOpened != 0 || unavailable != 0 {
		t.Fatalf("a store answering every call in 100ms (timeout 250ms), one caller: the breaker opened %d times in 2s; %d of %d Gets failed with ErrUnavailable",
			st.BreakerOpened, unavailable, calls)
	}
}

// stuckGets is a remote store (no Borrow) whose Gets, while stuck, block
// until the gate opens and then fail as a dropped connection does (an
// error of the store's own, not the caller's context), and which fails the
// next failNext Gets at once.
type stuckGets struct {
	cache.Store
	stuck    atomic.Bool
	gate     chan struct{}
	failNext atomic.Int64
}

func (g *stuckGets) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if g.stuck.Load() && key != "ushka-breaker-probe" {
		select {
		case <-g.gate:
			return nil, false, errors.New("read tcp: connection reset by peer")
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
	if g.failNext.Add(-1) >= 0 {
		return nil, false, errors.New("read tcp: i/o timeout")
	}
	return g.Store.Get(ctx, key)
}

// Ping answers at once: the store is back.
func (g *stuckGets) Ping(context.Context) error { return nil }

// hideBorrow keeps an in-memory store from being taken for an in-process
// one, so that the cache puts its breaker in front of it.
type hideBorrow struct{ cache.Store }

// TestReview11LeftoverFailuresOpenTheBreakerOnOneError: calls that began
// during an outage and fail after the breaker closed do not trip it (their
// generation is over), but they still add to the count of failures in a
// row, which nothing resets until a call succeeds. The next single
// transient error after the recovery then opens the breaker again at once,
// not after breaker_failures (3) in a row: the service fails every call
// for breaker_retry because of one blip.
func TestReview11LeftoverFailuresOpenTheBreakerOnOneError(t *testing.T) {
	inner, _ := memory.New(memory.Options{})
	g := &stuckGets{Store: hideBorrow{inner}, gate: make(chan struct{})}
	c := cache.New(g, cache.WithLogger(nil), cache.WithBreaker(cache.BreakerConfig{
		Failures: 3, HangAfter: 50 * time.Millisecond, Retry: 10 * time.Millisecond}))
	defer c.Close()
	ctx := t.Context()
	g.stuck.Store(true)
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			var s string
			_, _ = c.Get(ctx, "k", &s)
		})
	}
	for c.Breaker().State != cache.BreakerOpen { // the watchdog finds the hang
		time.Sleep(time.Millisecond)
	}
	g.stuck.Store(false)
	for c.Breaker().State != cache.BreakerClosed { // the probe is answered
		time.Sleep(time.Millisecond)
	}
	close(g.gate) // the calls hung in the outage fail now, after the recovery
	wg.Wait()
	if st := c.Breaker(); st.State != cache.BreakerClosed {
		t.Fatalf("breaker %+v: leftover calls of an outage that is over opened it", st)
	}
	g.failNext.Store(1) // one transient error
	var s string
	_, _ = c.Get(ctx, "k", &s)
	if st := c.Stats(); st.BreakerOpened != 1 {
		t.Fatalf("one error after the recovery opened the breaker again (opened %d times; breaker_failures is 3)", st.BreakerOpened)
	}
}

// TestReview11HangAfterRecoveryNotDetected: the watchdog is armed only when
// a busy spell starts (calls in flight go from 0 to 1), and is not re-armed
// after it trips. A call left hanging from the first outage (a store call
// the caller did not bound) keeps calls in flight above zero, so after the
// breaker closed no busy spell ever starts again: a second hang is never
// found by the watchdog, and calls bounded by their callers' deadlines
// wait them out in full, with the breaker closed (contract (1)).
func TestReview11HangAfterRecoveryNotDetected(t *testing.T) {
	inner, _ := memory.New(memory.Options{})
	g := &stuckGets{Store: hideBorrow{inner}, gate: make(chan struct{})}
	c := cache.New(g, cache.WithLogger(nil), cache.WithBreaker(cache.BreakerConfig{
		HangAfter: 50 * time.Millisecond, Retry: 10 * time.Millisecond}))
	defer c.Close()
	defer close(g.gate)
	g.stuck.Store(true)
	leftover, cancelLeftover := context.WithCancel(context.Background())
	defer cancelLeftover()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancelLeftover()
	wg.Go(func() {
		var s string
		_, _ = c.Get(leftover, "stuck", &s) // hangs past the recovery
	})
	for c.Breaker().State != cache.BreakerOpen {
		time.Sleep(time.Millisecond)
	}
	// The probe is answered (Ping) and the breaker closes; the store is
	// still hung for Gets, as it was.
	for c.Breaker().State != cache.BreakerClosed {
		time.Sleep(time.Millisecond)
	}
	opened := c.Stats().BreakerOpened
	var calls sync.WaitGroup
	start := time.Now()
	for range 4 {
		calls.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			var s string
			_, _ = c.Get(ctx, "k", &s)
		})
	}
	calls.Wait()
	if c.Stats().BreakerOpened == opened {
		t.Fatalf("4 calls waited %v on a hung store (breaker_hang_after 50ms) and the breaker never opened: the watchdog is dead after its first trip",
			time.Since(start).Round(time.Millisecond))
	}
}

// TestReview11HungStoreNeverOpensForCallersWithShortDeadlines: callers that
// bound each cache call by a deadline shorter than breaker_hang_after (a
// common "never wait more than 20ms on the cache" rule) never open the
// breaker on a hung server when their calls do not overlap: each call
// ends with its caller's deadline (not counted as a failure, contract
// (6)), the busy spell ends with it, and the next call starts a new spell
// whose clock starts again from zero. The store has answered nothing for
// the whole second while calls waited on it nearly all that time, yet
// every call pays its full deadline instead of failing at once.
func TestReview11HungStoreNeverOpensForCallersWithShortDeadlines(t *testing.T) {
	var chaos cachetest.Chaos
	c := overChaos(t, &chaos) // defaults: timeout 250ms, hang_after 125ms
	chaos.Hang()
	start := time.Now()
	calls := 0
	for time.Since(start) < time.Second && c.Breaker().State == cache.BreakerClosed {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		var s string
		_, _ = c.Get(ctx, "k", &s)
		cancel()
		calls++
	}
	if st := c.Breaker(); st.State == cache.BreakerClosed {
		t.Fatalf("%d calls waited on a hung store for %v in all (breaker_hang_after 125ms), and the breaker is still closed",
			calls, time.Since(start).Round(time.Millisecond))
	}
}
