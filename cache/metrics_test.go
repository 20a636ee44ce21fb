package cache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/cache/cachetest"
)

// collect reads every metric of the cache's scope from r, by name.
func collect(t *testing.T, r *sdkmetric.ManualReader) map[string]metricdata.Aggregation {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Aggregation{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != "github.com/ushka-go/ushka/cache" {
			continue
		}
		for _, m := range sm.Metrics {
			out[m.Name] = m.Data
		}
	}
	return out
}

// value returns the one data point of a counter or gauge, and its
// attributes.
func value(t *testing.T, got map[string]metricdata.Aggregation, name string) (int64, attribute.Set) {
	t.Helper()
	switch d := got[name].(type) {
	case metricdata.Sum[int64]:
		if len(d.DataPoints) == 1 {
			return d.DataPoints[0].Value, d.DataPoints[0].Attributes
		}
	case metricdata.Gauge[int64]:
		if len(d.DataPoints) == 1 {
			return d.DataPoints[0].Value, d.DataPoints[0].Attributes
		}
	}
	t.Fatalf("metric %s = %#v, want one data point", name, got[name])
	return 0, attribute.Set{}
}

// TestMetricsCountWhatStatsCounts: each counter moves when the cache's own
// counter does, with the backend as an attribute; a load's duration is
// recorded; a closed cache reports nothing.
func TestMetricsCountWhatStatsCounts(t *testing.T) {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	defer mp.Shutdown(context.Background())
	c, err := cache.Open(context.Background(), cache.Config{Enabled: true}, cache.WithMeterProvider(mp), cache.WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	_ = c.Set(ctx, "a", "1", 0)
	var s string
	_, _ = c.Get(ctx, "a", &s)
	_, _ = c.Get(ctx, "a", &s)
	_, _ = c.Get(ctx, "missing", &s)
	_ = c.Delete(ctx, "a")
	_, _ = cache.GetOrSet(ctx, c, "loaded", time.Minute, func(context.Context) (int, error) { return 1, nil })
	_, _ = cache.GetOrSet(ctx, c, "failing", time.Minute, func(context.Context) (int, error) { return 0, errors.New("db down") })

	got := collect(t, r)
	for name, want := range map[string]int64{
		"cache.hits": 2, "cache.misses": 3, "cache.sets": 2, "cache.deletes": 1, "cache.loads": 2, "cache.errors": 1,
		"cache.stale": 0, "cache.near.hits": 0, "cache.near.entries": 0,
	} {
		v, attrs := value(t, got, name)
		if v != want {
			t.Errorf("%s = %d, want %d", name, v, want)
		}
		if b, _ := attrs.Value("cache.backend"); b.AsString() != "in_memory" {
			t.Errorf("%s's cache.backend = %q, want in_memory", name, b.AsString())
		}
	}
	if _, ok := got["cache.breaker.state"]; ok {
		t.Error("an in-process store reports a breaker state; it has none")
	}
	h, ok := got["cache.load.duration"].(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("cache.load.duration = %#v, want a histogram", got["cache.load.duration"])
	}
	var loads, failed uint64
	for _, dp := range h.DataPoints {
		loads += dp.Count
		if e, ok := dp.Attributes.Value("error.type"); ok && e.AsString() != "" {
			failed += dp.Count
		}
	}
	if loads != 2 || failed != 1 {
		t.Errorf("cache.load.duration counted %d loads, %d with error.type; want 2 and 1", loads, failed)
	}
	c.Close()
	if got := collect(t, r); len(got) != 0 && got["cache.hits"] != nil {
		if d, ok := got["cache.hits"].(metricdata.Sum[int64]); ok && len(d.DataPoints) > 0 {
			t.Errorf("a closed cache still reports cache.hits: %#v", d)
		}
	}
}

// TestMetricsOfTheBreaker: a remote store's breaker reports its state,
// openings, refused calls and queued invalidations, and each call's
// duration by operation, with error.type when it failed.
func TestMetricsOfTheBreaker(t *testing.T) {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	defer mp.Shutdown(context.Background())
	var chaos cachetest.Chaos
	c := overChaos(t, &chaos, cache.WithMeterProvider(mp), cache.WithBreaker(cache.BreakerConfig{Retry: time.Hour}))
	ctx := t.Context()
	_ = c.Set(ctx, "k", "v", 0)
	chaos.Fail(errors.New("connection refused"))
	var s string
	for range 5 {
		_, _ = c.Get(ctx, "k", &s)
	}
	_ = c.Delete(ctx, "k")
	got := collect(t, r)
	for name, want := range map[string]int64{
		"cache.breaker.state": 1, "cache.breaker.opened": 1, "cache.breaker.refused": 3,
		"cache.invalidations.queued": 1, "cache.invalidations.pending": 1,
	} {
		if v, _ := value(t, got, name); v != want {
			t.Errorf("%s = %d, want %d", name, v, want)
		}
	}
	h, ok := got["cache.operation.duration"].(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("cache.operation.duration = %#v, want a histogram", got["cache.operation.duration"])
	}
	calls := map[string]uint64{}
	for _, dp := range h.DataPoints {
		op, _ := dp.Attributes.Value("db.operation.name")
		e, _ := dp.Attributes.Value("error.type")
		calls[op.AsString()+"/"+e.AsString()] += dp.Count
	}
	if calls["set/"] != 1 || calls["get/_OTHER"] != 3 {
		t.Errorf("cache.operation.duration by operation/error = %v, want set/ 1 and get/_OTHER 3 (refused calls are not calls to the store)", calls)
	}
}
