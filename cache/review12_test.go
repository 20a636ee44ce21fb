package cache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/cache/cachetest"
)

// The tests of this file come from a hostile review of the metrics work of
// issue 12. Each failed on the code it reviewed (TestReview12MetricsNoPassword
// pins a behaviour that held); its comment tells the bug it found, and the
// test now keeps it from coming back.

// TestReview12SharedProviderBreakerStateHidden: two caches of the same
// backend kind (say two Redis caches, or one per tenant) on one
// MeterProvider observe cache.breaker.state under the same attribute set
// (only cache.backend), so the SDK keeps the last observation. One cache's
// breaker is open, the other's closed, and the gauge says 0 (closed).
// User impact: an alert on cache.breaker.state != 0 never fires while a
// cache is refusing every call; nothing distinguishes the caches.
// Suggested fix: an identifying attribute per cache (a name option, or the
// key prefix / address), or document one MeterProvider per cache.
func TestReview12SharedProviderBreakerStateHidden(t *testing.T) {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	defer mp.Shutdown(context.Background())
	ctx := t.Context()
	mk := func() (*cache.Cache, *cachetest.Chaos) {
		chaos := &cachetest.Chaos{}
		return overChaos(t, chaos, cache.WithMeterProvider(mp), cache.WithBreaker(cache.BreakerConfig{Retry: time.Hour})), chaos
	}
	broken, chaos := mk()
	healthy, _ := mk()
	chaos.Fail(errors.New("connection refused"))
	var s string
	for range 5 {
		_, _ = broken.Get(ctx, "k", &s)
	}
	_, _ = healthy.Get(ctx, "k", &s)
	if broken.Stats().Breaker != "open" {
		t.Fatalf("setup: broken cache's breaker is %s, want open", broken.Stats().Breaker)
	}
	g, _ := collect(t, r)["cache.breaker.state"].(metricdata.Gauge[int64])
	open := 0
	for _, dp := range g.DataPoints {
		if dp.Value == int64(cache.BreakerOpen) {
			open++
		}
	}
	if len(g.DataPoints) != 2 || open != 1 {
		t.Errorf("cache.breaker.state = %+v, want a series per cache, one of them open: the open breaker is invisible", g.DataPoints)
	}
}

// hitsByName returns each cache's cache.hits, by its cache.name.
func hitsByName(t *testing.T, r *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	sum, _ := collect(t, r)["cache.hits"].(metricdata.Sum[int64])
	out := map[string]int64{}
	for _, dp := range sum.DataPoints {
		name, _ := dp.Attributes.Value("cache.name")
		out[name.AsString()] = dp.Value
	}
	return out
}

// TestReview12SharedProviderCounterGoesBackwards: two in-memory caches on
// one MeterProvider report cache.hits as one cumulative, monotonic series
// (summed), with one StartTime. Closing one of them unregisters its
// callback, and the series drops from 5 to 3 with no new StartTime.
// User impact: Prometheus reads the drop as a counter reset, so
// rate(cache_hits_total) shows a spurious spike (3 hits "from zero") each
// time a cache on a shared provider is closed, e.g. a per-request or
// per-tenant cache, or an fx app restarting one module.
// Suggested fix: per-cache attributes (then the series simply ends), or
// keep the closed cache's last values.
func TestReview12SharedProviderCounterGoesBackwards(t *testing.T) {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	defer mp.Shutdown(context.Background())
	ctx := t.Context()
	var cs []*cache.Cache
	for i := range 2 {
		c, err := cache.Open(ctx, cache.Config{Enabled: true}, cache.WithMeterProvider(mp), cache.WithLogger(nil))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cs = append(cs, c)
		var s string
		_ = c.Set(ctx, "a", "1", 0)
		for range 2 + i {
			_, _ = c.Get(ctx, "a", &s)
		}
	}
	before := hitsByName(t, r)
	cs[1].Close()
	after := hitsByName(t, r)
	if len(before) != 2 || len(after) != 1 {
		t.Fatalf("cache.hits by cache.name: %v, then %v after one of the two closed; want a series per cache, and one left", before, after)
	}
	for name, v := range after {
		if v < before[name] {
			t.Errorf("cache.hits of %s, a monotonic cumulative counter, went from %d to %d when the other cache closed", name, before[name], v)
		}
	}
}
