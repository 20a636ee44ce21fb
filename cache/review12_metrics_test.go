package cache_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/cache/cachetest"
	"github.com/ushka-go/ushka/internal/testutil"
)

// TestReview12SameNameTwoCaches: two live caches given one name on one
// MeterProvider do not mix their series (a gauge of one would hide the
// other's): the second reports as x#2, and a WARN line says so; a name a
// closed cache gave back is free again.
func TestReview12SameNameTwoCaches(t *testing.T) {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	defer mp.Shutdown(context.Background())
	ctx := t.Context()
	var logs testutil.Buffer
	var caches []*cache.Cache
	for i := range 2 {
		c, err := cache.Open(ctx, cache.Config{Enabled: true}, cache.WithMeterProvider(mp),
			cache.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))), cache.WithName("x"))
		if err != nil {
			t.Fatal(err)
		}
		caches = append(caches, c)
		var s string
		_ = c.Set(ctx, "a", "1", 0)
		for range 2 + i {
			_, _ = c.Get(ctx, "a", &s)
		}
	}
	got := hitsByName(t, r)
	if got["x"] != 2 || got["x#2"] != 3 {
		t.Errorf("two caches named x with 2 and 3 hits: cache.hits by name %v, want x=2 and x#2=3", got)
	}
	if !strings.Contains(logs.String(), "event=cache.metrics.name_taken") || !strings.Contains(logs.String(), "reported_as=x#2") {
		t.Errorf("no WARN line says the name was taken: %s", logs.String())
	}
	caches[0].Close()
	caches[1].Close()
	c, err := cache.Open(ctx, cache.Config{Enabled: true}, cache.WithMeterProvider(mp), cache.WithLogger(nil), cache.WithName("x"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var s string
	_ = c.Set(ctx, "a", "1", 0)
	_, _ = c.Get(ctx, "a", &s)
	if got := hitsByName(t, r); got["x"] != 1 {
		t.Errorf("a name given back at Close is not free again: cache.hits by name %v, want x=1", got)
	}
}

func TestReview12PanickedLoadNotInLoadDuration(t *testing.T) {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	defer mp.Shutdown(context.Background())
	c, err := cache.Open(t.Context(), cache.Config{Enabled: true}, cache.WithMeterProvider(mp), cache.WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	func() {
		defer func() { _ = recover() }()
		_, _ = cache.GetOrSet(t.Context(), c, "p", time.Minute, func(context.Context) (int, error) { panic("boom") })
	}()
	got := collect(t, r)
	loads, _ := value(t, got, "cache.loads")
	h, _ := got["cache.load.duration"].(metricdata.Histogram[float64])
	var n uint64
	for _, dp := range h.DataPoints {
		n += dp.Count
	}
	if uint64(loads) != n {
		t.Errorf("cache.loads = %d but cache.load.duration counts %d: a load that panicked is not recorded (README: GetOrSet loads, with error.type when they failed)", loads, n)
	}
}

func TestReview12AllocsRemoteGetWithMetrics(t *testing.T) {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	defer mp.Shutdown(context.Background())
	var chaos cachetest.Chaos
	off := overChaos(t, &chaos)
	on := overChaos(t, &chaos, cache.WithMeterProvider(mp))
	ctx := context.Background()
	_ = off.Set(ctx, "k", "v", 0)
	_ = on.Set(ctx, "k", "v", 0)
	var s string
	a0 := testing.AllocsPerRun(1000, func() { _, _ = off.Get(ctx, "k", &s) })
	a1 := testing.AllocsPerRun(1000, func() { _, _ = on.Get(ctx, "k", &s) })
	chaos.Fail(errors.New("x"), cachetest.Op("get"))
	t.Logf("allocs per remote Get: metrics off %.1f, on %.1f", a0, a1)
	if a1 > a0 {
		t.Errorf("metrics on add %.1f allocations per remote Get", a1-a0)
	}
}

func TestReview12CollectRacesClose(t *testing.T) {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	defer mp.Shutdown(context.Background())
	for range 20 {
		var chaos cachetest.Chaos
		c := overChaos(t, &chaos, cache.WithMeterProvider(mp))
		var wg sync.WaitGroup
		wg.Go(func() {
			for range 20 {
				var rm metricdata.ResourceMetrics
				_ = r.Collect(context.Background(), &rm)
			}
		})
		wg.Go(func() {
			for i := range 50 {
				var s string
				_, _ = c.Get(context.Background(), "k", &s)
				_, _ = cache.GetOrSet(context.Background(), c, "g", time.Minute, func(context.Context) (int, error) { return i, nil })
			}
		})
		c.Close()
		wg.Wait()
	}
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
}

// TestReview12ClosedCacheHistogramsStay: a closed cache's counters and
// gauges are no longer reported; its histograms keep their last totals, as
// the SDK keeps every cumulative series it has seen (the README says so).
func TestReview12ClosedCacheHistogramsStay(t *testing.T) {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	defer mp.Shutdown(context.Background())
	c, err := cache.Open(t.Context(), cache.Config{Enabled: true}, cache.WithMeterProvider(mp), cache.WithLogger(nil), cache.WithName("gone"))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = cache.GetOrSet(t.Context(), c, "k", time.Minute, func(context.Context) (int, error) { return 1, nil })
	c.Close()
	got := collect(t, r)
	for name := range got {
		if name != "cache.load.duration" && name != "cache.operation.duration" {
			t.Errorf("a closed cache still reports %s", name)
		}
	}
	if _, ok := got["cache.load.duration"]; !ok {
		t.Errorf("the closed cache's load histogram is gone; the README says it keeps its last totals")
	}
}

// TestReview12SameNameHidesOpenBreaker: two caches given the same WithName
// (two tenants' caches built by one constructor, a name copied from a
// config default) on one MeterProvider: nothing warns, the gauges collide
// and the SDK keeps one observation, so the open breaker of one cache is
// reported as closed, the review12 bug back through the name.
func TestReview12SameNameHidesOpenBreaker(t *testing.T) {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	defer mp.Shutdown(context.Background())
	ctx := t.Context()
	var bad cachetest.Chaos
	broken := overChaos(t, &bad, cache.WithMeterProvider(mp), cache.WithName("users"), cache.WithBreaker(cache.BreakerConfig{Retry: time.Hour}))
	var good cachetest.Chaos
	healthy := overChaos(t, &good, cache.WithMeterProvider(mp), cache.WithName("users"))
	bad.Fail(errors.New("connection refused"))
	var s string
	for range 5 {
		_, _ = broken.Get(ctx, "k", &s)
	}
	_, _ = healthy.Get(ctx, "k", &s)
	g, _ := collect(t, r)["cache.breaker.state"].(metricdata.Gauge[int64])
	open := false
	for _, dp := range g.DataPoints {
		open = open || dp.Value == int64(cache.BreakerOpen)
	}
	if broken.Stats().Breaker == "open" && !open {
		t.Errorf("one of two caches named users has its breaker open; cache.breaker.state reports %+v (no open state, no warning)", g.DataPoints)
	}
}
