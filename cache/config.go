package cache

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/ushka-go/ushka/codec"
	"github.com/ushka-go/ushka/internal/redisurl"
)

// Defaults of the [Config] fields that are left zero.
const (
	DefaultBackend   = "in_memory"
	DefaultKeyPrefix = "ushka:"
	DefaultCodec     = "json"
	DefaultTimeout   = 250 * time.Millisecond
	DefaultMaxBytes  = 64 << 20 // 64 MiB of heap held by in-memory entries

	// DefaultFailSafeThrottle is how long fail-safe serves a stale value
	// before it tries the load again.
	DefaultFailSafeThrottle = time.Second
	// DefaultStaleMaxBytes bounds the process-local copies of values that
	// fail-safe serves while the store is down.
	DefaultStaleMaxBytes = 16 << 20
	// DefaultLockLease is the lease of a cross-process load lock: how soon a
	// key whose loading process died is free again. The holder renews it
	// while its load runs.
	DefaultLockLease = 5 * time.Second
	// DefaultNearCacheMaxBytes bounds a process's near cache (the copies of
	// a shared store's entries it keeps in memory) when near_cache is on.
	DefaultNearCacheMaxBytes = 64 << 20
)

// Config is the [cache] section of ushka.toml, as package config loads it.
// The zero value is valid: a disabled cache. Zero fields take the defaults
// above when the cache is opened ([Config.WithDefaults]).
type Config struct {
	// Enabled turns caching on. A disabled cache is a working [Cache] whose
	// reads miss and whose writes do nothing.
	Enabled bool
	// Backend names the registered store to use: "in_memory" (the default),
	// "redis", or any name given to [Register].
	Backend string
	// RedisURL locates the Redis server, Cluster or Sentinel group of the
	// redis backend. It hides its password when printed or logged.
	RedisURL SecretURL
	// TLSCAFile names a PEM file of certificate authorities that a rediss://
	// server's certificate is verified with, instead of the system roots.
	TLSCAFile string
	// KeyPrefix is put in front of every key in a shared store, so that Clear
	// removes this application's keys only. Default "ushka:".
	KeyPrefix string
	// DefaultTTL is the time-to-live of entries set with ttl == 0. Zero, the
	// default, means they do not expire.
	DefaultTTL time.Duration
	// Codec names the value encoding: "json" (the default) or "msgpack".
	Codec string
	// Timeout bounds every call to a remote store, on top of the caller's
	// context. Default 250ms.
	Timeout time.Duration
	// MaxBytes bounds the Go heap an in-memory store's entries hold: keys
	// and values as allocated, plus about 165 bytes per entry. Default 64
	// MiB, unless MaxEntries is set.
	MaxBytes int64
	// MaxEntries bounds an in-memory store by its number of entries instead of
	// its bytes. Set at most one of MaxBytes and MaxEntries.
	MaxEntries int

	// StaleTTL turns fail-safe on for [GetOrSet]: an entry is kept this long
	// past its ttl, and served when a fresh value cannot be had (the load
	// fails or passes LoadTimeout, or the store is down). Zero, the
	// default, turns it off. [Cache.Get] never returns a stale value.
	StaleTTL time.Duration
	// RefreshAhead turns early refresh on for [GetOrSet]: a hit on an entry
	// past this fraction of its ttl (0.8: the last fifth) is served at once
	// and reloaded in the background, once across processes. Zero, the
	// default, turns it off; otherwise it is between 0 and 1, exclusive.
	RefreshAhead float64
	// FailSafeThrottle is how long fail-safe serves a stale value before
	// trying the load again. Default 1s.
	FailSafeThrottle time.Duration
	// StaleMaxBytes bounds the copies of values this process keeps so that
	// fail-safe can serve them while a remote store is down. Default 16 MiB.
	StaleMaxBytes int64
	// LoadTimeout is a soft bound on a load when a stale value is at hand:
	// past it the stale value is served, and the load goes on in the
	// background and stores its value. Zero: no bound.
	LoadTimeout time.Duration
	// LoadHardTimeout cancels a load's context after it. Zero: no bound.
	LoadHardTimeout time.Duration
	// LockLease is the lease of a cross-process load lock (a [Locker]
	// store): a key whose loading process died is free again within it.
	// The holder renews it while its load runs. Default 5s.
	LockLease time.Duration

	// NearCache keeps the entries this process reads from a shared store
	// (the redis backend) in process memory as well, and serves later reads
	// of them from there, without a round trip, until the store says they
	// changed (Redis's client tracking: a write by any process, or by any
	// other client of the server, invalidates them). Off by default. The
	// in_memory backend, which is process memory already, ignores it.
	NearCache bool
	// NearCacheMaxBytes bounds the memory of the near cache, for the whole
	// process: keys and values as allocated, plus about 200 bytes per entry.
	// Default 64 MiB.
	NearCacheMaxBytes int64

	// BreakerFailures is how many calls in a row to a remote store that fail
	// for want of an answer (an error other than the server refusing the
	// command, or the timeout) open its circuit breaker: calls then fail at
	// once with [ErrUnavailable] until a probe finds it answering. Default 3.
	BreakerFailures int
	// BreakerHangAfter opens the breaker when the store has answered
	// nothing for this long while calls waited on it: a hung server is found
	// without every call waiting out its timeout. Default half of Timeout,
	// which a store's usual latency must stay well under (or it times out
	// on every hiccup).
	BreakerHangAfter time.Duration
	// BreakerRetry is how often an open breaker probes the store (one probe
	// at a time). Default 250ms.
	BreakerRetry time.Duration
	// InvalidationQueueMax bounds the invalidations (keys) queued while the
	// store cannot be reached, to be replayed when it answers. Past it the
	// queued keys are dropped, loudly, and the whole cache is cleared on
	// recovery instead. Default 10000.
	InvalidationQueueMax int

	// Logger receives the events a store logs by itself, such as a near
	// cache the server refuses. It is not read from ushka.toml: [Open] sets
	// it from [WithLogger] (or [slog.Default]) before it opens the store.
	Logger *slog.Logger `json:"-" toml:"-"`
}

