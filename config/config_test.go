package config_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
	_ "github.com/ushka-go/ushka/cache/redis" // the seed's production backend
	"github.com/ushka-go/ushka/config"
	"github.com/ushka-go/ushka/internal/testutil"
)

// clearEnv makes the tests independent of the environment they run in.
func clearEnv(t *testing.T) {
	for _, k := range []string{config.EnvCacheEnabled, config.EnvCacheBackend, config.EnvCacheRedisURL} {
		t.Setenv(k, "")
	}
}

func TestSeedConfigs(t *testing.T) {
	clearEnv(t)
	tests := []struct {
		name, file string
		want       cache.Config
	}{
		{"in_memory", "[cache]\nenabled = true\nbackend = \"in_memory\"\n",
			cache.Config{Enabled: true, Backend: "in_memory"}},
		{"redis", "# in ushka.toml\n\n[cache]\nenabled = true\nbackend = \"redis\"\nredis_url = \"redis://localhost:6379/0\"\n",
			cache.Config{Enabled: true, Backend: "redis", RedisURL: "redis://localhost:6379/0"}},
		{"empty file", "", cache.Config{}},
		{"every key", `
[cache]
enabled = true
backend = "in_memory"
key_prefix = "app1:"
default_ttl = "5m"
codec = "msgpack"
timeout = "100ms"
max_bytes = "128MiB"
`, cache.Config{Enabled: true, Backend: "in_memory", KeyPrefix: "app1:", DefaultTTL: 5 * time.Minute,
			Codec: "msgpack", Timeout: 100 * time.Millisecond, MaxBytes: 128 << 20}},
		{"max_entries", "[cache]\nmax_entries = 5000\n", cache.Config{MaxEntries: 5000}},
		{"max_bytes integer", "[cache]\nmax_bytes = 1000\n", cache.Config{MaxBytes: 1000}},
		{"dotted keys", "cache.enabled = true\ncache.max_bytes = \"1MB\"\n", cache.Config{Enabled: true, MaxBytes: 1e6}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Load(testutil.WriteConfig(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if want := tt.want.WithDefaults(); cfg.Cache != want {
				t.Fatalf("Cache = %+v\nwant    %+v", cfg.Cache, want)
			}
			if !cfg.Found {
				t.Error("Found = false for an existing file")
			}
		})
	}
}

func TestMissingFileMeansDefaults(t *testing.T) {
	clearEnv(t)
	path := filepath.Join(t.TempDir(), "ushka.toml")
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Found || cfg.Cache != (cache.Config{}).WithDefaults() || cfg.Cache.Enabled {
		t.Fatalf("Load of a missing file = %+v, want disabled defaults", cfg)
	}
}

func TestMalformed(t *testing.T) {
	clearEnv(t)
	tests := []struct {
		name, file, want string
	}{
		{"misspelt key", "[cache]\nenabled = true\nbackend = \"in_memory\"\nbackedn = \"redis\"\n",
			`:4: cache.backedn: unknown key (did you mean "cache.backend"?)`},
		{"misspelt table", "[cahce]\nenabled = true\n",
			`:1: cahce: unknown table (did you mean "cache"?)`},
		{"unknown key far from any", "[cache]\ncolour = \"blue\"\n",
			`:2: cache.colour: unknown key (valid keys: cache.enabled, cache.backend, cache.redis_url, cache.tls_ca_file, cache.key_prefix, cache.default_ttl, cache.codec, cache.timeout, cache.max_bytes, cache.max_entries, cache.stale_ttl, cache.refresh_ahead, cache.fail_safe_throttle, cache.stale_max_bytes, cache.load_timeout, cache.load_hard_timeout, cache.lock_lease, cache.near_cache, cache.near_cache_max_bytes, cache.breaker_failures, cache.breaker_hang_after, cache.breaker_retry, cache.invalidation_queue_max)`},
		{"prefix of a key", "[cache]\nredis = \"redis://x\"\n",
			`:2: cache.redis: unknown key (did you mean "cache.redis_url"?)`},
		{"enabled as string", "[cache]\nenabled = \"yes\"\n",
			`:2: cache.enabled: must be a boolean (true or false), got string "yes"`},
		{"backend as number", "[cache]\n\nbackend = 3\n",
			`:3: cache.backend: must be a string, got integer 3`},
		{"unknown backend", "[cache]\nenabled = true\nbackend = \"memcache\"\n",
			`:3: cache.backend: unknown backend "memcache" (registered: in_memory, redis)`},
		{"malformed redis_url", "[cache]\nenabled = true\nbackend = \"redis\"\nredis_url = \"redis://:s3cret@localhost:63790000/0\"\n",
			`:4: cache.redis_url: invalid redis_url "redis://***@localhost:***/0": port: want a number from 1 to 65535`},
		{"redis_url without scheme", "[cache]\nbackend = \"redis\"\nredis_url = \"localhost:6379\"\n",
			`:3: cache.redis_url: invalid redis_url "***": missing scheme: write redis://[USER:PASSWORD@]HOST[:PORT][/DB]`},
		{"redis_url unknown parameter", "[cache]\nbackend = \"redis\"\nredis_url = \"redis://h?pool_size=10\"\n",
			`:3: cache.redis_url: invalid redis_url "redis://h?pool_size=***": unknown parameter(s) pool_size`},
		{"redis_url with a fragment", "[cache]\nbackend = \"redis\"\nredis_url = \"redis://h:6379/0#s3cret\"\n",
			`:3: cache.redis_url: invalid redis_url "redis://h:6379/0#***": a "#" starts a fragment, which a redis_url cannot have`},
		{"redis_url password with a slash", "[cache]\nbackend = \"redis\"\nredis_url = \"redis://u:12/s3cret@h:6379/0\"\n",
			`:3: cache.redis_url: invalid redis_url "redis://***@h:6379/0": cannot tell where the password ends: percent-encode "/"`},
		{"tls_ca_file without rediss", "[cache]\nbackend = \"redis\"\nredis_url = \"redis://h\"\ntls_ca_file = \"ca.pem\"\n",
			`:4: cache.tls_ca_file: is set, but redis_url is not a rediss:// URL: a CA file only verifies a TLS server`},
		{"tls_ca_file missing", "[cache]\nbackend = \"redis\"\nredis_url = \"rediss://h\"\ntls_ca_file = \"/nonexistent/ca.pem\"\n",
			`:4: cache.tls_ca_file: stat /nonexistent/ca.pem: no such file or directory`},
		{"tls_ca_file a directory", "[cache]\nbackend = \"redis\"\nredis_url = \"rediss://h\"\ntls_ca_file = \"/\"\n",
			`:4: cache.tls_ca_file: / is not a regular file`},
		{"default_ttl beyond MaxTTL", "[cache]\ndefault_ttl = \"900000h\"\n",
			`:2: cache.default_ttl: must be at most 100 years`},
		{"redis without url", "[cache]\nenabled = true\nbackend = \"redis\"\n",
			`:3: cache.redis_url: is required when backend = "redis"`},
		{"ttl as integer seconds", "[cache]\ndefault_ttl = 60\n",
			`:2: cache.default_ttl: must be a duration string such as "250ms", "60s" or "1h", got integer 60`},
		{"unparsable duration", "[cache]\ntimeout = \"fast\"\n",
			`:2: cache.timeout: must be a duration such as "250ms", "60s" or "1h", got "fast"`},
		{"negative duration", "[cache]\ndefault_ttl = \"-5s\"\n",
			`:2: cache.default_ttl: must not be negative, got "-5s"`},
		{"unknown codec", "[cache]\ncodec = \"xml\"\n",
			`:2: cache.codec: unknown codec "xml" (known: json, msgpack, stdjson)`},
		{"bad size", "[cache]\nmax_bytes = \"lots\"\n",
			`:2: cache.max_bytes: must be a size such as "64MiB", "512KB" or "1000000", got "lots"`},
		{"negative size", "[cache]\nmax_bytes = -1\n",
			`:2: cache.max_bytes: must not be negative, got -1`},
		{"both bounds", "[cache]\nmax_bytes = \"1MiB\"\nmax_entries = 10\n",
			`:3: cache.max_entries: set either max_bytes or max_entries, not both`},
		{"max_entries as float", "[cache]\nmax_entries = 1.5\n",
			`:2: cache.max_entries: must be an integer, got float 1.5`},
		{"syntax: missing value", "[cache]\nenabled =\n",
			`:2: invalid TOML: unexpected character U+000A at start of value`},
		{"syntax: unclosed string", "[cache]\nbackend = \"redis\n",
			`:2: invalid TOML: `},
		{"duplicate key", "[cache]\nenabled = true\nenabled = false\n",
			`:3: cache.enabled: is already set on line 2: set each key once`},
		{"duplicate dotted key", "cache.enabled = true\n\ncache.enabled = false\n",
			`:3: cache.enabled: is already set on line 1: set each key once`},
		{"cache not a table", "cache = 5\n",
			`:1: cache: must be a table: write [cache] on a line of its own, with its keys below it`},
		{"empty key_prefix", "[cache]\nkey_prefix = \"\"\n",
			`:2: cache.key_prefix: must not be empty (the default is "ushka:")`},
		{"redis_url as table", "[cache]\nredis_url = { host = \"x\" }\n",
			`:2: cache.redis_url: must be a string, got a table`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := testutil.WriteConfig(t, tt.file)
			_, err := config.Load(path)
			if err == nil {
				t.Fatalf("Load = nil error, want %q", tt.want)
			}
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T) is not a *config.Error", err, err)
			}
			if !strings.HasPrefix(err.Error(), path+tt.want) {
				t.Fatalf("error = %q\nwant prefix %q", err, path+tt.want)
			}
			if strings.Count(err.Error(), "\n") > 0 {
				t.Errorf("error spans several lines: %q", err)
			}
		})
	}
}

