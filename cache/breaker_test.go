package cache_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/cache/cachetest"
	"github.com/ushka-go/ushka/cache/memory"
	"github.com/ushka-go/ushka/internal/testutil"
)

// The outage contract's cases that any store must pass are in
// cachetest.TestOutage (run by cache/memory and cache/redis); these are the
// breaker's own.

// pingCounter is a store whose Ping blocks while its gate is shut and
// counts the Pings in flight at once.
type pingCounter struct {
	cache.Store
	down           atomic.Bool
	inflight, most atomic.Int64
	pings          atomic.Int64
	gate           chan struct{}
}

func (p *pingCounter) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if p.down.Load() {
		return nil, false, errors.New("connection refused")
	}
	return p.Store.Get(ctx, key)
}

func (p *pingCounter) Ping(ctx context.Context) error {
	p.pings.Add(1)
	n := p.inflight.Add(1)
	defer p.inflight.Add(-1)
	for m := p.most.Load(); n > m && !p.most.CompareAndSwap(m, n); m = p.most.Load() {
	}
	select {
	case <-p.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	if p.down.Load() {
		return errors.New("connection refused")
	}
	return nil
}

// TestBreakerProbesOneAtATime: while the breaker is open, one probe at a
// time asks the store, however many calls are refused meanwhile, and a
// probe that hangs is not joined by another.
func TestBreakerProbesOneAtATime(t *testing.T) {
	inner, _ := memory.New(memory.Options{})
	p := &pingCounter{Store: inner, gate: make(chan struct{})}
	p.down.Store(true)
	c := cache.New(p, cache.WithLogger(nil), cache.WithBreaker(cache.BreakerConfig{Retry: 5 * time.Millisecond}))
	defer c.Close()
	ctx := t.Context()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				var s string
				_, _ = c.Get(ctx, "k", &s)
			}
		})
	}
	wg.Wait()
	if st := c.Breaker(); st.State != cache.BreakerOpen {
		t.Fatalf("breaker = %+v, want open", st)
	}
	time.Sleep(100 * time.Millisecond) // pings hang: the gate is shut
	if got := p.most.Load(); got != 1 {
		t.Fatalf("%d probes in flight at once, want 1", got)
	}
	close(p.gate) // pings answer, failing, for a while
	time.Sleep(50 * time.Millisecond)
	if got := p.most.Load(); got != 1 {
		t.Fatalf("%d probes in flight at once, want 1", got)
	}
	before := p.pings.Load()
	p.down.Store(false)
	for c.Breaker().State != cache.BreakerClosed {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if after := p.pings.Load(); after-before > 2 {
		t.Fatalf("%d pings after the store answered, want the probing to stop once the breaker closed", after-before)
	}
}

// TestBreakerSlowButAnsweringStoreStaysClosed: a store that answers every
// call slowly, but answers, is not hung: with calls overlapping, answers
// keep coming, and the breaker stays closed.
func TestBreakerSlowButAnsweringStoreStaysClosed(t *testing.T) {
	var chaos cachetest.Chaos
	c := overChaos(t, &chaos, cache.WithBreaker(cache.BreakerConfig{HangAfter: 200 * time.Millisecond}))
	chaos.Delay(20*time.Millisecond, cachetest.OpGet)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				var s string
				if _, err := c.Get(t.Context(), fmt.Sprint("k", g, i), &s); err != nil {
					t.Errorf("Get on a slow store = %v, want it answered", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if st := c.Stats(); st.BreakerOpened != 0 {
		t.Fatalf("breaker opened %d times on a store that answers every call in 20ms", st.BreakerOpened)
	}
}

// keepOpen is a store that Close leaves open, so that a test can look at
// it after the cache over it closed.
type keepOpen struct{ cache.Store }

func (keepOpen) Close() error { return nil }

// TestBreakerCloseReplaysOrReportsTheQueue: Close replays what is queued
// when the store answers, and otherwise says, at error level, how many
// invalidations are lost; the prober ends with it (goleak, in TestMain).
func TestBreakerCloseReplaysOrReportsTheQueue(t *testing.T) {
	for _, up := range []bool{true, false} {
		t.Run(fmt.Sprintf("store_up=%v", up), func(t *testing.T) {
			inner, _ := memory.New(memory.Options{})
			defer inner.Close()
			var chaos cachetest.Chaos
			var logs testutil.Buffer
			c := cache.New(chaos.Wrap(keepOpen{inner}), cache.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))),
				cache.WithBreaker(cache.BreakerConfig{Retry: time.Hour}))
			ctx := t.Context()
			if err := c.Set(ctx, "k", "v", 0); err != nil {
				t.Fatal(err)
			}
			chaos.Fail(errors.New("connection refused"))
			for range 3 {
				var s string
				_, _ = c.Get(ctx, "k", &s)
			}
			if err := c.Delete(ctx, "k"); !errors.Is(err, cache.ErrUnavailable) {
				t.Fatalf("Delete while open = %v", err)
			}
			if up {
				chaos.Heal()
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			_, found, _ := inner.Get(context.Background(), "k")
			lost := strings.Contains(logs.String(), "invalidations not replayed")
			if up && (found || lost) {
				t.Fatalf("Close with the store back: k found = %v, lost logged = %v; want the Delete replayed", found, lost)
			}
			if !up && (!found || !lost) {
				t.Fatalf("Close with the store down: k found = %v, lost logged = %v; want the loss said at error level\n%s", found, lost, logs.String())
			}
		})
	}
}

// TestBreakerClosesOverARefusedReplay: a store that answers but refuses
// the replayed Delete (a read-only replica says READONLY until an operator
// acts) is let through again for every other key; the refused key stays
// queued, reads as missing in this process, and is replayed once accepted.
func TestBreakerClosesOverARefusedReplay(t *testing.T) {
	inner, _ := memory.New(memory.Options{})
	defer inner.Close()
	var chaos cachetest.Chaos
	c := cache.New(chaos.Wrap(keepOpen{inner}), cache.WithLogger(nil), cache.WithBreaker(cache.BreakerConfig{Retry: 5 * time.Millisecond}))
	defer c.Close()
	ctx := t.Context()
	for _, k := range []string{"a", "b"} {
		if err := c.Set(ctx, k, "v", 0); err != nil {
			t.Fatal(err)
		}
	}
	chaos.Fail(errors.New("connection refused"))
	var s string
	for range 3 {
		_, _ = c.Get(ctx, "b", &s)
	}
	if err := c.Delete(ctx, "a"); !errors.Is(err, cache.ErrUnavailable) {
		t.Fatalf("Delete while open = %v", err)
	}
	chaos.Fail(fmt.Errorf("%w: READONLY You can't write against a read only replica.", cache.ErrRefused), cachetest.OpDelete)
	for c.Breaker().State != cache.BreakerClosed {
		time.Sleep(time.Millisecond)
	}
	if found, err := c.Get(ctx, "b", &s); err != nil || !found {
		t.Fatalf("Get(b) once the store answers = (%v, %v), want the value", found, err)
	}
	if found, err := c.Get(ctx, "a", &s); err != nil || found {
		t.Fatalf("Get(a), whose Delete the store refuses, = (%v, %v), want a miss", found, err)
	}
	if st := c.Breaker(); st.Queued != 1 {
		t.Fatalf("Breaker() = %+v, want a's Delete still queued", st)
	}
	chaos.Heal()
	for c.Breaker().Queued > 0 {
		time.Sleep(time.Millisecond)
	}
	if _, found, _ := inner.Get(ctx, "a"); found {
		t.Fatal("a in the store once its Delete was accepted")
	}
}
