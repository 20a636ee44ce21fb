package config_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ushka-go/ushka/config"
	"github.com/ushka-go/ushka/internal/redistest"
	"github.com/ushka-go/ushka/internal/testutil"
)

// A path the user named, with --config or USHKA_CONFIG, must exist; only the
// implicit ./ushka.toml may be missing (issue 8, item 12c).
func TestOpenNamedFileMustExist(t *testing.T) {
	clearEnv(t)
	missing := filepath.Join(t.TempDir(), "ushka.tmol")
	tests := []struct {
		name, flag, env, want string
	}{
		{"--config", missing, "", missing + ": the configuration file does not exist"},
		{"USHKA_CONFIG", "", missing, "environment variable USHKA_CONFIG: names " + missing + ", a file that does not exist"},
		{"--config wins over USHKA_CONFIG", missing, "/nonexistent/other.toml", missing + ": the configuration file does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(config.EnvConfig, tt.env)
			cfg, err := config.Open(tt.flag)
			if err == nil {
				t.Fatalf("Open(%q) with USHKA_CONFIG=%q = %+v, want an error", tt.flag, tt.env, cfg)
			}
			var ce *config.Error
			if !errors.As(err, &ce) || !errors.Is(err, fs.ErrNotExist) || err.Error() != tt.want {
				t.Fatalf("Open error = %q (%T), want *config.Error %q matching fs.ErrNotExist", err, err, tt.want)
			}
		})
	}
}

func TestOpen(t *testing.T) {
	clearEnv(t)
	named := testutil.WriteConfig(t, "[cache]\nenabled = true\n")
	t.Run("implicit ushka.toml may be missing", func(t *testing.T) {
		t.Setenv(config.EnvConfig, "")
		t.Chdir(t.TempDir())
		cfg, err := config.Open("")
		if err != nil || cfg.Found || cfg.File != config.DefaultPath || cfg.Cache.Enabled {
			t.Fatalf("Open(\"\") in an empty directory = %+v, %v; want the defaults", cfg, err)
		}
	})
	t.Run("implicit ushka.toml is read", func(t *testing.T) {
		t.Setenv(config.EnvConfig, "")
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, config.DefaultPath), []byte("[cache]\nenabled = true\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Chdir(dir)
		if cfg, err := config.Open(""); err != nil || !cfg.Found || !cfg.Cache.Enabled {
			t.Fatalf("Open(\"\") = %+v, %v; want ./ushka.toml", cfg, err)
		}
	})
	t.Run("USHKA_CONFIG", func(t *testing.T) {
		t.Setenv(config.EnvConfig, named)
		if cfg, err := config.Open(""); err != nil || cfg.File != named || !cfg.Cache.Enabled {
			t.Fatalf("Open(\"\") = %+v, %v; want %s", cfg, err, named)
		}
	})
	t.Run("--config", func(t *testing.T) {
		t.Setenv(config.EnvConfig, "/nonexistent/ushka.toml")
		if cfg, err := config.Open(named); err != nil || cfg.File != named || !cfg.Cache.Enabled {
			t.Fatalf("Open(%q) = %+v, %v", named, cfg, err)
		}
	})
}

// tls_ca_file is checked when the config loads, so that `ushka config check`
// and every start fail on a bad one (issue 8, item 12d).
func TestTLSCAFile(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	unreadable := filepath.Join(dir, "unreadable.pem")
	if err := os.WriteFile(unreadable, []byte("x"), 0o000); err != nil {
		t.Fatal(err)
	}
	ca := redistest.NewTLSFiles(t).CA
	tests := []struct {
		name, url, file, want string
	}{
		{"valid", "rediss://h:6380", ca, ""},
		{"no PEM certificate", "rediss://h:6380", notPEM, ":4: cache.tls_ca_file: " + notPEM + " holds no PEM certificate"},
		{"missing", "rediss://h:6380", filepath.Join(dir, "nope.pem"), ":4: cache.tls_ca_file: stat " + filepath.Join(dir, "nope.pem") + ": no such file or directory"},
		{"a directory", "rediss://h:6380", dir, ":4: cache.tls_ca_file: " + dir + " is not a regular file"},
		{"a device", "rediss://h:6380", "/dev/zero", ":4: cache.tls_ca_file: /dev/zero is not a regular file"},
		{"not rediss", "redis://h:6379", ca, ":4: cache.tls_ca_file: is set, but redis_url is not a rediss:// URL"},
	}
	if os.Geteuid() != 0 { // root reads anything
		tests = append(tests, struct{ name, url, file, want string }{
			"unreadable", "rediss://h:6380", unreadable, ":4: cache.tls_ca_file: open " + unreadable + ": permission denied"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := testutil.WriteConfig(t, "[cache]\nbackend = \"redis\"\nredis_url = \""+tt.url+"\"\ntls_ca_file = \""+tt.file+"\"\n")
			cfg, err := config.Load(path)
			if tt.want == "" {
				if err != nil || cfg.Cache.TLSCAFile != tt.file {
					t.Fatalf("Load = %+v, %v", cfg, err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), path+tt.want) {
				t.Fatalf("Load error = %v\nwant prefix %q", err, path+tt.want)
			}
		})
	}
}
