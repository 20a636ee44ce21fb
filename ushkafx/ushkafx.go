// Package ushkafx plugs Ushka's cache into go.uber.org/fx: the configured
// *cache.Cache becomes a dependency that constructors receive by type, the
// Go form of type-hinting BaseCache in the seed.
//
//	app := fx.New(
//		ushkafx.Module,
//		fx.Provide(NewReportService), // func NewReportService(c *cache.Cache) *ReportService
//		fx.Invoke(func(*ReportService) {}),
//	)
//
// The module loads ushka.toml (the path given with [ConfigPath], else
// $USHKA_CONFIG, else ./ushka.toml), provides *config.Config and
// *cache.Cache, and closes the cache when the app stops. A bad config fails
// the app's start with the config's own error. It blank-imports the built-in
// backends, so switching backends is a config change alone.
//
// Nothing here is needed without fx: config.Load and cache.Open do the same.
package ushkafx

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"

	"github.com/ushka-go/ushka/cache"
	_ "github.com/ushka-go/ushka/cache/redis" // the redis backend, selectable from ushka.toml
	"github.com/ushka-go/ushka/config"
)

// Module provides *config.Config and *cache.Cache.
var Module = fx.Module("ushka",
	fx.Provide(provideConfig, provideCache),
)

// configPath is the file named with ConfigPath.
type configPath string

// ConfigPath makes Module load path instead of $USHKA_CONFIG or ./ushka.toml.
func ConfigPath(path string) fx.Option {
	return fx.Supply(configPath(path))
}

type configIn struct {
	fx.In
	Path configPath `optional:"true"`
}

func provideConfig(in configIn) (*config.Config, error) {
	// A file named by ConfigPath or USHKA_CONFIG must exist; only the
	// implicit ./ushka.toml may be missing.
	return config.Open(string(in.Path))
}

type cacheIn struct {
	fx.In
	Lifecycle fx.Lifecycle
	Config    *config.Config
	Logger    *slog.Logger `optional:"true"` // used when the app provides one
	// MeterProvider receives the cache's metrics when the app provides one
	// (cache.WithMeterProvider).
	MeterProvider metric.MeterProvider `optional:"true"`
	// TracerProvider receives the cache's spans when the app provides one
	// (cache.WithTracerProvider).
	TracerProvider trace.TracerProvider `optional:"true"`
}

func provideCache(in cacheIn) (*cache.Cache, error) {
	var opts []cache.Option
	if in.Logger != nil {
		opts = append(opts, cache.WithLogger(in.Logger))
	}
	if in.MeterProvider != nil {
		opts = append(opts, cache.WithMeterProvider(in.MeterProvider))
	}
	if in.TracerProvider != nil {
		opts = append(opts, cache.WithTracerProvider(in.TracerProvider))
	}
	c, err := cache.Open(context.Background(), in.Config.Cache, opts...)
	if err != nil {
		return nil, err
	}
	in.Lifecycle.Append(fx.StopHook(c.Close))
	return c, nil
}
