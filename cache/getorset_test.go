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
	"github.com/ushka-go/ushka/internal/testutil"
)

func TestGetOrSetLoadsOnceUnderConcurrency(t *testing.T) {
	c := newCache(t)
	ctx := t.Context()
	var loads atomic.Int32
	release := make(chan struct{})
	load := func(context.Context) (report, error) {
		loads.Add(1)
		<-release
		return report{Data: []int{1, 2, 3}}, nil
	}
	const callers = 50
	var wg sync.WaitGroup
	results := make(chan report, callers)
	for range callers {
		wg.Go(func() {
			r, err := cache.GetOrSet(ctx, c, "complex_report", time.Minute, load)
			if err != nil {
				t.Error(err)
			}
			results <- r
		})
	}
	// Wait until the load is running, then let it finish.
	for loads.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let the other callers pile up behind it
	close(release)
	wg.Wait()
	close(results)
	for r := range results {
		if len(r.Data) != 3 {
			t.Fatalf("a caller got %+v", r)
		}
	}
	if n := loads.Load(); n != 1 {
		t.Fatalf("load ran %d times for %d concurrent callers, want 1", n, callers)
	}
	// The value is cached once its store, which goes on after the callers
	// got it, has landed.
	c.WaitIdle(ctx)
	r, err := cache.GetOrSet(ctx, c, "complex_report", time.Minute, func(context.Context) (report, error) {
		t.Error("load called on a hit")
		return report{}, nil
	})
	if err != nil || len(r.Data) != 3 {
		t.Fatalf("GetOrSet hit = (%+v, %v)", r, err)
	}
	if s := c.Stats(); s.Loads != 1 || s.Sets != 1 {
		t.Fatalf("Stats = %+v, want 1 load and 1 set", s)
	}
}

func TestGetOrSetCanceledWaiterLeavesLoadAlone(t *testing.T) {
	c := newCache(t)
	started, release := make(chan struct{}), make(chan struct{})
	loadCtxErr := make(chan error, 1)
	load := func(ctx context.Context) (string, error) {
		close(started)
		<-release
		loadCtxErr <- ctx.Err()
		return "done", nil
	}
	first, cancelFirst := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := cache.GetOrSet(first, c, "k", 0, load)
		errc <- err
	}()
	<-started
	// A second caller joins, then the first gives up.
	second := make(chan string, 1)
	go func() {
		v, err := cache.GetOrSet(t.Context(), c, "k", 0, load)
		if err != nil {
			t.Error(err)
		}
		second <- v
	}()
	cancelFirst()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled caller got %v, want context.Canceled", err)
	}
	close(release)
	if v := <-second; v != "done" {
		t.Fatalf("remaining caller got %q, want the load's value", v)
	}
	if err := <-loadCtxErr; err != nil {
		t.Fatalf("load's context was canceled (%v) when one waiter left", err)
	}
}

