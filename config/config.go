// Package config loads ushka.toml, the configuration file of an Ushka
// application, strictly: an unknown key, a value of the wrong type or a bad
// value is one clear *[Error] naming the file, the line and the key, and
// nothing starts on a bad config.
//
//	[cache]
//	enabled = true            # default false
//	backend = "redis"         # "in_memory" (default) | "redis" | any registered name
//	redis_url = "redis://localhost:6379/0"
//
// USHKA_CACHE_ENABLED, USHKA_CACHE_BACKEND and USHKA_CACHE_REDIS_URL override
// the file, so that secrets can stay out of it. A missing ./ushka.toml means
// the defaults: caching disabled; a file named with --config or
// USHKA_CONFIG must exist ([Open]).
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/ushka-go/ushka/cache"
)

// DefaultPath is the file an application loads when it is not told another.
const DefaultPath = "ushka.toml"

// The environment variables that override ushka.toml.
const (
	// EnvConfig names the configuration file when the program is not told one.
	EnvConfig        = "USHKA_CONFIG"
	EnvCacheEnabled  = "USHKA_CACHE_ENABLED"
	EnvCacheBackend  = "USHKA_CACHE_BACKEND"
	EnvCacheRedisURL = "USHKA_CACHE_REDIS_URL"
)

// Path returns the configuration file to load when none was given: the
// value of USHKA_CONFIG, or DefaultPath.
func Path() string {
	if p := os.Getenv(EnvConfig); p != "" {
		return p
	}
	return DefaultPath
}

// Config is a loaded ushka.toml, defaults applied.
type Config struct {
	// Cache is the [cache] section, ready for cache.Open.
	Cache cache.Config
	// File is the path Load read, or tried to read.
	File string
	// Found reports whether File existed; when it did not, Cache holds the
	// defaults and any environment overrides.
	Found bool
}

// Error is a configuration error: what is wrong, and where.
type Error struct {
	// File is the configuration file; empty when the bad value came from the
	// environment.
	File string
	// Line is the 1-based line of the key in File, or 0 when the key is not
	// in the file (a required key that is missing, an environment override).
	Line int
	// Key is the dotted TOML key, such as "cache.backend".
	Key string
	// Env names the environment variable the bad value came from, if any.
	Env string
	// Err says what is wrong.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.Env != "":
		b.WriteString("environment variable " + e.Env)
	case e.Line > 0:
		fmt.Fprintf(&b, "%s:%d", e.File, e.Line)
	default:
		b.WriteString(e.File)
	}
	if e.Key != "" {
		b.WriteString(": " + e.Key)
	}
	b.WriteString(": " + e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Load reads the configuration file at path (a missing file means the
// defaults), applies the USHKA_CACHE_* environment overrides, fills in
// defaults and validates the result. Every problem is an *[Error].
//
// A program that takes a --config flag calls [Open] instead, so that a
// file the user named must exist.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		data = nil
	case err != nil:
		return nil, &Error{File: path, Err: err}
	}
	return load(path, data, data != nil, true)
}

// Open loads the configuration a program was told to use: the file at path
// when path is not empty (a --config flag), else the file $USHKA_CONFIG
// names, else ./ushka.toml ([DefaultPath]), as [Load] does. A file that was
// named, by path or by USHKA_CONFIG, must exist: a missing one is an
// *[Error] matching [fs.ErrNotExist], since a typo in a path must not
// quietly mean the defaults. Only the implicit ./ushka.toml may be missing.
func Open(path string) (*Config, error) {
	var env string
	if path == "" {
		if path, env = os.Getenv(EnvConfig), EnvConfig; path == "" {
			return Load(DefaultPath)
		}
	}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && env != "":
		return nil, &Error{File: path, Env: env, Err: notFoundError("names " + path + ", a file that does not exist")}
	case errors.Is(err, fs.ErrNotExist):
		return nil, &Error{File: path, Err: notFoundError("the configuration file does not exist")}
	case err != nil:
		return nil, &Error{File: path, Err: err}
	}
	return load(path, data, true, true)
}

