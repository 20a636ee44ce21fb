package cache_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/cache/cachetest"
	"github.com/ushka-go/ushka/cache/memory"
)

// The tests of this file come from the second hostile review of the outage
// breaker (issue 11). Each failed on the code it reviewed; its comment
// tells the bug it found, in the present tense of that code, and the test
// now keeps it from coming back.

// TestReview11bOneGivenUpCallOpensTheBreakerOnAHealthyStore: the "owed"
// carry-over of fix (4) never expires and is charged to the next call in
// full, whatever that call does. With the defaults (timeout 250ms,
// breaker_hang_after 125ms), a store answering every call in 100ms (the
// latency the first review pinned as healthy: TestReview11SlowStoreTrips-
// TheDefaultBreaker) is fine for one caller at a time, until ONE caller
// gives up after 80ms (an HTTP client that disconnected, a request whose
// budget ran out). Then owed = 80ms stays on the breaker, through any idle
// time (here 1s; in production, hours), and the next call, which the store
// answers in its usual 100ms, is taken for a hang 45ms into it: the breaker
// opens and every call is refused with ErrUnavailable for breaker_retry
// and a probe (Sets and Deletes are queued, keys read as missing). Under
// low traffic with occasional disconnects, this repeats after every
// disconnect: a healthy backend flaps.
func TestReview11bOneGivenUpCallOpensTheBreakerOnAHealthyStore(t *testing.T) {
	var chaos cachetest.Chaos
	c := overChaos(t, &chaos) // defaults: timeout 250ms, hang_after 125ms
	ctx := t.Context()
	if err := c.Set(ctx, "k", "v", 0); err != nil {
		t.Fatal(err)
	}
	chaos.Delay(100*time.Millisecond, cachetest.OpGet) // every Get answered, in 100ms

	var calls, unavailable, gaveUp int
	get := func(ctx context.Context) {
		calls++
		var s string
		_, err := c.Get(ctx, "k", &s)
		switch {
		case errors.Is(err, cache.ErrUnavailable):
			unavailable++
		case ctx.Err() != nil:
			gaveUp++
		case err != nil:
			t.Fatalf("Get on a healthy store = %v", err)
		}
	}
	// One client disconnects 80ms into its request.
	short, cancel := context.WithTimeout(ctx, 80*time.Millisecond)
	get(short)
	cancel()
	time.Sleep(time.Second) // idle: nothing is owed by a store nobody asks
	// Then ordinary callers, one at a time, as before the disconnect.
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		get(ctx)
	}
	if st := c.Stats(); st.BreakerOpened != 0 || unavailable != 0 {
		t.Fatalf("a store answering every Get in 100ms (timeout 250ms, hang_after 125ms): one caller gave up after 80ms, "+
			"1s later the breaker opened %d times and %d of %d ordinary Gets failed with ErrUnavailable",
			st.BreakerOpened, unavailable, calls-gaveUp)
	}
}

// TestReview11bDisconnectsInterleavedFlapTheBreaker: the same, as traffic:
// one request in three is abandoned by its client after 60ms (a flaky
// mobile network, a load balancer's short idle timeout), the others wait
// for the store, which answers each Get in 90ms, well under breaker_hang_-
// after (125ms) and the timeout (250ms). The store never fails to answer a
// call that waits for it, yet every abandoned call's 60ms is charged to the
// next one, which the watchdog then takes for a hang: the breaker opens
// after nearly every disconnect, and a large share of the ordinary
// requests fail at once with ErrUnavailable.
func TestReview11bDisconnectsInterleavedFlapTheBreaker(t *testing.T) {
	var chaos cachetest.Chaos
	c := overChaos(t, &chaos)
	ctx := t.Context()
	if err := c.Set(ctx, "k", "v", 0); err != nil {
		t.Fatal(err)
	}
	chaos.Delay(90*time.Millisecond, cachetest.OpGet)
	var ordinary, unavailable int
	for i := range 30 {
		var s string
		if i%3 == 0 {
			short, cancel := context.WithTimeout(ctx, 60*time.Millisecond)
			_, _ = c.Get(short, "k", &s)
			cancel()
		} else {
			ordinary++
			if _, err := c.Get(ctx, "k", &s); errors.Is(err, cache.ErrUnavailable) {
				unavailable++
			} else if err != nil {
				t.Fatalf("Get = %v", err)
			}
		}
		time.Sleep(30 * time.Millisecond)
	}
	if st := c.Stats(); st.BreakerOpened != 0 || unavailable != 0 {
		t.Fatalf("store answering every Get in 90ms, 1 request in 3 abandoned at 60ms: breaker opened %d times, "+
			"%d of %d ordinary Gets refused with ErrUnavailable", st.BreakerOpened, unavailable, ordinary)
	}
}