func TestGetOrSetLoadErrorIsNotCached(t *testing.T) {
	c := newCache(t)
	ctx := t.Context()
	boom := errors.New("database down")
	_, err := cache.GetOrSet(ctx, c, "k", 0, func(context.Context) (int, error) { return 0, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("GetOrSet = %v, want load's error", err)
	}
	if _, found, _ := cache.Get[int](ctx, c, "k"); found {
		t.Fatal("a failed load cached something")
	}
	v, err := cache.GetOrSet(ctx, c, "k", 0, func(context.Context) (int, error) { return 7, nil })
	if err != nil || v != 7 {
		t.Fatalf("GetOrSet after a failed load = (%v, %v), want a fresh load", v, err)
	}
}

func TestGetOrSetPanicReachesCaller(t *testing.T) {
	c := newCache(t)
	defer func() {
		r := recover()
		pe, ok := r.(*cache.LoadPanicError)
		if !ok {
			t.Fatalf("recovered %#v, want *cache.LoadPanicError", r)
		}
		if pe.Value != "kaboom" || len(pe.Stack) == 0 {
			t.Fatalf("LoadPanicError = %v", pe)
		}
		// The flight was released: the next call loads again.
		v, err := cache.GetOrSet(t.Context(), c, "k", 0, func(context.Context) (int, error) { return 1, nil })
		if err != nil || v != 1 {
			t.Fatalf("GetOrSet after a panicked load = (%v, %v)", v, err)
		}
	}()
	cache.GetOrSet(t.Context(), c, "k", 0, func(context.Context) (int, error) { panic("kaboom") })
	t.Fatal("GetOrSet returned after its load panicked")
}

func TestGetOrSetDifferentTypesDoNotShareALoad(t *testing.T) {
	c := newCache(t)
	ctx := t.Context()
	s, err := cache.GetOrSet(ctx, c, "k", 0, func(context.Context) (string, error) { return "42", nil })
	if err != nil || s != "42" {
		t.Fatal(s, err)
	}
	n, err := cache.GetOrSet(ctx, c, "k", 0, func(context.Context) (int, error) { return 0, errors.New("not called") })
	if err != nil || n != 42 {
		t.Fatalf("GetOrSet[int] of a stored \"42\" = (%v, %v), want 42", n, err)
	}
}

func TestGetOrSetNilInterfaceResult(t *testing.T) {
	c := newCache(t)
	v, err := cache.GetOrSet(t.Context(), c, "k", 0, func(context.Context) (any, error) { return nil, nil })
	if err != nil || v != nil {
		t.Fatalf("GetOrSet[any] of a nil load = (%v, %v)", v, err)
	}
}

func TestGetOrSetUndecodableEntryIsReloaded(t *testing.T) {
	c := newCache(t)
	ctx := t.Context()
	c.Set(ctx, "k", "not a number", 0)
	n, err := cache.GetOrSet(ctx, c, "k", 0, func(context.Context) (int, error) { return 5, nil })
	if err != nil || n != 5 {
		t.Fatalf("GetOrSet over an undecodable entry = (%v, %v), want load's 5", n, err)
	}
	c.WaitIdle(ctx)
	if got, _, _ := cache.Get[int](ctx, c, "k"); got != 5 {
		t.Fatalf("entry after reload = %v, want 5", got)
	}
}

func TestGetOrSetCanceledCallerStartsNoLoad(t *testing.T) {
	c := newCache(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := cache.GetOrSet(ctx, c, "k", 0, func(context.Context) (int, error) {
		t.Error("load started for a caller that had already given up")
		return 1, nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("GetOrSet with a canceled context = %v, want context.Canceled", err)
	}
}

// panicky's encoding panics, as a MarshalJSON with a nil dereference does.
type panicky struct{ X int }

func (panicky) MarshalJSON() ([]byte, error) { panic("boom in MarshalJSON") }

// TestEncodingPanicDoesNotKillTheProcess: GetOrSet stores its value on a
// goroutine of its own, where a panic in the value's MarshalJSON ended the
// whole process before the fix (found by the hostile review of issue 8). It
// is an error now, logged and counted; Set returns it.
func TestEncodingPanicDoesNotKillTheProcess(t *testing.T) {
	var logs testutil.Buffer
	s, _ := memory.New(memory.Options{})
	c := cache.New(s, cache.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	defer c.Close()
	v, err := cache.GetOrSet(t.Context(), c, "p", 0, func(context.Context) (panicky, error) { return panicky{1}, nil })
	if err != nil || v.X != 1 {
		t.Fatalf("GetOrSet = (%v, %v), want the loaded value", v, err)
	}
	c.WaitIdle(t.Context())
	if !strings.Contains(logs.String(), "boom in MarshalJSON") {
		t.Fatalf("the encoding panic was not logged: %q", logs.String())
	}
	if err := c.Set(t.Context(), "p", panicky{2}, 0); err == nil || !strings.Contains(err.Error(), "boom in MarshalJSON") {
		t.Fatalf("Set of a value whose encoding panics = %v, want an error naming the panic", err)
	}
}

// TestRecursiveGetOrSetFailsInsteadOfHanging: a load that asks for its own
// key (directly, or through another key's load) would wait for itself, and
// every later caller of the key with it. Before the fix the key hung for
// good (found by the hostile review of issue 8).
func TestRecursiveGetOrSetFailsInsteadOfHanging(t *testing.T) {
	c := newCache(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var loadA func(context.Context) (int, error)
	loadB := func(ctx context.Context) (int, error) { return cache.GetOrSet(ctx, c, "a", 0, loadA) }
	loadA = func(ctx context.Context) (int, error) { return cache.GetOrSet(ctx, c, "b", 0, loadB) }
	for _, start := range []struct {
		key  string
		load func(context.Context) (int, error)
	}{{"a", func(ctx context.Context) (int, error) { return cache.GetOrSet(ctx, c, "a", 0, loadA) }}, {"a", loadA}} {
		if _, err := cache.GetOrSet(ctx, c, start.key, 0, start.load); err == nil || !strings.Contains(err.Error(), "called from the load") {
			t.Fatalf("recursive GetOrSet = %v, want an error saying it was called from its own load", err)
		}
	}
	if v, err := cache.GetOrSet(ctx, c, "a", 0, func(context.Context) (int, error) { return 7, nil }); err != nil || v != 7 {
		t.Fatalf("GetOrSet after the recursion = (%v, %v), want a fresh load: the key is stuck", v, err)
	}
}
