package redis_test

import (
	"context"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/internal/redistest"
)

// TestReview12RedisDownErrorType: README documents error.type values
// unavailable, refused, timeout, canceled, closed, _OTHER for
// cache.operation.duration. With Redis killed, what do calls record?
func TestReview12RedisDownErrorType(t *testing.T) {
	srv := redistest.Start(t)
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	defer mp.Shutdown(context.Background())
	c := openCache(t, cache.Config{RedisURL: cache.SecretURL("redis://" + srv.Addr), KeyPrefix: uniquePrefix(t), Timeout: 200 * time.Millisecond},
		cache.WithMeterProvider(mp), cache.WithBreaker(cache.BreakerConfig{Retry: time.Hour}))
	ctx := t.Context()
	_ = c.Set(ctx, "k", "v", 0)
	srv.Stop()
	var s string
	for range 10 {
		_, _ = c.Get(ctx, "k", &s)
	}
	var rm metricdata.ResourceMetrics
	_ = r.Collect(context.Background(), &rm)
	types := map[string]uint64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "cache.operation.duration" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Histogram[float64]).DataPoints {
				op, _ := dp.Attributes.Value("db.operation.name")
				e, _ := dp.Attributes.Value("error.type")
				types[op.AsString()+"/"+e.AsString()] += dp.Count
			}
		}
	}
	t.Logf("breaker %s; cache.operation.duration by op/error.type: %v", c.Stats().Breaker, types)
	if types["get/unavailable"] == 0 {
		t.Errorf("Redis down: no get call has error.type=unavailable (README's value for an outage); got %v", types)
	}
}
