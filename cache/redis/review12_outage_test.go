package redis_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/internal/redistest"
)

// openSpans tracks the spans started and not ended.
type openSpans struct {
	mu    sync.Mutex
	open  map[sdktrace.ReadWriteSpan]string
	ended []sdktrace.ReadOnlySpan
}

func (o *openSpans) OnStart(_ context.Context, s sdktrace.ReadWriteSpan) {
	o.mu.Lock()
	o.open[s] = s.Name()
	o.mu.Unlock()
}
func (o *openSpans) OnEnd(s sdktrace.ReadOnlySpan) {
	o.mu.Lock()
	for k := range o.open {
		if k.SpanContext().SpanID() == s.SpanContext().SpanID() {
			delete(o.open, k)
		}
	}
	o.ended = append(o.ended, s)
	o.mu.Unlock()
}
func (o *openSpans) Shutdown(context.Context) error   { return nil }
func (o *openSpans) ForceFlush(context.Context) error { return nil }

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestReview12RedisKilledUnderTracedTraffic(t *testing.T) {
	const pw = "s3cretHOSTILE"
	srv := redistest.Start(t, redistest.Options{Args: []string{"--requirepass", pw}})
	sp := &openSpans{open: map[sdktrace.ReadWriteSpan]string{}}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sp))
	defer tp.Shutdown(context.Background())
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	defer mp.Shutdown(context.Background())
	var logs syncBuf
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := cache.Config{Enabled: true, Backend: "redis", RedisURL: cache.SecretURL("redis://default:" + pw + "@" + srv.Addr + "/0"),
		KeyPrefix: uniquePrefix(t), Timeout: 300 * time.Millisecond, StaleTTL: time.Hour, NearCache: true,
		LoadTimeout: 50 * time.Millisecond, BreakerRetry: 50 * time.Millisecond}
	c, err := cache.Open(t.Context(), cfg, cache.WithLogger(log), cache.WithTracerProvider(tp), cache.WithMeterProvider(mp), cache.WithTracedKeys())
	if err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(1+i%40)*time.Millisecond)
				key := fmt.Sprintf("k%d", i%16)
				func() {
					defer func() { _ = recover() }()
					_, _ = cache.GetOrSet(ctx, c, key, 30*time.Millisecond, func(ctx context.Context) (int, error) {
						if i%7 == 0 {
							time.Sleep(80 * time.Millisecond)
						}
						if i%31 == 0 && g == 0 {
							panic("boom")
						}
						return i, nil
					})
				}()
				if i%11 == 0 {
					_ = c.Delete(ctx, key)
				}
				cancel()
			}
		})
	}
	wg.Go(func() {
		for !stop.Load() {
			var rm metricdata.ResourceMetrics
			_ = r.Collect(context.Background(), &rm)
			time.Sleep(10 * time.Millisecond)
		}
	})
	// recover panics from GetOrSet in goroutine 0: wrap
	time.Sleep(300 * time.Millisecond)
	srv.Stop()
	time.Sleep(600 * time.Millisecond)
	srv.Restart()
	srv.Do("AUTH", pw)
	time.Sleep(400 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	c.Close()
	time.Sleep(100 * time.Millisecond)
	sp.mu.Lock()
	var open []string
	for _, n := range sp.open {
		open = append(open, n)
	}
	ended := sp.ended
	sp.mu.Unlock()
	t.Logf("%d spans ended, %d open", len(ended), len(open))
	if len(open) > 0 {
		t.Errorf("spans never ended: %v", open)
	}
	for _, s := range ended {
		for _, kv := range s.Attributes() {
			if strings.Contains(kv.Value.String(), pw) {
				t.Errorf("span %s attribute %s holds the password", s.Name(), kv.Key)
			}
		}
		for _, e := range s.Events() {
			for _, kv := range e.Attributes {
				if strings.Contains(kv.Value.String(), pw) {
					t.Errorf("span %s event %s attribute %s holds the password: %s", s.Name(), e.Name, kv.Key, kv.Value.String())
				}
			}
		}
		if strings.Contains(s.Status().Description, pw) {
			t.Errorf("span %s status holds the password", s.Name())
		}
	}
	text := logs.String()
	seen := map[string]int{}
	for line := range strings.Lines(text) {
		i := strings.Index(line, `"level":`)
		j := strings.Index(line, `"event":`)
		if i >= 0 && j >= 0 {
			seen[line[i:i+16]+" "+line[j:min(len(line), j+40)]]++
		}
	}
	for k, v := range seen {
		t.Logf("%d x %s", v, k)
	}
	if strings.Contains(text, pw) {
		t.Errorf("a log line holds the password")
	}
	for line := range strings.Lines(text) {
		if !strings.Contains(line, `"event":"cache.`) {
			t.Errorf("log line without a cache event: %s", line)
		}
	}
	var rm metricdata.ResourceMetrics
	_ = r.Collect(context.Background(), &rm)
	if strings.Contains(fmt.Sprintf("%+v", rm), pw) {
		t.Errorf("metrics hold the password")
	}
}
