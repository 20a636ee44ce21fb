package cache_test

import (
	"context"
	"errors"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"strings"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/cache/cachetest"
)

// TestReview12KeyInSpanWithoutTracedKeys: without WithTracedKeys the key
// must not reach the tracing backend (README: keys can carry personal
// data), but a failed GetOrSet puts its error, which quotes the key, in the
// span's status and exception event.
func TestReview12KeyInSpanWithoutTracedKeys(t *testing.T) {
	rec, withTP := traced(t)
	var chaos cachetest.Chaos
	c := overChaos(t, &chaos, withTP)
	const key = "user:alice@example.com"
	_, _ = cache.GetOrSet(t.Context(), c, key, time.Minute, func(context.Context) (int, error) { return 0, errors.New("db down") })
	chaos.Fail(errors.New("connection refused"))
	_ = c.Set(t.Context(), key, 1, 0)
	for _, s := range rec.Ended() {
		leak := strings.Contains(s.Status().Description, "alice@example.com")
		for _, e := range s.Events() {
			for _, kv := range e.Attributes {
				if strings.Contains(kv.Value.String(), "alice@example.com") {
					leak = true
				}
			}
		}
		for _, kv := range s.Attributes() {
			if strings.Contains(kv.Value.String(), "alice@example.com") {
				leak = true
			}
		}
		if leak {
			t.Errorf("span %s carries the key without WithTracedKeys: status %q", s.Name(), s.Status().Description)
		}
	}
}

// TestReview12ReadSpanOutsideGetOrSet: the read that found the miss is a
// span beside cache.GetOrSet, under the caller's span, and ends before
// cache.GetOrSet starts (which starts at the miss, not at the call): the
// two never overlap, and a hit records the read alone.
func TestReview12ReadSpanOutsideGetOrSet(t *testing.T) {
	rec, withTP := traced(t)
	var chaos cachetest.Chaos
	c := overChaos(t, &chaos, withTP)
	tr := sdktrace.NewTracerProvider().Tracer("app")
	ctx, parent := tr.Start(t.Context(), "request")
	_, _ = cache.GetOrSet(ctx, c, "k", time.Minute, func(context.Context) (int, error) { return 1, nil })
	parent.End()
	g := spansNamed(rec, "cache.GetOrSet")
	if len(g) != 1 {
		t.Fatalf("want one cache.GetOrSet span")
	}
	reads := 0
	for _, s := range rec.Ended() {
		if strings.HasSuffix(s.Name(), " get") && s.Parent().SpanID() == parent.SpanContext().SpanID() {
			reads++
			if s.EndTime().After(g[0].StartTime()) {
				t.Errorf("the read that missed ends at %v, after cache.GetOrSet starts at %v: they overlap", s.EndTime(), g[0].StartTime())
			}
		}
	}
	if reads != 1 || g[0].Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("want the read and cache.GetOrSet both under the caller's span; %d reads there, GetOrSet's parent %v", reads, g[0].Parent().SpanID())
	}
}
