package config_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"pgregory.net/rapid"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/config"
	"github.com/ushka-go/ushka/internal/redisurl/leaktest"
)

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// TestRedisURLPasswordNeverShows is the property of issue 8, item 3 at the
// config level: a redis_url holding a password, in any of many shapes, given
// in ushka.toml or in USHKA_CACHE_REDIS_URL, never shows the password in the
// config error, in the loaded Config printed with %+v, as JSON or logged, nor
// in cache.SecretURL's String, LogValue or MarshalText. The criterion is in
// package leaktest.
func TestRedisURLPasswordNeverShows(t *testing.T) {
	clearEnv(t)
	path := scratchConfig(t)
	rapid.Check(t, func(rt *rapid.T) {
		c := leaktest.Gen().Draw(rt, "case")
		// TOML and the environment hold text only.
		c = c.AsText()
		url := c.URL
		if !utf8.ValidString(url) {
			rt.Fatalf("not UTF-8: %q", url)
		}
		outs := map[string]string{}
		su := cache.SecretURL(url)
		outs["SecretURL.String"] = su.String()
		outs["SecretURL %v"] = fmt.Sprintf("%v %+v %s %#v", su, su, su, su)
		outs["SecretURL.LogValue"] = su.LogValue().String()
		mt, _ := su.MarshalText()
		outs["SecretURL.MarshalText"] = string(mt)

		doc := "[cache]\nenabled = true\nbackend = \"redis\"\nredis_url = " + tomlString(url) + "\n"
		cfg, err := config.Parse("ushka.toml", []byte(doc))
		record(outs, "Parse", cfg, err)

		if err := os.WriteFile(path, []byte("[cache]\nenabled = true\nbackend = \"redis\"\n"), 0o600); err != nil {
			rt.Fatal(err)
		}
		os.Setenv(config.EnvCacheRedisURL, url)
		cfg, err = config.Load(path)
		os.Setenv(config.EnvCacheRedisURL, "")
		record(outs, "Load with "+config.EnvCacheRedisURL, cfg, err)

		for what, out := range outs {
			if w := c.Leak(out); w != "" {
				rt.Fatalf("shape %q, password %q: %s shows %q:\n  URL: %q\n  out: %s", c.Shape, c.Password, what, w, url, out)
			}
		}
	})
}

// record adds what a caller may print of a Load or Parse result to outs.
func record(outs map[string]string, what string, cfg *config.Config, err error) {
	if err != nil {
		outs[what+" error"] = err.Error()
		return
	}
	var log bytes.Buffer
	slog.New(slog.NewTextHandler(&log, nil)).Info("config", "redis_url", cfg.Cache.RedisURL, "cache", cfg.Cache)
	j, _ := json.Marshal(cfg)
	outs[what+" result"] = fmt.Sprintf("%v\n%+v\n%#v\n%s\n%s", cfg, *cfg, *cfg, j, log.String())
}

// scratchConfig returns the path of a file the property rewrites.
func scratchConfig(t *testing.T) string {
	t.Setenv(config.EnvCacheRedisURL, "") // restored after the test
	return t.TempDir() + "/ushka.toml"
}
