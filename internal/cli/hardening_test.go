package cli_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/ushka-go/ushka/internal/redistest"
	"github.com/ushka-go/ushka/internal/redisurl/leaktest"
	"github.com/ushka-go/ushka/internal/testutil"
)

// runWith runs the binary in dir (the test's directory when empty) with the
// USHKA_* variables of env added to a clean environment.
func runWith(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader("")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, out.String(), errb.String()}
}

// "--" ends the flags wherever it is (issue 8, item 12a).
func TestDoubleDashEndsFlags(t *testing.T) {
	srv := redistest.Start(t)
	cfg := testutil.WriteConfig(t, fmt.Sprintf("[cache]\nenabled = true\nbackend = \"redis\"\nredis_url = \"redis://%s/0\"\n", srv.Addr))
	tests := []struct {
		name       string
		args       []string
		key, value string
	}{
		{"before KEY", []string{"cache", "set", "--config", cfg, "--", "k1", "-v1"}, "k1", "-v1"},
		{"before VALUE", []string{"cache", "set", "--config", cfg, "k2", "--", "-v2"}, "k2", "-v2"},
		{"flags before it still parse", []string{"cache", "set", "--ttl", "1h", "--config", cfg, "--", "k3", "--ttl"}, "k3", "--ttl"},
		{"a KEY that looks like a flag", []string{"cache", "set", "--config", cfg, "--", "--config", "x"}, "--config", "x"},
		{"VALUE --", []string{"cache", "set", "--config", cfg, "k4", "--", "--"}, "k4", "--"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expect(t, run(t, tt.args...), 0, "", "")
			if got := srv.Do("GET", "ushka:"+tt.key); got != tt.value {
				t.Fatalf("ushka %v stored %q under %q, want %q", tt.args, got, tt.key, tt.value)
			}
			expect(t, run(t, "cache", "get", "--config", cfg, "--", tt.key), 0, tt.value+"\n", "")
		})
	}
	// Arguments after "--" count: one too many is still a usage error.
	expect(t, run(t, "cache", "set", "--config", cfg, "--", "k", "v", "extra"), 2, "", "want KEY VALUE, got 3 argument(s)")
}

// A backend that answers but refuses the command exits 4, not 3 ("the
// backend is unreachable"): issue 8, item 12b. This needs the redis store to
// wrap Redis error replies so that they match cache.ErrRefused.
func TestCacheRefusedExit4(t *testing.T) {
	srv := redistest.Start(t)
	srv.Do("RPUSH", "ushka:list", "a")
	srv.Do("ACL", "SETUSER", "reader", "on", ">s3cret", "~*", "+@all", "-set", "-get")
	cfg := testutil.WriteConfig(t, fmt.Sprintf("[cache]\nenabled = true\nbackend = \"redis\"\nredis_url = \"redis://%s/0\"\n", srv.Addr))
	limited := testutil.WriteConfig(t, fmt.Sprintf("[cache]\nenabled = true\nbackend = \"redis\"\nredis_url = \"redis://reader:s3cret@%s/0\"\n", srv.Addr))
	tests := []struct {
		name, stderr string
		args         []string
	}{
		{"WRONGTYPE", "WRONGTYPE", []string{"cache", "get", "--config", cfg, "list"}},
		{"NOPERM get", "NOPERM", []string{"cache", "get", "--config", limited, "k"}},
		{"NOPERM set", "NOPERM", []string{"cache", "set", "--config", limited, "k", "v"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, tt.args...)
			expect(t, r, 4, "", tt.stderr)
			if strings.Contains(r.stderr, "s3cret") {
				t.Fatalf("the password leaked: %s", r.stderr)
			}
		})
	}
}

