package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.uber.org/fx"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/config"
	"github.com/ushka-go/ushka/examples/reports"
	"github.com/ushka-go/ushka/ushkafx"
)

const serveUsage = `Usage:
  ushka serve [--config PATH] [--addr HOST:PORT] [--delay DURATION] [--ttl DURATION]

Serves the seed's ReportService with the configured cache:
  GET  /report              the report; X-Cache: MISS when computed, HIT when cached,
                            STALE when the computation failed and fail-safe
                            (stale_ttl in the config) served the last good report
  POST /report/refresh      drop the cached report
  POST /report/fail?for=5s  make the computation fail for that long (at most 1h),
                            as a database that is down
  GET  /healthz             "ok", or "degraded" (still 200) while the cache backend
                            does not answer, with its circuit breaker's state
  GET  /cache/stats         hits, misses, sets, deletes, loads, errors, ...
  GET  /metrics             the cache's OpenTelemetry metrics, in the Prometheus text format
--delay is how long the report takes to compute (default 2s), --ttl how long
it is cached (default 60s, as in the seed).
Stops gracefully on SIGINT or SIGTERM, closing the cache.
`

// DefaultAddr is where ushka serve listens unless told otherwise.
const DefaultAddr = "localhost:8000"

func (e *env) serve(args []string) int {
	fs := e.flags("serve")
	addr := fs.String("addr", DefaultAddr, "address to listen on")
	delay := reports.DefaultDelay
	fs.Var(durationFlag{&delay}, "delay", "how long the expensive report takes")
	ttl := reports.TTL
	fs.Var(durationFlag{&ttl}, "ttl", "how long the report is cached")
	if _, code, ok := e.command(fs, serveUsage, args); !ok {
		return code
	}
	if ttl <= 0 || ttl > cache.MaxTTL {
		fmt.Fprintf(e.stderr, "ushka: invalid value %q for flag -ttl: must be more than 0s and at most 100 years\n\n%s", ttl, serveUsage)
		return ExitUsage
	}
	// ushkafx loads the config again; this load fails first, with exit 2,
	// on a --config or USHKA_CONFIG file that does not exist.
	if _, code, ok := e.loadConfig(); !ok {
		return code
	}
	log := slog.New(slog.NewTextHandler(e.stderr, nil))
	// GET /metrics: the cache's OpenTelemetry metrics, through the
	// Prometheus exporter, on a registry of its own.
	registry := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(registry))
	if err != nil {
		return e.errorf(ExitUsage, "metrics: %v", err)
	}
	meters := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	defer meters.Shutdown(context.Background())
	opts := []fx.Option{
		fx.NopLogger,
		ushkafx.Module,
		fx.Supply(log), // ushkafx gives it to the cache
		fx.Supply(fx.Annotate(meters, fx.As(new(metric.MeterProvider)))), // and this
		fx.Decorate(func(h http.Handler) http.Handler {
			mux := http.NewServeMux()
			mux.Handle("GET /metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
			mux.Handle("/", h)
			return mux
		}),
		fx.Provide(reports.NewReportService, reports.NewHandler),
		fx.Decorate(func(s *reports.ReportService) *reports.ReportService {
			return s.WithTTL(ttl).WithDelay(delay).WithLogger(log)
		}),
		fx.Invoke(func(lc fx.Lifecycle, h http.Handler, cfg *config.Config, c *cache.Cache) {
			srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
			lc.Append(fx.Hook{
				OnStart: func(context.Context) error {
					ln, err := net.Listen("tcp", *addr)
					if err != nil {
						return err
					}
					go func() {
						if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
							log.Error("server stopped", "err", err)
						}
					}()
					log.Info("serving the report demo", "addr", "http://"+ln.Addr().String(), "config", cfg.File,
						"config_found", cfg.Found, "cache_enabled", cfg.Cache.Enabled, "backend", cfg.Cache.Backend,
						"report_ttl", ttl, "report_delay", delay, "stale_ttl", cfg.Cache.StaleTTL, "refresh_ahead", cfg.Cache.RefreshAhead)
					return nil
				},
				OnStop: srv.Shutdown, // before the cache closes: fx stops in reverse order
			})
		}),
	}
	if e.configPath != "" {
		opts = append(opts, ushkafx.ConfigPath(e.configPath))
	}
	app := fx.New(opts...)
	if err := app.Err(); err != nil {
		return e.errorf(ExitUsage, "%v", rootCause(err))
	}
	startCtx, cancel := context.WithTimeout(e.ctx, 15*time.Second)
	defer cancel()
	if err := app.Start(startCtx); err != nil {
		return e.errorf(ExitUsage, "start: %v", rootCause(err))
	}
	<-e.ctx.Done()
	log.Info("shutting down")
	stopCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := app.Stop(stopCtx); err != nil {
		return e.errorf(ExitUsage, "stop: %v", err)
	}
	return ExitOK
}

// rootCause returns the config or cache error inside fx's wrapping, which
// names every constructor on the way and buries the one line that matters.
func rootCause(err error) error {
	var ce *config.Error
	if errors.As(err, &ce) {
		return ce
	}
	var fe *cache.FieldError
	if errors.As(err, &fe) {
		return fmt.Errorf("config: %w", fe)
	}
	return err
}
