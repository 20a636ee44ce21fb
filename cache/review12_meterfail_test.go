package cache_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/embedded"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/ushka-go/ushka/cache"
)

type failingMP struct{ embedded.MeterProvider }

func (failingMP) Meter(string, ...metric.MeterOption) metric.Meter { return failingMeter{} }

type failingMeter struct{ noop.Meter }

func (failingMeter) Float64Histogram(string, ...metric.Float64HistogramOption) (metric.Float64Histogram, error) {
	return nil, errors.New("quota exceeded")
}

func TestReview12FailingMeterProvider(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	c, err := cache.Open(t.Context(), cache.Config{Enabled: true}, cache.WithLogger(log), cache.WithMeterProvider(failingMP{}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = cache.GetOrSet(t.Context(), c, "k", time.Minute, func(context.Context) (int, error) { return 1, nil })
	t.Logf("log: %s", buf.String())
	if err != nil || !strings.Contains(buf.String(), "event=cache.metrics_off") {
		t.Errorf("err %v, log %q", err, buf.String())
	}
	c2, _ := cache.Open(t.Context(), cache.Config{Enabled: true}, cache.WithLogger(log), cache.WithMeterProvider(noop.NewMeterProvider()))
	_, err = cache.GetOrSet(t.Context(), c2, "k", time.Minute, func(context.Context) (int, error) { return 1, nil })
	c2.Close()
	if err != nil {
		t.Error(err)
	}
}