// notFoundError is a named configuration file that does not exist.
type notFoundError string

func (e notFoundError) Error() string        { return string(e) }
func (e notFoundError) Is(target error) bool { return target == fs.ErrNotExist }

// Parse decodes and validates the ushka.toml content data, named file in
// errors, without reading the environment.
func Parse(file string, data []byte) (*Config, error) {
	return load(file, data, true, false)
}

// load decodes data, applies the environment if env is set, validates the
// result and fills in the defaults.
func load(file string, data []byte, found, env bool) (*Config, error) {
	cfg, src, err := parse(file, data)
	if err != nil {
		return nil, err
	}
	cfg.Found = found
	if env {
		if err := applyEnv(&cfg.Cache, src); err != nil {
			return nil, err
		}
	}
	if err := validate(cfg, src); err != nil {
		return nil, err
	}
	cfg.Cache = cfg.Cache.WithDefaults()
	return cfg, nil
}

// sources remembers where each cache key was set: its line in the file, or
// the environment variable that overrode it.
type sources struct {
	file  string
	lines map[string]int    // "cache.backend" -> line
	env   map[string]string // "cache.backend" -> "USHKA_CACHE_BACKEND"
}

func (s sources) errorAt(key string, err error) *Error {
	if env, ok := s.env[key]; ok {
		return &Error{Key: key, Env: env, Err: err}
	}
	return &Error{File: s.file, Line: s.lines[key], Key: key, Err: err}
}

// fileConfig mirrors ushka.toml. Values are decoded as any and converted by
// hand, so that a wrong type gets a message about the key, not about Go.
type fileConfig struct {
	Cache *fileCache `toml:"cache"`
}

type fileCache struct {
	Enabled    any `toml:"enabled"`
	Backend    any `toml:"backend"`
	RedisURL   any `toml:"redis_url"`
	TLSCAFile  any `toml:"tls_ca_file"`
	KeyPrefix  any `toml:"key_prefix"`
	DefaultTTL any `toml:"default_ttl"`
	Codec      any `toml:"codec"`
	Timeout    any `toml:"timeout"`
	MaxBytes   any `toml:"max_bytes"`
	MaxEntries any `toml:"max_entries"`

	StaleTTL         any `toml:"stale_ttl"`
	RefreshAhead     any `toml:"refresh_ahead"`
	FailSafeThrottle any `toml:"fail_safe_throttle"`
	StaleMaxBytes    any `toml:"stale_max_bytes"`
	LoadTimeout      any `toml:"load_timeout"`
	LoadHardTimeout  any `toml:"load_hard_timeout"`
	LockLease        any `toml:"lock_lease"`

	NearCache         any `toml:"near_cache"`
	NearCacheMaxBytes any `toml:"near_cache_max_bytes"`

	BreakerFailures      any `toml:"breaker_failures"`
	BreakerHangAfter     any `toml:"breaker_hang_after"`
	BreakerRetry         any `toml:"breaker_retry"`
	InvalidationQueueMax any `toml:"invalidation_queue_max"`
}

// knownKeys are the valid dotted keys, for "did you mean" suggestions.
var knownKeys = []string{
	"cache", "cache.enabled", "cache.backend", "cache.redis_url", "cache.tls_ca_file", "cache.key_prefix",
	"cache.default_ttl", "cache.codec", "cache.timeout", "cache.max_bytes", "cache.max_entries",
	"cache.stale_ttl", "cache.refresh_ahead", "cache.fail_safe_throttle", "cache.stale_max_bytes",
	"cache.load_timeout", "cache.load_hard_timeout", "cache.lock_lease",
	"cache.near_cache", "cache.near_cache_max_bytes",
	"cache.breaker_failures", "cache.breaker_hang_after", "cache.breaker_retry", "cache.invalidation_queue_max",
}

