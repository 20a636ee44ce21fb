package bench

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/internal/redistest"
)

// BenchmarkMetrics measures what the cache's OpenTelemetry metrics cost a
// Get hit: the same cache without a MeterProvider (peer=off) and with one
// (peer=on: the SDK's MeterProvider with a reader, which collects between
// runs), in one run. The counters are read by asynchronous instruments
// when the reader collects, so an in-memory hit does no more work; a call
// to Redis records its duration in a histogram.
func BenchmarkMetrics(b *testing.B) {
	newCache := func(cfg cache.Config, on bool) (store, *sdkmetric.ManualReader) {
		if !on {
			return newUshka(cfg), nil
		}
		r := sdkmetric.NewManualReader()
		return newUshka(cfg, cache.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(r)))), r
	}
	collect := func(b *testing.B, r *sdkmetric.ManualReader) {
		if r != nil {
			var rm metricdata.ResourceMetrics
			if err := r.Collect(context.Background(), &rm); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("backend=in_memory", func(b *testing.B) {
		for _, on := range []bool{false, true} {
			s, r := newCache(cache.Config{MaxEntries: capacity}, on)
			fill(b, s, "struct")
			runtime.GC()
			b.Run("peer="+map[bool]string{false: "off", true: "on"}[on], func(b *testing.B) {
				runInMemory(b, s, "get_hit", "struct", "zipf")
			})
			collect(b, r)
			s.Close()
		}
	})
	b.Run("backend=redis", func(b *testing.B) {
		srv := redistest.Start(b)
		for _, g := range []int{1, 16, 64} {
			for _, on := range []bool{false, true} {
				s, r := newCache(cache.Config{Backend: "redis", RedisURL: cache.SecretURL("redis://" + srv.Addr)}, on)
				fill(b, s, "struct")
				runtime.GC()
				b.Run(fmt.Sprintf("goroutines=%d/peer=%s", g, map[bool]string{false: "off", true: "on"}[on]), func(b *testing.B) {
					runRemote(b, s, "get_hit", g)
				})
				collect(b, r)
				s.Close()
			}
		}
	})
}