// TestGetOrSetPolicyKeys loads good values of the keys of issue 9 (fail-safe,
// early refresh, load timeouts, the cross-process lock's lease).
func TestGetOrSetPolicyKeys(t *testing.T) {
	clearEnv(t)
	tests := []struct {
		name, file string
		want       cache.Config
	}{
		{"every key", `
[cache]
stale_ttl = "1h"
refresh_ahead = 0.8
fail_safe_throttle = "2s"
stale_max_bytes = "32MiB"
load_timeout = "100ms"
load_hard_timeout = "5s"
lock_lease = "10s"
`, cache.Config{StaleTTL: time.Hour, RefreshAhead: 0.8, FailSafeThrottle: 2 * time.Second, StaleMaxBytes: 32 << 20,
			LoadTimeout: 100 * time.Millisecond, LoadHardTimeout: 5 * time.Second, LockLease: 10 * time.Second}},
		{"refresh_ahead integer 0 is off", "[cache]\nrefresh_ahead = 0\n", cache.Config{}},
		{"refresh_ahead float 0 is off", "[cache]\nrefresh_ahead = 0.0\n", cache.Config{}},
		{"refresh_ahead close to 1", "[cache]\nrefresh_ahead = 0.999\n", cache.Config{RefreshAhead: 0.999}},
		{"refresh_ahead exponent", "[cache]\nrefresh_ahead = 5e-1\n", cache.Config{RefreshAhead: 0.5}},
		{"stale_ttl zero is off", "[cache]\nstale_ttl = \"0s\"\n", cache.Config{}},
		{"stale_max_bytes integer", "[cache]\nstale_max_bytes = 1000\n", cache.Config{StaleMaxBytes: 1000}},
		{"zero means the defaults", "[cache]\nfail_safe_throttle = \"0s\"\nstale_max_bytes = 0\nlock_lease = \"0s\"\n", cache.Config{}},
		{"hard timeout equal to soft", "[cache]\nload_timeout = \"1s\"\nload_hard_timeout = \"1s\"\n",
			cache.Config{LoadTimeout: time.Second, LoadHardTimeout: time.Second}},
		{"hard timeout alone", "[cache]\nload_hard_timeout = \"3s\"\n", cache.Config{LoadHardTimeout: 3 * time.Second}},
		{"soft timeout alone", "[cache]\nload_timeout = \"3s\"\n", cache.Config{LoadTimeout: 3 * time.Second}},
		{"shortest lock_lease", "[cache]\nlock_lease = \"10ms\"\n", cache.Config{LockLease: 10 * time.Millisecond}},
		{"dotted keys", "cache.stale_ttl = \"30m\"\ncache.refresh_ahead = 0.9\n", cache.Config{StaleTTL: 30 * time.Minute, RefreshAhead: 0.9}},
		{"near cache", "[cache]\nnear_cache = true\nnear_cache_max_bytes = \"16MiB\"\n", cache.Config{NearCache: true, NearCacheMaxBytes: 16 << 20}},
		{"near cache bytes integer", "[cache]\nnear_cache_max_bytes = 4096\n", cache.Config{NearCacheMaxBytes: 4096}},
		{"near cache off", "[cache]\nnear_cache = false\n", cache.Config{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Load(testutil.WriteConfig(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if want := tt.want.WithDefaults(); cfg.Cache != want {
				t.Fatalf("Cache = %+v\nwant    %+v", cfg.Cache, want)
			}
		})
	}
	// The defaults of the keys left out.
	cfg, err := config.Load(testutil.WriteConfig(t, "[cache]\nenabled = true\n"))
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Cache
	if c.StaleTTL != 0 || c.RefreshAhead != 0 || c.LoadTimeout != 0 || c.LoadHardTimeout != 0 ||
		c.FailSafeThrottle != time.Second || c.StaleMaxBytes != 16<<20 || c.LockLease != 5*time.Second ||
		c.NearCache || c.NearCacheMaxBytes != 64<<20 {
		t.Fatalf("defaults = %+v, want fail-safe, refresh and near cache off, throttle 1s, 16 MiB of stale copies, lease 5s, 64 MiB of near cache", c)
	}
}

// TestGetOrSetPolicyKeysMalformed: each bad value of the keys of issue 9 is
// one *config.Error naming the file, the line and the key.
func TestGetOrSetPolicyKeysMalformed(t *testing.T) {
	clearEnv(t)
	const duration = `must be a duration string such as "250ms", "60s" or "1h", got `
	const fraction = `must be 0 (off) or a fraction of the ttl between 0 and 1, such as 0.8, got `
	tests := []struct {
		name, file, want string
	}{
		{"stale_ttl negative", "[cache]\n# fail-safe\nstale_ttl = \"-1s\"\n", `:3: cache.stale_ttl: must not be negative, got "-1s"`},
		{"stale_ttl integer", "[cache]\nstale_ttl = 3600\n", `:2: cache.stale_ttl: ` + duration + `integer 3600`},
		{"stale_ttl unparsable", "[cache]\nstale_ttl = \"an hour\"\n", `:2: cache.stale_ttl: must be a duration such as "250ms", "60s" or "1h", got "an hour"`},
		{"stale_ttl beyond MaxTTL", "[cache]\nstale_ttl = \"900000h\"\n", `:2: cache.stale_ttl: must be at most 100 years (cache.MaxTTL), got 900000h0m0s`},
		{"refresh_ahead 1", "[cache]\nrefresh_ahead = 1\n", `:2: cache.refresh_ahead: ` + fraction + `1`},
		{"refresh_ahead 1.0", "[cache]\nrefresh_ahead = 1.0\n", `:2: cache.refresh_ahead: ` + fraction + `1`},
		{"refresh_ahead 1.5", "[cache]\nenabled = true\n\nrefresh_ahead = 1.5\n", `:4: cache.refresh_ahead: ` + fraction + `1.5`},
		{"refresh_ahead negative", "[cache]\nrefresh_ahead = -0.1\n", `:2: cache.refresh_ahead: ` + fraction + `-0.1`},
		{"refresh_ahead percent", "[cache]\nrefresh_ahead = 80\n", `:2: cache.refresh_ahead: ` + fraction + `80`},
		{"refresh_ahead nan", "[cache]\nrefresh_ahead = nan\n", `:2: cache.refresh_ahead: ` + fraction + `NaN`},
		{"refresh_ahead inf", "[cache]\nrefresh_ahead = inf\n", `:2: cache.refresh_ahead: ` + fraction + `+Inf`},
		{"refresh_ahead string", "[cache]\nrefresh_ahead = \"0.8\"\n", `:2: cache.refresh_ahead: must be a fraction such as 0.8 (or 0 for off), got string "0.8"`},
		{"refresh_ahead boolean", "[cache]\nrefresh_ahead = true\n", `:2: cache.refresh_ahead: must be a fraction such as 0.8 (or 0 for off), got boolean true`},
		{"refresh_ahead dotted", "cache.refresh_ahead = 1.5\n", `:1: cache.refresh_ahead: ` + fraction + `1.5`},
		{"fail_safe_throttle negative", "[cache]\nfail_safe_throttle = \"-1s\"\n", `:2: cache.fail_safe_throttle: must not be negative, got "-1s"`},
		{"fail_safe_throttle integer", "[cache]\nfail_safe_throttle = 1\n", `:2: cache.fail_safe_throttle: ` + duration + `integer 1`},
		{"fail_safe_throttle beyond MaxTTL", "[cache]\nfail_safe_throttle = \"900000h\"\n", `:2: cache.fail_safe_throttle: must be at most 100 years`},
		{"stale_max_bytes negative", "[cache]\nstale_max_bytes = -1\n", `:2: cache.stale_max_bytes: must not be negative, got -1`},
		{"near_cache string", "[cache]\nnear_cache = \"yes\"\n", `:2: cache.near_cache: must be a boolean (true or false), got string "yes"`},
		{"near_cache_max_bytes negative", "[cache]\nnear_cache = true\nnear_cache_max_bytes = -1\n", `:3: cache.near_cache_max_bytes: must not be negative, got -1`},
		{"near_cache_max_bytes bad size", "[cache]\nnear_cache_max_bytes = \"big\"\n", `:2: cache.near_cache_max_bytes: must be a size such as "64MiB", "512KB" or "1000000", got "big"`},
		{"stale_max_bytes bad size", "[cache]\nstale_max_bytes = \"lots\"\n", `:2: cache.stale_max_bytes: must be a size such as "64MiB", "512KB" or "1000000", got "lots"`},
		{"stale_max_bytes float", "[cache]\nstale_max_bytes = 1.5\n", `:2: cache.stale_max_bytes: must be a number of bytes or a size such as "64MiB", got float 1.5`},
		{"stale_max_bytes negative size", "[cache]\nstale_max_bytes = \"-1MiB\"\n", `:2: cache.stale_max_bytes: must be a size such as "64MiB", "512KB" or "1000000", got "-1MiB"`},
		{"load_timeout negative", "[cache]\nload_timeout = \"-5ms\"\n", `:2: cache.load_timeout: must not be negative, got "-5ms"`},
		{"load_timeout integer", "[cache]\nload_timeout = 5\n", `:2: cache.load_timeout: ` + duration + `integer 5`},
		{"load_hard_timeout negative", "[cache]\nload_hard_timeout = \"-1s\"\n", `:2: cache.load_hard_timeout: must not be negative, got "-1s"`},
		{"load_hard_timeout float", "[cache]\nload_hard_timeout = 1.5\n", `:2: cache.load_hard_timeout: ` + duration + `float 1.5`},
		{"load_hard_timeout shorter than load_timeout", "[cache]\nload_timeout = \"2s\"\nload_hard_timeout = \"1s\"\n",
			`:3: cache.load_hard_timeout: must not be shorter than load_timeout (2s), got 1s`},
		{"load_hard_timeout shorter, set first", "[cache]\nload_hard_timeout = \"100ms\"\nload_timeout = \"1s\"\n",
			`:2: cache.load_hard_timeout: must not be shorter than load_timeout (1s), got 100ms`},
		{"lock_lease negative", "[cache]\nlock_lease = \"-1s\"\n", `:2: cache.lock_lease: must not be negative, got "-1s"`},
		{"lock_lease too short", "[cache]\nlock_lease = \"5ms\"\n", `:2: cache.lock_lease: must be at least 10ms, got 5ms`},
		{"lock_lease integer", "[cache]\nlock_lease = 5\n", `:2: cache.lock_lease: ` + duration + `integer 5`},
		{"lock_lease table", "[cache]\nlock_lease = { s = 5 }\n", `:2: cache.lock_lease: ` + duration + `a table`},
		{"misspelt stale_ttl", "[cache]\nstale_tl = \"1h\"\n", `:2: cache.stale_tl: unknown key (did you mean "cache.stale_ttl"?)`},
		{"misspelt refresh_ahead", "[cache]\nrefresh_ahaed = 0.8\n", `:2: cache.refresh_ahaed: unknown key (did you mean "cache.refresh_ahead"?)`},
		{"misspelt load_hard_timeout", "[cache]\nload_hard_timout = \"1s\"\n", `:2: cache.load_hard_timout: unknown key (did you mean "cache.load_hard_timeout"?)`},
		{"misspelt fail_safe_throttle", "[cache]\nfailsafe_throttle = \"1s\"\n", `:2: cache.failsafe_throttle: unknown key (did you mean "cache.fail_safe_throttle"?)`},
		{"misspelt lock_lease", "[cache]\nlock_lese = \"1s\"\n", `:2: cache.lock_lese: unknown key (did you mean "cache.lock_lease"?)`},
		{"prefix of refresh_ahead", "[cache]\nrefresh = 0.8\n", `:2: cache.refresh: unknown key (did you mean "cache.refresh_ahead"?)`},
		{"duplicate stale_ttl", "[cache]\nstale_ttl = \"1h\"\nstale_ttl = \"2h\"\n", `:3: cache.stale_ttl: is already set on line 2: set each key once`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := testutil.WriteConfig(t, tt.file)
			_, err := config.Load(path)
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("Load = %v (%T), want a *config.Error %q", err, err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), path+tt.want) {
				t.Fatalf("error = %q\nwant prefix %q", err, path+tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans several lines: %q", err)
			}
		})
	}
}

func TestEnvOverrides(t *testing.T) {
	path := testutil.WriteConfig(t, "[cache]\nenabled = false\nbackend = \"in_memory\"\n")
	t.Setenv(config.EnvCacheEnabled, "true")
	t.Setenv(config.EnvCacheBackend, "in_memory")
	t.Setenv(config.EnvCacheRedisURL, "redis://:s3cret@cache:6379/2")
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Cache.Enabled || string(cfg.Cache.RedisURL) != "redis://:s3cret@cache:6379/2" {
		t.Fatalf("env not applied: %+v", cfg.Cache)
	}
}

func TestEnvErrorsNameTheVariable(t *testing.T) {
	path := testutil.WriteConfig(t, "[cache]\nenabled = true\n")
	t.Setenv(config.EnvCacheRedisURL, "")
	t.Setenv(config.EnvCacheEnabled, "")
	t.Setenv(config.EnvCacheBackend, "memcache")
	_, err := config.Load(path)
	want := `environment variable USHKA_CACHE_BACKEND: cache.backend: unknown backend "memcache" (registered: in_memory, redis)`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %q", err, want)
	}
	t.Setenv(config.EnvCacheBackend, "")
	t.Setenv(config.EnvCacheEnabled, "sometimes")
	_, err = config.Load(path)
	want = `environment variable USHKA_CACHE_ENABLED: cache.enabled: must be true or false, got "sometimes"`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %q", err, want)
	}
}

