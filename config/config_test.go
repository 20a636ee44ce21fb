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
			`:2: cache.colour: unknown key (valid keys: cache.enabled, cache.backend, cache.redis_url, cache.tls_ca_file, cache.key_prefix, cache.default_ttl, cache.codec, cache.timeout, cache.max_bytes, cache.max_entries)`},
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