// A file named by --config or USHKA_CONFIG must exist; only the implicit
// ./ushka.toml may be missing (issue 8, item 12c).
func TestNamedConfigMustExist(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "ushka.tmol")
	for _, args := range [][]string{
		{"config", "check", "--config", missing},
		{"--config", missing, "config", "check"},
		{"cache", "get", "--config", missing, "k"},
		{"serve", "--config", missing, "--addr", testutil.UnusedAddr(t)},
	} {
		expect(t, runWith(t, dir, nil, args...), 2, "", missing+": the configuration file does not exist")
	}
	for _, args := range [][]string{{"config", "check"}, {"serve", "--addr", testutil.UnusedAddr(t)}} {
		expect(t, runWith(t, dir, []string{"USHKA_CONFIG=" + missing}, args...), 2, "",
			"environment variable USHKA_CONFIG: names "+missing+", a file that does not exist")
	}
	// The implicit ./ushka.toml: missing means the defaults.
	expect(t, runWith(t, dir, nil, "config", "check"), 0, "# ushka.toml: not found, using the defaults", "")
}

// config check fails on what only a start would have found (issue 8, items
// 12d, 12e, 12f).
func TestConfigCheckRejects(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := redistest.NewTLSFiles(t).CA
	tests := []struct{ name, file, stderr string }{
		{"tls_ca_file missing", "[cache]\nbackend = \"redis\"\nredis_url = \"rediss://h:6380\"\ntls_ca_file = \"" + filepath.Join(dir, "nope.pem") + "\"\n",
			":4: cache.tls_ca_file: stat " + filepath.Join(dir, "nope.pem") + ": no such file or directory"},
		{"tls_ca_file without PEM", "[cache]\nbackend = \"redis\"\nredis_url = \"rediss://h:6380\"\ntls_ca_file = \"" + notPEM + "\"\n",
			":4: cache.tls_ca_file: " + notPEM + " holds no PEM certificate"},
		{"tls_ca_file without rediss", "[cache]\nbackend = \"redis\"\nredis_url = \"redis://h:6379\"\ntls_ca_file = \"" + ca + "\"\n",
			":4: cache.tls_ca_file: is set, but redis_url is not a rediss:// URL"},
		{"duplicate key", "[cache]\nenabled = true\nenabled = true\n",
			":3: cache.enabled: is already set on line 2"},
		{"fragment", "[cache]\nbackend = \"redis\"\nredis_url = \"redis://:s3cret@h:6379/0#x\"\n",
			`:3: cache.redis_url: invalid redis_url "redis://***@h:6379/0#***": a "#" starts a fragment`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := testutil.WriteConfig(t, tt.file)
			r := run(t, "config", "check", "--config", path)
			expect(t, r, 2, "", path+tt.stderr)
			if strings.Contains(r.stdout+r.stderr, "s3cret") {
				t.Fatalf("the password leaked: %s", r.stderr)
			}
		})
	}
	good := testutil.WriteConfig(t, "[cache]\nbackend = \"redis\"\nredis_url = \"rediss://h:6380\"\ntls_ca_file = \""+ca+"\"\n")
	expect(t, run(t, "config", "check", "--config", good), 0, `tls_ca_file        = "`+ca+`"`, "")
}

// TestConfigCheckNeverShowsPassword is the property of issue 8, item 3 for
// `ushka config check`: a redis_url holding a password, in ushka.toml or in
// USHKA_CACHE_REDIS_URL, never shows it on stdout or stderr (the criterion
// is in package leaktest).
func TestConfigCheckNeverShowsPassword(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ushka.toml")
	rapid.Check(t, func(rt *rapid.T) {
		c := leaktest.Gen().Draw(rt, "case").AsText() // files and the environment hold text only
		url := c.URL
		doc := "[cache]\nenabled = true\nbackend = \"redis\"\nredis_url = " + tomlString(url) + "\n"
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			rt.Fatal(err)
		}
		for _, r := range []result{
			runWith(t, dir, nil, "config", "check", "--config", path),
			runWith(t, dir, []string{"USHKA_CACHE_REDIS_URL=" + url}, "config", "check"),
		} {
			if w := c.Leak(r.stdout + r.stderr); w != "" {
				rt.Fatalf("shape %q, password %q: config check shows %q:\n  URL: %q\n  exit %d\n%s%s", c.Shape, c.Password, w, url, r.code, r.stdout, r.stderr)
			}
		}
	})
}

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