// Validation runs after the environment is applied: a file that says redis
// without a URL is fine when the URL comes from the environment.
func TestValidationAfterEnv(t *testing.T) {
	clearEnv(t)
	path := testutil.WriteConfig(t, "[cache]\nenabled = true\nbackend = \"redis\"\n")
	t.Setenv(config.EnvCacheRedisURL, "redis://localhost:6379/0")
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("Load = %v, want the URL from the environment to count", err)
	}
	if cfg.Cache.RedisURL != "redis://localhost:6379/0" {
		t.Fatalf("RedisURL = %q", cfg.Cache.RedisURL)
	}
	t.Setenv(config.EnvCacheRedisURL, "redis://:s3cret@h:0")
	_, err = config.Load(path)
	want := `environment variable USHKA_CACHE_REDIS_URL: cache.redis_url: invalid redis_url "redis://***@h:***": port: want a number from 1 to 65535`
	if err == nil || err.Error() != want {
		t.Fatalf("Load = %v, want %q", err, want)
	}
}

func TestUnreadableFile(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir() // a directory is not a readable file
	_, err := config.Load(dir)
	var ce *config.Error
	if !errors.As(err, &ce) || ce.File != dir {
		t.Fatalf("Load(dir) = %v, want a *config.Error naming it", err)
	}
}

