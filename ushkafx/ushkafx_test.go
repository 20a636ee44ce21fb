package ushkafx_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/goleak"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/config"
	"github.com/ushka-go/ushka/examples/reports"
	"github.com/ushka-go/ushka/internal/testutil"
	"github.com/ushka-go/ushka/ushkafx"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestInjection is the seed's "type-hint BaseCache" in Go: a constructor
// asks for *cache.Cache and receives the configured one.
func TestInjection(t *testing.T) {
	t.Setenv(config.EnvCacheEnabled, "")
	t.Setenv(config.EnvCacheBackend, "")
	path := testutil.WriteConfig(t, "[cache]\nenabled = true\nbackend = \"in_memory\"\nkey_prefix = \"fx:\"\n")
	var (
		svc *reports.ReportService
		c   *cache.Cache
		cfg *config.Config
	)
	app := fxtest.New(t,
		ushkafx.ConfigPath(path),
		ushkafx.Module,
		fx.Provide(reports.NewReportService),
		fx.Decorate(func(s *reports.ReportService) *reports.ReportService { return s.WithDelay(time.Millisecond) }),
		fx.Populate(&svc, &c, &cfg),
	)
	app.RequireStart()
	if cfg.File != path || cfg.Cache.KeyPrefix != "fx:" {
		t.Fatalf("config = %+v, want the file given with ConfigPath", cfg)
	}
	if _, _, err := svc.GenerateComplexReport(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := cache.Get[reports.Report](t.Context(), c, reports.Key); !found {
		t.Fatal("the service's report is not in the injected cache: they are not the same instance")
	}
	app.RequireStop()
	if err := c.Set(t.Context(), "k", "v", 0); !errors.Is(err, cache.ErrClosed) {
		t.Fatalf("Set after the app stopped = %v, want ErrClosed: the module closes the cache", err)
	}
}

// TestTelemetryFromTheContainer: the MeterProvider and TracerProvider the
// app provides receive the cache's metrics and spans.
func TestTelemetryFromTheContainer(t *testing.T) {
	t.Setenv(config.EnvConfig, testutil.WriteConfig(t, "[cache]\nenabled = true\n"))
	reader := sdkmetric.NewManualReader()
	rec := tracetest.NewSpanRecorder()
	var c *cache.Cache
	app := fxtest.New(t,
		ushkafx.Module,
		fx.Provide(
			func() metric.MeterProvider { return sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)) },
			func() trace.TracerProvider { return sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)) },
		),
		fx.Populate(&c),
	)
	app.RequireStart()
	defer app.RequireStop()
	if _, err := cache.GetOrSet(t.Context(), c, "k", time.Minute, func(context.Context) (int, error) { return 1, nil }); err != nil {
		t.Fatal(err)
	}
	if len(rec.Ended()) == 0 {
		t.Error("the container's TracerProvider received no span")
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			found = found || m.Name == "cache.loads"
		}
	}
	if !found {
		t.Errorf("the container's MeterProvider has no cache.loads: %+v", rm.ScopeMetrics)
	}
}

func TestConstructorReceivesCache(t *testing.T) {
	t.Setenv(config.EnvConfig, testutil.WriteConfig(t, "[cache]\nenabled = true\n"))
	var got *cache.Cache
	app := fxtest.New(t,
		ushkafx.Module,
		fx.Provide(reports.NewReportService, reports.NewHandler),
		fx.Invoke(func(c *cache.Cache, _ *reports.ReportService) { got = c }),
	)
	app.RequireStart().RequireStop()
	if got == nil {
		t.Fatal("no cache injected")
	}
}

func TestBadConfigFailsStart(t *testing.T) {
	path := testutil.WriteConfig(t, "[cache]\nenabled = true\nbackend = \"in_memory\"\nbackedn = \"redis\"\n")
	app := fx.New(fx.NopLogger, ushkafx.ConfigPath(path), ushkafx.Module,
		fx.Invoke(func(*cache.Cache) {}))
	err := app.Err()
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("app.Err() = %v, want the *config.Error", err)
	}
	if want := path + `:4: cache.backedn: unknown key (did you mean "cache.backend"?)`; ce.Error() != want {
		t.Fatalf("config error = %q, want %q", ce, want)
	}
	if !strings.Contains(err.Error(), "backedn") {
		t.Fatalf("fx error %q hides the config error", err)
	}
}