func parse(file string, data []byte) (*Config, sources, error) {
	src := sources{file: file, lines: keyLines(data), env: map[string]string{}}
	cfg := &Config{File: file}
	var fc fileConfig
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		return nil, src, decodeError(file, data, err)
	}
	if fc.Cache == nil {
		return cfg, src, nil
	}
	c, out := fc.Cache, &cfg.Cache
	conv := []struct {
		key string
		v   any
		set func(v any) error
	}{
		{"enabled", c.Enabled, func(v any) (err error) { out.Enabled, err = asBool(v); return }},
		{"backend", c.Backend, func(v any) (err error) { out.Backend, err = asString(v); return }},
		{"redis_url", c.RedisURL, func(v any) error { s, err := asString(v); out.RedisURL = cache.SecretURL(s); return err }},
		{"tls_ca_file", c.TLSCAFile, func(v any) (err error) { out.TLSCAFile, err = asString(v); return }},
		{"key_prefix", c.KeyPrefix, func(v any) (err error) { out.KeyPrefix, err = asString(v); return }},
		{"default_ttl", c.DefaultTTL, func(v any) (err error) { out.DefaultTTL, err = asDuration(v); return }},
		{"codec", c.Codec, func(v any) (err error) { out.Codec, err = asString(v); return }},
		{"timeout", c.Timeout, func(v any) (err error) { out.Timeout, err = asDuration(v); return }},
		{"max_bytes", c.MaxBytes, func(v any) (err error) { out.MaxBytes, err = asSize(v); return }},
		{"max_entries", c.MaxEntries, func(v any) error { n, err := asCount(v); out.MaxEntries = n; return err }},
		{"stale_ttl", c.StaleTTL, func(v any) (err error) { out.StaleTTL, err = asDuration(v); return }},
		{"refresh_ahead", c.RefreshAhead, func(v any) (err error) { out.RefreshAhead, err = asFraction(v); return }},
		{"fail_safe_throttle", c.FailSafeThrottle, func(v any) (err error) { out.FailSafeThrottle, err = asDuration(v); return }},
		{"stale_max_bytes", c.StaleMaxBytes, func(v any) (err error) { out.StaleMaxBytes, err = asSize(v); return }},
		{"load_timeout", c.LoadTimeout, func(v any) (err error) { out.LoadTimeout, err = asDuration(v); return }},
		{"load_hard_timeout", c.LoadHardTimeout, func(v any) (err error) { out.LoadHardTimeout, err = asDuration(v); return }},
		{"lock_lease", c.LockLease, func(v any) (err error) { out.LockLease, err = asDuration(v); return }},
		{"near_cache", c.NearCache, func(v any) (err error) { out.NearCache, err = asBool(v); return }},
		{"near_cache_max_bytes", c.NearCacheMaxBytes, func(v any) (err error) { out.NearCacheMaxBytes, err = asSize(v); return }},
		{"breaker_failures", c.BreakerFailures, func(v any) error { n, err := asCount(v); out.BreakerFailures = n; return err }},
		{"breaker_hang_after", c.BreakerHangAfter, func(v any) (err error) { out.BreakerHangAfter, err = asDuration(v); return }},
		{"breaker_retry", c.BreakerRetry, func(v any) (err error) { out.BreakerRetry, err = asDuration(v); return }},
		{"invalidation_queue_max", c.InvalidationQueueMax, func(v any) error { n, err := asCount(v); out.InvalidationQueueMax = n; return err }},
	}
	for _, f := range conv {
		if f.v == nil {
			continue
		}
		if err := f.set(f.v); err != nil {
			return nil, src, src.errorAt("cache."+f.key, err)
		}
	}
	if out.KeyPrefix == "" && c.KeyPrefix != nil {
		return nil, src, src.errorAt("cache.key_prefix", errors.New(`must not be empty (the default is "ushka:")`))
	}
	return cfg, src, nil
}