// flappy is a remote store (no Borrow) whose Gets fail at once while down,
// hang until their caller gives up while hung, and whose Ping answers.
type flappy struct {
	cache.Store
	down, hung atomic.Bool
}

func (f *flappy) Get(ctx context.Context, key string) ([]byte, bool, error) {
	switch {
	case f.hung.Load():
		<-ctx.Done()
		return nil, false, ctx.Err()
	case f.down.Load():
		return nil, false, errors.New("read tcp: connection reset by peer")
	}
	return f.Store.Get(ctx, key)
}

func (f *flappy) Ping(context.Context) error { return nil }

// TestReview11bGenerationRaceLeaksInflight: fix (5) starts a generation at
// each closing and resets inflight to 0, but begin reads the generation
// and then counts itself in inflight as two separate steps. A call that
// passed the state check, read generation g, and was descheduled while the
// breaker opened and closed again (generation g+1, inflight = 0) then adds
// itself to generation g+1's count; its end() is ignored (generation g), so
// inflight stays one too high for the whole new generation. From then on a
// call alone never starts a busy spell (inflight goes 1 -> 2, not 0 -> 1):
// the watchdog is never armed, and a hung store is not found until
// breaker_failures calls fail (callers with deadlines never count), or,
// if the watchdog was still armed, it keeps re-arming on the phantom call
// and opens the breaker on an idle healthy store. The outage of a flapping
// store is exactly when trip and settle come close together. Flaky by
// nature: fails in about a third of -race runs; use -count=5. (Confirmed
// with a temporary internal probe: inflight = -1 and +1 with no call in
// flight, in a closed generation.)
func TestReview11bGenerationRaceLeaksInflight(t *testing.T) {
	inner, _ := memory.New(memory.Options{})
	st := &flappy{Store: hideBorrow{inner}}
	c := cache.New(st, cache.WithLogger(nil), cache.WithBreaker(cache.BreakerConfig{
		Failures: 1, HangAfter: 10 * time.Millisecond, Retry: time.Millisecond}))
	defer c.Close()
	ctx := t.Context()
	if err := c.Set(ctx, "k", "v", 0); err != nil {
		t.Fatal(err)
	}
	waitState := func(want cache.BreakerState, within time.Duration) bool {
		for end := time.Now().Add(within); time.Now().Before(end); time.Sleep(100 * time.Microsecond) {
			if c.Breaker().State == want {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(5 * time.Second) // the race was hit in 1-2% of iterations: -count=N looks longer
	iterations := 0
	for ; time.Now().Before(deadline); iterations++ {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() {
				var s string
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := c.Get(ctx, "k", &s); errors.Is(err, cache.ErrUnavailable) {
						runtime.Gosched() // refused: let the prober run
					}
				}
			})
		}
		time.Sleep(time.Millisecond)
		st.down.Store(true)
		if !waitState(cache.BreakerOpen, time.Second) {
			t.Fatal("the breaker did not open on a failing store")
		}
		st.down.Store(false)
		if !waitState(cache.BreakerClosed, 5*time.Second) {
			t.Fatal("the breaker did not close")
		}
		close(stop)
		wg.Wait()
		// Healthy and idle: nothing may open it.
		opened := c.Stats().BreakerOpened
		time.Sleep(30 * time.Millisecond)
		if n := c.Stats().BreakerOpened; n != opened {
			t.Fatalf("iteration %d: the breaker opened on an idle, healthy store (no call in flight): %q", iterations, c.Breaker().Reason)
		}
		// One call on a hung store: the watchdog must open it in ~10ms.
		st.hung.Store(true)
		hctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		done := make(chan struct{})
		go func() {
			defer close(done)
			var s string
			_, _ = c.Get(hctx, "k", &s)
		}()
		opened = c.Stats().BreakerOpened
		found := false
		for end := time.Now().Add(250 * time.Millisecond); !found && time.Now().Before(end); time.Sleep(100 * time.Microsecond) {
			found = c.Stats().BreakerOpened != opened // it may close again within breaker_retry (1ms)
		}
		cancel()
		<-done
		st.hung.Store(false)
		if !found {
			t.Fatalf("iteration %d: a call waited 250ms on a hung store (breaker_hang_after 10ms) and the breaker stayed closed: "+
				"inflight leaked across a generation, and the watchdog is never armed again", iterations)
		}
		if !waitState(cache.BreakerClosed, time.Second) {
			t.Fatal("the breaker did not close")
		}
	}
	t.Logf("%d iterations without a leak", iterations)
}
