package cache_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/cache/cachetest"
)

// traced returns a span recorder and the option that makes a cache trace
// into it.
func traced(t *testing.T) (*tracetest.SpanRecorder, cache.Option) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return rec, cache.WithTracerProvider(tp)
}

// spansNamed returns the ended spans named name.
func spansNamed(rec *tracetest.SpanRecorder, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// attr returns the value of the span's attribute k, and whether it has it.
func attr(s sdktrace.ReadOnlySpan, k attribute.Key) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if kv.Key == k {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

func wantAttr(t *testing.T, s sdktrace.ReadOnlySpan, k attribute.Key, want string) {
	t.Helper()
	if v, ok := attr(s, k); !ok || v.String() != want {
		t.Errorf("span %s: %s = %q (present %v), want %q; attributes %v", s.Name(), k, v.String(), ok, want, s.Attributes())
	}
}

// TestTracesOfGetOrSet: a GetOrSet that loads has a span, with the load's
// span under it; the load's context carries that span, so that what the load
// traces (a database query) nests under it; a hit records no span; a failed
// load marks both spans with the error; keys are left out unless asked for.
func TestTracesOfGetOrSet(t *testing.T) {
	rec, withTP := traced(t)
	c, err := cache.Open(t.Context(), cache.Config{Enabled: true}, withTP, cache.WithLogger(nil), cache.WithName("reports"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tr := sdktrace.NewTracerProvider().Tracer("app")
	ctx, parent := tr.Start(t.Context(), "GET /report")
	var inLoad trace.SpanContext
	_, err = cache.GetOrSet(ctx, c, "user:42", time.Minute, func(ctx context.Context) (int, error) {
		inLoad = trace.SpanContextFromContext(ctx)
		return 42, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = cache.GetOrSet(ctx, c, "user:42", time.Minute, func(context.Context) (int, error) { return 0, nil }) // a hit
	parent.End()

	gs, loads := spansNamed(rec, "cache.GetOrSet"), spansNamed(rec, "cache.load")
	if len(gs) != 1 || len(loads) != 1 {
		t.Fatalf("spans %v: want one cache.GetOrSet (the hit records none) and one cache.load", names(rec))
	}
	g, l := gs[0], loads[0]
	if g.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("cache.GetOrSet's parent is %v, want the caller's span", g.Parent().SpanID())
	}
	if l.Parent().SpanID() != g.SpanContext().SpanID() {
		t.Errorf("cache.load's parent is %v, want cache.GetOrSet", l.Parent().SpanID())
	}
	if inLoad.SpanID() != l.SpanContext().SpanID() {
		t.Errorf("the load's context carries span %v, want cache.load's %v", inLoad.SpanID(), l.SpanContext().SpanID())
	}
	wantAttr(t, g, "cache.result", "miss")
	wantAttr(t, g, "cache.backend", "in_memory")
	wantAttr(t, g, "cache.name", "reports")
	for _, s := range []sdktrace.ReadOnlySpan{g, l} {
		if _, ok := attr(s, "cache.key"); ok {
			t.Errorf("span %s has the key without WithTracedKeys", s.Name())
		}
		if s.Status().Code == codes.Error {
			t.Errorf("span %s: status %v, want unset", s.Name(), s.Status())
		}
	}

	rec.Reset()
	_, err = cache.GetOrSet(t.Context(), c, "failing", time.Minute, func(context.Context) (int, error) { return 0, errors.New("db down") })
	if err == nil {
		t.Fatal("a failed load returned no error")
	}
	gs, loads = spansNamed(rec, "cache.GetOrSet"), spansNamed(rec, "cache.load")
	if len(gs) != 1 || len(loads) != 1 {
		t.Fatalf("spans %v: want one cache.GetOrSet and one cache.load", names(rec))
	}
	for _, s := range []sdktrace.ReadOnlySpan{gs[0], loads[0]} {
		if s.Status().Code != codes.Error || len(s.Events()) == 0 || s.Events()[0].Name != "exception" {
			t.Errorf("span %s: status %v, events %v; want an error with the exception recorded", s.Name(), s.Status(), s.Events())
		}
	}
	if _, ok := attr(gs[0], "cache.result"); ok {
		t.Errorf("a GetOrSet that failed has a cache.result")
	}
}

// TestTracesOfAPanic: a load that panics ends its span and the GetOrSet's
// as errors, and the panic still reaches the caller.
func TestTracesOfAPanic(t *testing.T) {
	rec, withTP := traced(t)
	c, err := cache.Open(t.Context(), cache.Config{Enabled: true}, withTP, cache.WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	func() {
		defer func() {
			if _, ok := recover().(*cache.LoadPanicError); !ok {
				t.Error("the load's panic did not reach the caller as a *LoadPanicError")
			}
		}()
		_, _ = cache.GetOrSet(t.Context(), c, "k", time.Minute, func(context.Context) (int, error) { panic("boom") })
	}()
	for _, n := range []string{"cache.GetOrSet", "cache.load"} {
		s := spansNamed(rec, n)
		if len(s) != 1 || s[0].Status().Code != codes.Error || s[0].Status().Description != "load panicked" {
			t.Fatalf("spans %v: want one %s ended as an error", names(rec), n)
		}
	}
}

// TestTracesKeysOptIn: WithTracedKeys puts the key on the spans.
func TestTracesKeysOptIn(t *testing.T) {
	rec, withTP := traced(t)
	c, err := cache.Open(t.Context(), cache.Config{Enabled: true}, withTP, cache.WithTracedKeys(), cache.WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = cache.GetOrSet(t.Context(), c, "user:42", time.Minute, func(context.Context) (int, error) { return 1, nil })
	for _, n := range []string{"cache.GetOrSet", "cache.load"} {
		s := spansNamed(rec, n)
		if len(s) != 1 {
			t.Fatalf("spans %v: want one %s", names(rec), n)
		}
		wantAttr(t, s[0], "cache.key", "user:42")
	}
}

// TestTracesOfStaleAndRemoteCalls: over a remote store, each call is a
// client span named for the backend and the operation, with the failure
// recorded; a GetOrSet that serves a stale value says so.
func TestTracesOfStaleAndRemoteCalls(t *testing.T) {
	rec, withTP := traced(t)
	var chaos cachetest.Chaos
	c := overChaos(t, &chaos, withTP, cache.WithTracedKeys(), cache.WithName("r"),
		cache.WithBreaker(cache.BreakerConfig{Failures: 1 << 30, HangAfter: time.Hour}),
		cache.WithGetOrSetDefaults(cache.StaleFor(time.Hour)))
	ctx := t.Context()
	if err := c.Set(ctx, "k", "v1", 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	sets := spansEnding(rec, " set")
	if len(sets) != 1 {
		t.Fatalf("spans %v: want one set", names(rec))
	}
	if sets[0].SpanKind() != trace.SpanKindClient {
		t.Errorf("a call to the store is a %v span, want client", sets[0].SpanKind())
	}
	wantAttr(t, sets[0], "db.operation.name", "set")
	wantAttr(t, sets[0], "cache.key", "k")
	wantAttr(t, sets[0], "cache.name", "r")

	// A value loaded once, then past its ttl while loads fail: stale.
	_, _ = cache.GetOrSet(ctx, c, "s", 10*time.Millisecond, func(context.Context) (string, error) { return "old", nil })
	time.Sleep(30 * time.Millisecond)
	rec.Reset()
	v, err := cache.GetOrSet(ctx, c, "s", 10*time.Millisecond, func(context.Context) (string, error) { return "", errors.New("db down") })
	if err != nil || v != "old" {
		t.Fatalf("GetOrSet = %q, %v; want the stale value", v, err)
	}
	gs := spansNamed(rec, "cache.GetOrSet")
	if len(gs) != 1 {
		t.Fatalf("spans %v: want one cache.GetOrSet", names(rec))
	}
	wantAttr(t, gs[0], "cache.result", "stale")

	rec.Reset()
	chaos.Fail(errors.New("connection reset"))
	var s string
	if _, err := c.Get(ctx, "k", &s); err == nil {
		t.Fatal("Get through a failing store returned no error")
	}
	gets := spansEnding(rec, " get")
	if len(gets) != 1 || gets[0].Status().Code != codes.Error {
		t.Fatalf("spans %v: want one get marked as an error", names(rec))
	}
}

// TestTracesConcurrent: spans of concurrent GetOrSets of one key, under the
// race detector: one load span, and one GetOrSet span per caller.
func TestTracesConcurrent(t *testing.T) {
	rec, withTP := traced(t)
	c, err := cache.Open(t.Context(), cache.Config{Enabled: true}, withTP, cache.WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_, _ = cache.GetOrSet(t.Context(), c, "k", time.Minute, func(context.Context) (int, error) {
				<-release
				return 1, nil
			})
		})
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := len(spansNamed(rec, "cache.load")); n != 1 {
		t.Errorf("%d load spans, want 1", n)
	}
	if n := len(spansNamed(rec, "cache.GetOrSet")); n < 1 || n > 8 {
		t.Errorf("%d GetOrSet spans, want one per caller that missed", n)
	}
}

// spansEnding returns the ended spans whose name ends with suffix: the
// calls to a store are named for its backend and the operation.
func spansEnding(rec *tracetest.SpanRecorder, suffix string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if strings.HasSuffix(s.Name(), suffix) {
			out = append(out, s)
		}
	}
	return out
}

func names(rec *tracetest.SpanRecorder) []string {
	var out []string
	for _, s := range rec.Ended() {
		out = append(out, s.Name())
	}
	slices.Sort(out)
	return out
}