func decodeError(file string, data []byte, err error) error {
	var sm *toml.StrictMissingError
	if errors.As(err, &sm) && len(sm.Errors) > 0 {
		de := sm.Errors[0]
		row, _ := de.Position()
		key := strings.Join(de.Key(), ".")
		msg := "unknown key"
		if strings.Contains(de.Error(), "table") {
			msg = "unknown table"
		}
		if near := nearest(key, knownKeys); near != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", near)
		} else {
			msg += fmt.Sprintf(" (valid keys: %s)", strings.Join(knownKeys[1:], ", "))
		}
		return &Error{File: file, Line: row, Key: key, Err: errors.New(msg)}
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, _ := de.Position()
		key := strings.Join(de.Key(), ".")
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		switch {
		case key == "cache" && strings.Contains(msg, "cannot decode"):
			msg = "must be a table: write [cache] on a line of its own, with its keys below it"
		case strings.Contains(msg, "already defined"):
			// go-toml names the key relative to its table: "enabled".
			if full, first := keyAt(data, row); full != "" {
				key, msg = full, fmt.Sprintf("is already set on line %d: set each key once", first)
			}
		case strings.Contains(msg, "cannot decode"):
		default:
			key = "" // a syntax error: the line says where
			msg = "invalid TOML: " + msg
		}
		return &Error{File: file, Line: row, Key: key, Err: errors.New(msg)}
	}
	return &Error{File: file, Err: err}
}

// keyAt returns the full dotted key of the key/value expression that starts
// on line row of data, or "", and the line where that key is first set.
func keyAt(data []byte, row int) (key string, first int) {
	firsts := map[string]int{}
	walkKeys(data, func(full string, line int, table bool) bool {
		if table {
			return true
		}
		if _, seen := firsts[full]; !seen {
			firsts[full] = line
		}
		if line == row {
			key, first = full, firsts[full]
			return false
		}
		return true
	})
	return key, first
}

// keyLines maps each dotted key of a TOML document to the line where it is
// set, for errors about values that decoded but are wrong.
func keyLines(data []byte) map[string]int {
	lines := map[string]int{}
	walkKeys(data, func(full string, line int, _ bool) bool {
		lines[full] = line
		return true
	})
	return lines
}

// walkKeys calls fn with the dotted name and line of each table header and
// key of a TOML document, in order, until fn returns false.
func walkKeys(data []byte, fn func(full string, line int, table bool) bool) {
	var p unstable.Parser
	p.Reset(data)
	var table []string
	for p.NextExpression() {
		e := p.Expression()
		var parts []string
		line := 0
		for it := e.Key(); it.Next(); {
			n := it.Node()
			parts = append(parts, string(n.Data))
			if line == 0 {
				line = p.Shape(n.Raw).Start.Line
			}
		}
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = parts
			if !fn(strings.Join(parts, "."), line, true) {
				return
			}
		case unstable.KeyValue:
			if !fn(strings.Join(append(slices.Clone(table), parts...), "."), line, false) {
				return
			}
		}
	}
}

func applyEnv(c *cache.Config, src sources) error {
	if v := os.Getenv(EnvCacheEnabled); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return &Error{Key: "cache.enabled", Env: EnvCacheEnabled, Err: fmt.Errorf("must be true or false, got %q", v)}
		}
		c.Enabled = b
		src.env["cache.enabled"] = EnvCacheEnabled
	}
	if v := os.Getenv(EnvCacheBackend); v != "" {
		c.Backend = v
		src.env["cache.backend"] = EnvCacheBackend
	}
	if v := os.Getenv(EnvCacheRedisURL); v != "" {
		c.RedisURL = cache.SecretURL(v)
		src.env["cache.redis_url"] = EnvCacheRedisURL
	}
	return nil
}

