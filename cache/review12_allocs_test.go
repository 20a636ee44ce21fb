package cache_test

import (
	"context"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/cache/cachetest"
)

func TestReview12AllocsHitPath(t *testing.T) {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	defer mp.Shutdown(context.Background())
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	tpOn := sdktrace.NewTracerProvider()
	ctx := context.Background()
	load := func(context.Context) (int, error) { return 1, nil }
	for _, tc := range []struct {
		name string
		opts []cache.Option
	}{{"plain", nil}, {"metrics", []cache.Option{cache.WithMeterProvider(mp)}},
		{"traces-never-sampled", []cache.Option{cache.WithTracerProvider(tp)}},
		{"traces-sampled", []cache.Option{cache.WithTracerProvider(tpOn)}}} {
		c, _ := cache.Open(ctx, cache.Config{Enabled: true}, append(tc.opts, cache.WithLogger(nil))...)
		_, _ = cache.GetOrSet(ctx, c, "k", time.Minute, load)
		a := testing.AllocsPerRun(1000, func() { _, _ = cache.GetOrSet(ctx, c, "k", time.Minute, load) })
		var chaos cachetest.Chaos
		rc := overChaos(t, &chaos, tc.opts...)
		_ = rc.Set(ctx, "k", 1, 0)
		var v int
		b := testing.AllocsPerRun(1000, func() { _, _ = rc.Get(ctx, "k", &v) })
		t.Logf("%s: in-memory GetOrSet hit %.1f allocs, remote Get %.1f allocs", tc.name, a, b)
		c.Close()
	}
}
