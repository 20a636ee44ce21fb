package cache

import (
	"fmt"
	"log/slog"
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

// MarshalText implements [encoding.TextMarshaler] with the redacted URL, so
// that printing a Config as JSON or TOML never shows the password.
func (u SecretURL) MarshalText() ([]byte, error) { return []byte(u.String()), nil }

// Redact returns rawURL with the password of its user info, and any query
// parameter whose name contains "password", replaced by "***". A URL that
// does not parse is reduced to its scheme, or to "***", so that a malformed
// URL never leaks what it holds.
func Redact(rawURL string) string { return redisurl.Redact(rawURL) }
