package redis_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/internal/redistest"
)

// TestTracesOnRedis: on a real server, a GetOrSet that loads is one
// cache.GetOrSet span whose children are the cross-process lock, the load
// and the fill of the value, each call a client span with
// db.system.name=redis; a hit is one "redis get" span and no GetOrSet span.
func TestTracesOnRedis(t *testing.T) {
	srv := redistest.Start(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	c := openCache(t, cache.Config{RedisURL: cache.SecretURL("redis://" + srv.Addr), KeyPrefix: uniquePrefix(t)},
		cache.WithTracerProvider(tp), cache.WithTracedKeys())
	ctx := t.Context()
	if _, err := cache.GetOrSet(ctx, c, "report", time.Minute, func(context.Context) (int, error) { return 7, nil }); err != nil {
		t.Fatal(err)
	}
	// The fill ends after the callers have their value.
	var byName map[string][]sdktrace.ReadOnlySpan
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		byName = map[string][]sdktrace.ReadOnlySpan{}
		for _, s := range rec.Ended() {
			byName[s.Name()] = append(byName[s.Name()], s)
		}
		if len(byName["redis fill"]) > 0 || time.Now().After(deadline) {
			break
		}
	}
	g := byName["cache.GetOrSet"]
	if len(g) != 1 {
		t.Fatalf("spans %v: want one cache.GetOrSet", keys(byName))
	}
	root := g[0].SpanContext().SpanID()
	for _, n := range []string{"redis lock", "cache.load", "redis fill"} {
		s := byName[n]
		if len(s) != 1 || s[0].Parent().SpanID() != root {
			t.Fatalf("spans %v: want one %s under cache.GetOrSet", keys(byName), n)
		}
	}
	for _, n := range []string{"redis get", "redis lock", "redis fill"} {
		s := byName[n][0]
		want := map[attribute.Key]string{"db.system.name": "redis", "cache.backend": "redis", "cache.key": "report"}
		for _, kv := range s.Attributes() {
			if w, ok := want[kv.Key]; ok && kv.Value.String() == w {
				delete(want, kv.Key)
			}
		}
		if len(want) > 0 || s.SpanKind() != trace.SpanKindClient {
			t.Errorf("span %s: kind %v, attributes %v; missing %v", n, s.SpanKind(), s.Attributes(), want)
		}
	}

	rec.Reset()
	if _, err := cache.GetOrSet(ctx, c, "report", time.Minute, func(context.Context) (int, error) { return 0, nil }); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range rec.Ended() {
		got = append(got, s.Name())
	}
	if len(got) != 1 || got[0] != "redis get" {
		t.Errorf("a hit recorded spans %v, want only [redis get]", got)
	}
}

func keys(m map[string][]sdktrace.ReadOnlySpan) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