func validate(cfg *Config, src sources) error {
	err := cfg.Cache.Validate()
	if err == nil {
		return nil
	}
	var fe *cache.FieldError
	if !errors.As(err, &fe) {
		return &Error{File: src.file, Key: "cache", Err: err}
	}
	key := "cache." + fe.Field
	_, inFile := src.lines[key]
	_, inEnv := src.env[key]
	if !inFile && !inEnv && fe.Field == "redis_url" {
		// A missing required key: point at the line that made it required.
		e := src.errorAt("cache.backend", fe.Err)
		e.Key = key
		return e
	}
	return src.errorAt(key, fe.Err)
}

func asBool(v any) (bool, error) {
	b, ok := v.(bool)
	if !ok {
		return false, typeError("a boolean (true or false)", v)
	}
	return b, nil
}

func asString(v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", typeError("a string", v)
	}
	return s, nil
}

// asCount reads a count: an integer up to math.MaxInt32.
func asCount(v any) (int, error) {
	n, err := asInt(v)
	if err == nil && n > math.MaxInt32 {
		err = fmt.Errorf("must be at most %d, got %d", math.MaxInt32, n)
	}
	return int(n), err
}

func asInt(v any) (int64, error) {
	n, ok := v.(int64)
	if !ok {
		return 0, typeError("an integer", v)
	}
	if n < 0 {
		return 0, fmt.Errorf("must not be negative, got %d", n)
	}
	return n, nil
}

func asDuration(v any) (time.Duration, error) {
	s, ok := v.(string)
	if !ok {
		return 0, typeError(`a duration string such as "250ms", "60s" or "1h"`, v)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf(`must be a duration such as "250ms", "60s" or "1h", got %q`, s)
	}
	if d < 0 {
		return 0, fmt.Errorf("must not be negative, got %q", s)
	}
	return d, nil
}

// asFraction accepts a TOML float, or an integer (refresh_ahead = 0 turns
// early refresh off); its range is checked by [cache.Config.Validate].
func asFraction(v any) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case int64:
		return float64(x), nil
	}
	return 0, typeError("a fraction such as 0.8 (or 0 for off)", v)
}

// asSize accepts an integer of bytes or a string with a unit: "64MiB",
// "512KB", "1GiB", "1000".
func asSize(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		if x < 0 {
			return 0, fmt.Errorf("must not be negative, got %d", x)
		}
		return x, nil
	case string:
		n, err := ParseSize(x)
		if err != nil {
			return 0, err
		}
		return n, nil
	}
	return 0, typeError(`a number of bytes or a size such as "64MiB"`, v)
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// ParseSize parses a byte size: an integer with an optional unit, B, KB, MB,
// GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024).
func ParseSize(s string) (int64, error) {
	bad := fmt.Errorf(`must be a size such as "64MiB", "512KB" or "1000000", got %q`, s)
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, bad
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n * mult, nil
}

func typeError(want string, v any) error {
	return fmt.Errorf("must be %s, got %s", want, describe(v))
}

func describe(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("string %q", x)
	case int64:
		return fmt.Sprintf("integer %d", x)
	case float64:
		return fmt.Sprintf("float %v", x)
	case bool:
		return fmt.Sprintf("boolean %v", x)
	case map[string]any:
		return "a table"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("%T", v)
}

// nearest returns the known key closest to key, if it is close enough to be
// a likely misspelling.
func nearest(key string, known []string) string {
	best, bestD := "", math.MaxInt
	for _, k := range known {
		cand := k
		if !strings.Contains(key, ".") { // a top-level name: compare with tables
			if strings.Contains(k, ".") {
				continue
			}
		} else if strings.Count(k, ".") != strings.Count(key, ".") {
			continue
		}
		if d := levenshtein(key, cand); d < bestD {
			best, bestD = cand, d
		}
	}
	last := key[strings.LastIndex(key, ".")+1:]
	for _, k := range known { // "cache.redis" for "cache.redis_url"
		if len(last) >= 3 && strings.HasPrefix(k, key) {
			return k
		}
	}
	if bestD <= 2 || (bestD <= 4 && bestD*3 <= len(last)+1) {
		return best
	}
	return ""
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
