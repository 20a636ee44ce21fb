package cache_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/cache/cachetest"
)

type hostileOpen struct {
	mu   sync.Mutex
	open map[[8]byte]string
}

func (o *hostileOpen) OnStart(_ context.Context, s sdktrace.ReadWriteSpan) {
	o.mu.Lock()
	o.open[s.SpanContext().SpanID()] = s.Name()
	o.mu.Unlock()
}
func (o *hostileOpen) OnEnd(s sdktrace.ReadOnlySpan) {
	o.mu.Lock()
	delete(o.open, s.SpanContext().SpanID())
	o.mu.Unlock()
}
func (o *hostileOpen) Shutdown(context.Context) error   { return nil }
func (o *hostileOpen) ForceFlush(context.Context) error { return nil }

func TestReview12SpansEndWhenCloseRacesTraffic(t *testing.T) {
	for round := range 10 {
		sp := &hostileOpen{open: map[[8]byte]string{}}
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sp))
		r := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
		var chaos cachetest.Chaos
		c := overChaos(t, &chaos, cache.WithTracerProvider(tp), cache.WithMeterProvider(mp),
			cache.WithGetOrSetDefaults(cache.StaleFor(time.Hour), cache.LoadTimeout(5*time.Millisecond)),
			cache.WithBreaker(cache.BreakerConfig{Retry: 5 * time.Millisecond}))
		var wg sync.WaitGroup
		for g := range 6 {
			wg.Go(func() {
				for i := range 60 {
					ctx, cancel := context.WithTimeout(context.Background(), time.Duration(1+i%5)*time.Millisecond)
					func() {
						defer func() { _ = recover() }()
						_, _ = cache.GetOrSet(ctx, c, fmt.Sprint("k", i%4), 2*time.Millisecond, func(context.Context) (int, error) {
							time.Sleep(time.Duration(i%3) * 3 * time.Millisecond)
							if i%13 == 0 {
								panic("boom")
							}
							if i%5 == 0 {
								return 0, errors.New("db")
							}
							return i + g, nil
						})
					}()
					if i%9 == 0 {
						_ = c.Delete(ctx, "k1")
					}
					if i == 20 && g == 0 {
						chaos.Fail(errors.New("connection refused"))
					}
					if i == 40 && g == 0 {
						chaos.Heal()
					}
					cancel()
				}
			})
		}
		wg.Go(func() {
			for range 10 {
				var rm metricdata.ResourceMetrics
				_ = r.Collect(context.Background(), &rm)
				time.Sleep(time.Millisecond)
			}
		})
		time.Sleep(time.Duration(round*10) * time.Millisecond)
		c.Close()
		wg.Wait()
		time.Sleep(50 * time.Millisecond)
		var rm metricdata.ResourceMetrics
		_ = r.Collect(context.Background(), &rm)
		sp.mu.Lock()
		if len(sp.open) > 0 {
			t.Errorf("round %d: spans never ended: %v", round, sp.open)
		}
		sp.mu.Unlock()
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	}
}