func TestErrorsNeverShowThePassword(t *testing.T) {
	clearEnv(t)
	path := testutil.WriteConfig(t, "[cache]\nenabled = true\nbackend = \"nope\"\nredis_url = \"redis://:s3cret@h:1\"\n")
	_, err := config.Load(path)
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("error = %v", err)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"0", 0}, {"1000", 1000}, {"1B", 1}, {"1KB", 1000}, {"1KiB", 1024},
		{"64MiB", 64 << 20}, {"2 GiB", 2 << 30}, {"1TB", 1e12},
	}
	for _, tt := range tests {
		got, err := config.ParseSize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = (%d, %v), want %d", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "1.5MiB", "1PB", "9999999999TiB"} {
		if _, err := config.ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = nil error", in)
		}
	}
}

// The repository's own ushka.toml, which the demo reads, loads, and turns
// fail-safe and early refresh on.
func TestRootConfig(t *testing.T) {
	clearEnv(t)
	cfg, err := config.Load("../ushka.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.Cache; !cfg.Found || !c.Enabled || c.Backend != "in_memory" || c.StaleTTL != time.Hour || c.RefreshAhead != 0.8 {
		t.Fatalf("../ushka.toml = %+v, want in_memory with stale_ttl 1h and refresh_ahead 0.8", cfg)
	}
}