// WithDefaults returns cfg with its zero fields set to their defaults.
func (cfg Config) WithDefaults() Config {
	if cfg.Backend == "" {
		cfg.Backend = DefaultBackend
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = DefaultKeyPrefix
	}
	if cfg.Codec == "" {
		cfg.Codec = DefaultCodec
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxBytes == 0 && cfg.MaxEntries == 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.FailSafeThrottle == 0 {
		cfg.FailSafeThrottle = DefaultFailSafeThrottle
	}
	if cfg.StaleMaxBytes == 0 {
		cfg.StaleMaxBytes = DefaultStaleMaxBytes
	}
	if cfg.LockLease == 0 {
		cfg.LockLease = DefaultLockLease
	}
	if cfg.NearCacheMaxBytes == 0 {
		cfg.NearCacheMaxBytes = DefaultNearCacheMaxBytes
	}
	if cfg.BreakerFailures == 0 {
		cfg.BreakerFailures = DefaultBreakerFailures
	}
	if cfg.BreakerHangAfter == 0 {
		cfg.BreakerHangAfter = max(cfg.Timeout/2, time.Millisecond)
	}
	if cfg.BreakerRetry == 0 {
		cfg.BreakerRetry = DefaultBreakerRetry
	}
	if cfg.InvalidationQueueMax == 0 {
		cfg.InvalidationQueueMax = DefaultInvalidationQueue
	}
	return cfg
}

// FieldError is a [Config] field whose value is wrong. Field is the key's
// name in ushka.toml, so that package config can point at its line.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// Validate reports the first wrong field of cfg as a *[FieldError]. It checks
// what every backend shares; a backend checks its own fields when it opens.
func (cfg Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
	}
	if cfg.Backend == "redis" && cfg.RedisURL == "" {
		return bad("redis_url", `is required when backend = "redis"`)
	}
	if cfg.RedisURL != "" {
		if _, err := redisurl.Parse(string(cfg.RedisURL)); err != nil {
			return &FieldError{Field: "redis_url", Err: err}
		}
	}
	if err := redisurl.CheckTLSCAFile(cfg.TLSCAFile, string(cfg.RedisURL)); err != nil {
		return &FieldError{Field: "tls_ca_file", Err: err}
	}
	if cfg.Backend != "" {
		if _, ok := lookup(cfg.Backend); !ok {
			hint := ""
			if cfg.Backend == "redis" {
				hint = `; import _ "github.com/ushka-go/ushka/cache/redis" to register it`
			}
			return bad("backend", "unknown backend %q (registered: %s)%s", cfg.Backend, strings.Join(Backends(), ", "), hint)
		}
	}
	if cfg.Codec != "" {
		if _, err := codec.ByName(cfg.Codec); err != nil {
			return bad("codec", "unknown codec %q (known: %s)", cfg.Codec, strings.Join(codec.Names(), ", "))
		}
	}
	if cfg.DefaultTTL < 0 {
		return bad("default_ttl", "must not be negative, got %s", cfg.DefaultTTL)
	}
	if cfg.DefaultTTL > MaxTTL {
		return bad("default_ttl", `must be at most 100 years (cache.MaxTTL), got %s; use "0s" for no expiry`, cfg.DefaultTTL)
	}
	if cfg.Timeout < 0 {
		return bad("timeout", "must not be negative, got %s", cfg.Timeout)
	}
	if cfg.MaxBytes < 0 {
		return bad("max_bytes", "must not be negative, got %d", cfg.MaxBytes)
	}
	if cfg.MaxEntries < 0 {
		return bad("max_entries", "must not be negative, got %d", cfg.MaxEntries)
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"stale_ttl", cfg.StaleTTL}, {"fail_safe_throttle", cfg.FailSafeThrottle},
		{"load_timeout", cfg.LoadTimeout}, {"load_hard_timeout", cfg.LoadHardTimeout}, {"lock_lease", cfg.LockLease},
		{"breaker_hang_after", cfg.BreakerHangAfter}, {"breaker_retry", cfg.BreakerRetry},
	} {
		if d.v < 0 {
			return bad(d.field, "must not be negative, got %s", d.v)
		}
		if d.v > MaxTTL {
			return bad(d.field, "must be at most 100 years (cache.MaxTTL), got %s", d.v)
		}
	}
	if cfg.LockLease > 0 && cfg.LockLease < 10*time.Millisecond {
		return bad("lock_lease", "must be at least 10ms, got %s", cfg.LockLease)
	}
	if !(cfg.RefreshAhead >= 0 && cfg.RefreshAhead < 1) { // NaN fails too
		return bad("refresh_ahead", "must be 0 (off) or a fraction of the ttl between 0 and 1, such as 0.8, got %v", cfg.RefreshAhead)
	}
	if cfg.StaleMaxBytes < 0 {
		return bad("stale_max_bytes", "must not be negative, got %d", cfg.StaleMaxBytes)
	}
	if cfg.BreakerFailures < 0 {
		return bad("breaker_failures", "must not be negative, got %d", cfg.BreakerFailures)
	}
	if cfg.InvalidationQueueMax < 0 {
		return bad("invalidation_queue_max", "must not be negative, got %d", cfg.InvalidationQueueMax)
	}
	if cfg.BreakerRetry > 0 && cfg.BreakerRetry < time.Millisecond {
		return bad("breaker_retry", "must be at least 1ms, got %s", cfg.BreakerRetry)
	}
	if cfg.BreakerHangAfter > 0 && cfg.BreakerHangAfter < time.Millisecond {
		return bad("breaker_hang_after", "must be at least 1ms, got %s", cfg.BreakerHangAfter)
	}
	if cfg.NearCacheMaxBytes < 0 {
		return bad("near_cache_max_bytes", "must not be negative, got %d", cfg.NearCacheMaxBytes)
	}
	if cfg.LoadTimeout > 0 && cfg.LoadHardTimeout > 0 && cfg.LoadHardTimeout < cfg.LoadTimeout {
		return bad("load_hard_timeout", "must not be shorter than load_timeout (%s), got %s", cfg.LoadTimeout, cfg.LoadHardTimeout)
	}
	if cfg.MaxBytes > 0 && cfg.MaxEntries > 0 {
		return bad("max_entries", "set either max_bytes or max_entries, not both")
	}
	return nil
}

// SecretURL is a URL that may hold a password, such as a redis_url. Its
// String, Format-with-%v and LogValue forms show the password as "***", so it
// can be printed and logged; use string(u) for the real value.
type SecretURL string

// String returns the URL with its password replaced by "***".
func (u SecretURL) String() string { return Redact(string(u)) }

// LogValue implements [slog.LogValuer], logging the redacted URL.
func (u SecretURL) LogValue() slog.Value { return slog.StringValue(u.String()) }

// GoString implements [fmt.GoStringer] with the redacted URL, so that %#v
// of a Config never shows the password either.
func (u SecretURL) GoString() string { return strconv.Quote(u.String()) }

// MarshalText implements [encoding.TextMarshaler] with the redacted URL, so
// that printing a Config as JSON or TOML never shows the password.
func (u SecretURL) MarshalText() ([]byte, error) { return []byte(u.String()), nil }

// Redact returns rawURL with the password of its user info, and any query
// parameter whose name contains "password", replaced by "***". A URL that
// does not parse is reduced to its scheme, or to "***", so that a malformed
// URL never leaks what it holds.
func Redact(rawURL string) string { return redisurl.Redact(rawURL) }
