package cache

import (
	"context"
	"fmt"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/ushka-go/ushka/internal/memstore"
)

// remote hides the in-memory store's zero-copy read, so that a Cache over
// it takes it for a remote store: what the breaker costs a call, without a
// network to drown it. It passes on the five Store methods and nothing
// else: embedding the store would pass on Borrow too, and the cache would
// take it for the in-process store it is.
type remote struct{ s *memstore.Store }

func (r remote) Get(ctx context.Context, key string) ([]byte, bool, error) { return r.s.Get(ctx, key) }
func (r remote) Set(ctx context.Context, key string, v []byte, ttl time.Duration) error {
	return r.s.Set(ctx, key, v, ttl)
}
func (r remote) Delete(ctx context.Context, key string) error { return r.s.Delete(ctx, key) }
func (r remote) Clear(ctx context.Context) error              { return r.s.Clear(ctx) }
func (r remote) Close() error                                 { return r.s.Close() }

// newRemote returns a Cache over a new in-process store taken for a
// remote one, failing b if the cache does not put its breaker in front.
func newRemote(b *testing.B, opts ...Option) *Cache {
	s, err := memstore.New(memstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	c := New(remote{s}, opts...)
	if c.brk == nil || c.local {
		b.Fatal("the cache takes the store for an in-process one: nothing remote is measured")
	}
	return c
}

// BenchmarkBreakerCost reads and writes through a Cache over an in-process
// store taken for a remote one, with its breaker in front (breaker=on) and
// with the breaker taken out (breaker=off), to show the per-call cost of the
// breaker's bookkeeping in one run:
//
//	go test -run '^$' -bench BreakerCost -count 8 -cpu 1,2 ./cache/ | benchstat -col /breaker -
func BenchmarkBreakerCost(b *testing.B) {
	for _, on := range []bool{false, true} {
		for _, op := range []string{"get", "set"} {
			b.Run(fmt.Sprintf("op=%s/breaker=%v", op, map[bool]string{false: "off", true: "on"}[on]), func(b *testing.B) {
				c := newRemote(b)
				defer c.Close()
				if !on {
					c.store, c.brk = c.inner, nil
				}
				ctx := context.Background()
				if err := c.Set(ctx, "k", []byte("a value of some thirty bytes.."), 0); err != nil {
					b.Fatal(err)
				}
				v := []byte("a value of some thirty bytes..")
				b.RunParallel(func(pb *testing.PB) {
					var dst []byte
					for pb.Next() {
						var err error
						if op == "get" {
							_, err = c.Get(ctx, "k", &dst)
						} else {
							err = c.Set(ctx, "k", v, 0)
						}
						if err != nil {
							b.Fatal(err)
						}
					}
				})
			})
		}
	}
}

// BenchmarkTelemetryCost shows, in one run, what metrics and traces add to
// a call to a remote store, without a network to drown it: a Get hit
// through a Cache over an in-process store taken for a remote one, with no
// telemetry (telemetry=off), with the OpenTelemetry SDK's MeterProvider
// (metrics: the call's duration recorded in a histogram), and with its
// TracerProvider sampling nothing (unsampled) or everything into a
// processor that drops the spans (sampled: the cost of a span per call).
// The difference in ns per op, set against a Get hit on Redis (tens of
// microseconds per caller), bounds what telemetry costs there:
//
//	go test -run '^$' -bench TelemetryCost -count 10 -cpu 1,2 ./cache/ | benchstat -col /telemetry -
func BenchmarkTelemetryCost(b *testing.B) {
	for _, tel := range []string{"off", "metrics", "unsampled", "sampled"} {
		b.Run("telemetry="+tel, func(b *testing.B) {
			var opts []Option
			switch tel {
			case "metrics":
				mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
				defer mp.Shutdown(context.Background())
				opts = append(opts, WithMeterProvider(mp))
			case "unsampled", "sampled":
				sampler := sdktrace.NeverSample()
				if tel == "sampled" {
					sampler = sdktrace.AlwaysSample()
				}
				tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler), sdktrace.WithSpanProcessor(dropSpans{}))
				defer tp.Shutdown(context.Background())
				opts = append(opts, WithTracerProvider(tp))
			}
			c := newRemote(b, opts...)
			defer c.Close()
			ctx := context.Background()
			if err := c.Set(ctx, "k", []byte("a value of some thirty bytes.."), 0); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				var dst []byte
				for pb.Next() {
					if _, err := c.Get(ctx, "k", &dst); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// dropSpans is a span processor that keeps nothing.
type dropSpans struct{}

func (dropSpans) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (dropSpans) OnEnd(sdktrace.ReadOnlySpan)                     {}
func (dropSpans) Shutdown(context.Context) error                  { return nil }
func (dropSpans) ForceFlush(context.Context) error                { return nil }
