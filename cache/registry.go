package cache

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/ushka-go/ushka/codec"
	"github.com/ushka-go/ushka/internal/memstore"
)

// Opener builds a [Store] from the [cache] configuration. It receives cfg
// with defaults applied and validated. It should validate and build without
// needing its server to be up: reachability is a health check ([Pinger]),
// not a start-up failure.
type Opener func(ctx context.Context, cfg Config) (Store, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Opener{}
)

func init() {
	// in_memory is built in, so that it works without an import a user could
	// forget. Package cache/memory gives it a public constructor.
	Register(DefaultBackend, func(_ context.Context, cfg Config) (Store, error) {
		return memstore.New(memstore.Options{MaxBytes: cfg.MaxBytes, MaxEntries: cfg.MaxEntries})
	})
}

// Register makes a backend available to [Open] under name, as database/sql's
// Register does for drivers. It is meant to be called from the init function
// of the backend's package. It panics if name is empty or not lowercase
// letters, digits and underscores, if open is nil, or if name is already
// registered.
func Register(name string, open func(ctx context.Context, cfg Config) (Store, error)) {
	if name == "" || strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
		panic(fmt.Sprintf("cache: Register: invalid backend name %q (use lowercase letters, digits and _)", name))
	}
	if open == nil {
		panic("cache: Register: nil opener for backend " + name)
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("cache: Register called twice for backend " + name)
	}
	registry[name] = open
}

// Backends returns the names of the registered backends, sorted.
func Backends() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func lookup(name string) (Opener, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	open, ok := registry[name]
	return open, ok
}

// Open returns the cache that cfg describes: a disabled cache when
// cfg.Enabled is false, otherwise a [Cache] over the store of the registered
// backend cfg.Backend, with cfg's codec and default TTL. opts are applied
// after those, so they can override them or add a logger.
//
// Open validates cfg and builds the store, but does not need a remote store
// to be reachable: the application can start before its Redis does. Use
// [Cache.Ping] to check reachability.
func Open(ctx context.Context, cfg Config, opts ...Option) (*Cache, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cache: config: %w", err)
	}
	cfg = cfg.WithDefaults()
	cd, err := codec.ByName(cfg.Codec)
	if err != nil {
		return nil, fmt.Errorf("cache: config: %w", err)
	}
	base := []Option{WithCodec(cd), WithDefaultTTL(cfg.DefaultTTL)}
	if !cfg.Enabled {
		return New(DiscardStore(), append(base, opts...)...), nil
	}
	if cfg.Logger == nil {
		cfg.Logger = optionsLogger(opts)
	}
	open, _ := lookup(cfg.Backend)
	store, err := open(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("cache: open %s backend: %w", cfg.Backend, err)
	}
	if store == nil {
		return nil, fmt.Errorf("cache: open %s backend: opener returned a nil store", cfg.Backend)
	}
	base = append(base, WithGetOrSetDefaults(
		StaleFor(cfg.StaleTTL), RefreshAhead(cfg.RefreshAhead), FailSafeThrottle(cfg.FailSafeThrottle),
		LoadTimeout(cfg.LoadTimeout), LoadHardTimeout(cfg.LoadHardTimeout)))
	base = append(base, WithBreaker(BreakerConfig{
		Failures: cfg.BreakerFailures, HangAfter: cfg.BreakerHangAfter,
		Retry: cfg.BreakerRetry, QueueMax: cfg.InvalidationQueueMax,
	}))
	base = append(base, optionFunc{"backend " + cfg.Backend, func(c *Cache) { c.backend = cfg.Backend }})
	c := New(store, append(base, opts...)...)
	c.timeout = cfg.Timeout
	c.lease = cfg.LockLease
	c.staleMaxBytes = cfg.StaleMaxBytes
	return c, nil
}
