package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ushka-go/ushka/config"
)

// FuzzParse feeds arbitrary documents to the parser: it must never panic,
// and must either accept the document or return one single-line *Error that
// names the file.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"[cache]\nenabled = true\nbackend = \"in_memory\"\n",
		"[cache]\nenabled = true\nbackend = \"redis\"\nredis_url = \"redis://localhost:6379/0\"\n",
		"[cache]\ndefault_ttl = \"1h\"\ntimeout = \"250ms\"\nmax_bytes = \"64MiB\"\ncodec = \"msgpack\"\n",
		"cache.enabled = true\n",
		"[cache]\nmax_entries = 10\nkey_prefix = \"a:\"\n",
		"[cahce]\n",
		"cache = 5\n",
		"[cache]\nenabled = \"yes\"\n",
		"[[cache]]\n",
		"[cache.sub]\nx = 1\n",
		"[cache]\nstale_ttl = \"1h\"\nrefresh_ahead = 0.8\nfail_safe_throttle = \"1s\"\nstale_max_bytes = \"16MiB\"\n",
		"[cache]\nload_timeout = \"100ms\"\nload_hard_timeout = \"5s\"\nlock_lease = \"5s\"\n",
		"[cache]\nload_timeout = \"2s\"\nload_hard_timeout = \"1s\"\n",
		"[cache]\nrefresh_ahead = 0\nstale_max_bytes = 1000\n",
		"[cache]\nrefresh_ahead = nan\n",
		"[cache]\nrefresh_ahead = 1.5\nlock_lease = \"1ms\"\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.Parse("ushka.toml", data)
		if err != nil {
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is a %T, want *config.Error", err, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "ushka.toml") {
				t.Fatalf("error %q does not name the file", msg)
			}
			return
		}
		if err := cfg.Cache.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that does not validate: %v", err)
		}
	})
}
