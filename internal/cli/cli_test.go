package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
	_ "github.com/ushka-go/ushka/cache/redis"
	"github.com/ushka-go/ushka/internal/redistest"
	"github.com/ushka-go/ushka/internal/testutil"
)

var binary string

// TestMain builds the ushka binary once; the tests run it as a user would.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ushka-cli-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "ushka")
	if out, err := exec.Command("go", "build", "-o", binary, "../../cmd/ushka").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = cleanEnv()
	cmd.Stdin = strings.NewReader("") // not a terminal
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

// cleanEnv drops USHKA_* variables the developer may have set.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "USHKA_") {
			env = append(env, kv)
		}
	}
	return env
}

func expect(t *testing.T, r result, code int, stdoutHas, stderrHas string) {
	t.Helper()
	if r.code != code || !strings.Contains(r.stdout, stdoutHas) || !strings.Contains(r.stderr, stderrHas) {
		t.Fatalf("exit %d, stdout %q, stderr %q\nwant exit %d, stdout containing %q, stderr containing %q",
			r.code, r.stdout, r.stderr, code, stdoutHas, stderrHas)
	}
}

func TestHelpOnEveryLevel(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"help"}, {"-h"}, {"serve", "--help"}, {"config", "--help"}, {"config", "check", "--help"},
		{"cache", "--help"}, {"cache", "get", "--help"}, {"cache", "set", "-h"}, {"cache", "clear", "--help"},
		{"cache", "stats", "--help"}, {"cache", "delete", "--help"},
	} {
		r := run(t, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("ushka %v: exit %d, stdout %q, stderr %q; want usage and exit 0", args, r.code, r.stdout, r.stderr)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	cfg := testutil.WriteConfig(t, "[cache]\nenabled = true\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:1\"\n")
	for _, args := range [][]string{
		{}, {"frobnicate"}, {"cache"}, {"cache", "frob"}, {"cache", "get", "--config", cfg},
		{"cache", "get", "--config", cfg, "a", "b"}, {"cache", "set", "--config", cfg, "k"},
		{"cache", "set", "--config", cfg, "--ttl", "soon", "k", "v"}, {"cache", "set", "--config", cfg, "--ttl", "-1s", "k", "v"},
		{"cache", "set", "--config", cfg, "--ttl", "1000000h", "k", "v"}, // above cache.MaxTTL: exited 3 before
		{"serve", "--nope"}, {"cache", "get", "--config", cfg, ""},
		{"serve", "--ttl", "0s"}, {"serve", "--ttl", "-5s"}, {"serve", "--ttl", "soon"}, {"serve", "--ttl", "900000h"},
	} {
		if r := run(t, args...); r.code != 2 {
			t.Errorf("ushka %v: exit %d (stderr %q), want 2", args, r.code, r.stderr)
		}
	}
}

func TestConfigCheck(t *testing.T) {
	good := testutil.WriteConfig(t, "[cache]\nenabled = true\nbackend = \"redis\"\nredis_url = \"redis://:s3cret@localhost:6379/0\"\n")
	r := run(t, "config", "check", "--config", good)
	expect(t, r, 0, `redis_url          = "redis://:***@localhost:6379/0"`, "")
	if strings.Contains(r.stdout+r.stderr, "s3cret") {
		t.Fatalf("config check printed the password: %s", r.stdout)
	}
	for _, want := range []string{ // defaults shown
		`timeout            = "250ms"`, `stale_ttl          = "0s"`, `refresh_ahead      = 0` + "\n",
		`fail_safe_throttle = "1s"`, `stale_max_bytes    = 16777216`, `load_timeout       = "0s"`,
		`load_hard_timeout  = "0s"`, `lock_lease         = "5s"`,
	} {
		expect(t, r, 0, want, "")
	}
	policy := testutil.WriteConfig(t, "[cache]\nstale_ttl = \"1h\"\nrefresh_ahead = 0.8\nfail_safe_throttle = \"250ms\"\n"+
		"stale_max_bytes = \"1MiB\"\nload_timeout = \"100ms\"\nload_hard_timeout = \"2s\"\nlock_lease = \"10s\"\n")
	r = run(t, "config", "check", "--config", policy)
	for _, want := range []string{
		`stale_ttl          = "1h0m0s"`, `refresh_ahead      = 0.8`, `fail_safe_throttle = "250ms"`,
		`stale_max_bytes    = 1048576`, `load_timeout       = "100ms"`, `load_hard_timeout  = "2s"`, `lock_lease         = "10s"`,
	} {
		expect(t, r, 0, want, "")
	}
	// The printed config is itself a valid ushka.toml that loads to the same values.
	again := testutil.WriteConfig(t, r.stdout)
	expect(t, run(t, "config", "check", "--config", again), 0, `refresh_ahead      = 0.8`, "")

	hard := testutil.WriteConfig(t, "[cache]\nload_timeout = \"2s\"\nload_hard_timeout = \"1s\"\n")
	expect(t, run(t, "config", "check", "--config", hard), 2, "",
		hard+`:3: cache.load_hard_timeout: must not be shorter than load_timeout (2s), got 1s`)

	bad := testutil.WriteConfig(t, "[cache]\nenabled = true\nbackedn = \"redis\"\n")
	r = run(t, "config", "check", "--config", bad)
	expect(t, r, 2, "", bad+`:3: cache.backedn: unknown key (did you mean "cache.backend"?)`)

	// --config before the command names works too.
	expect(t, run(t, "--config", bad, "config", "check"), 2, "", "cache.backedn")
}

func TestCacheCommandsRefuseInMemoryAndDisabled(t *testing.T) {
	mem := testutil.WriteConfig(t, "[cache]\nenabled = true\nbackend = \"in_memory\"\n")
	expect(t, run(t, "cache", "get", "--config", mem, "k"), 2, "", "in_memory backend lives inside one process")
	off := testutil.WriteConfig(t, "[cache]\nenabled = false\n")
	expect(t, run(t, "cache", "stats", "--config", off), 2, "", "caching is disabled")
}

func TestCacheCommandsOnRedis(t *testing.T) {
	srv := redistest.Start(t)
	cfgPath := testutil.WriteConfig(t, fmt.Sprintf("[cache]\nenabled = true\nbackend = \"redis\"\nredis_url = \"redis://%s/0\"\n", srv.Addr))

	expect(t, run(t, "cache", "set", "--config", cfgPath, "k", `{"a":1}`), 0, "", "")
	expect(t, run(t, "cache", "get", "--config", cfgPath, "k"), 0, `{"a":1}`+"\n", "")
	// Flags after the arguments work too.
	expect(t, run(t, "cache", "get", "k", "--config", cfgPath), 0, `{"a":1}`, "")

	// A Go reader of the value the command stored, into a struct.
	c, err := cache.Open(t.Context(), cache.Config{Enabled: true, Backend: "redis", RedisURL: cache.SecretURL("redis://" + srv.Addr)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var v struct{ A int }
	if found, err := c.Get(t.Context(), "k", &v); err != nil || !found || v.A != 1 {
		t.Fatalf("Go read of a CLI-set value = (%v, %v, %+v)", found, err, v)
	}

	expect(t, run(t, "cache", "set", "--config", cfgPath, "--ttl", "1h", "with-ttl", "x"), 0, "", "")
	if pttl := srv.Do("PTTL", "ushka:with-ttl"); pttl == "-1" || pttl == "-2" {
		t.Fatalf("PTTL after set --ttl 1h = %s", pttl)
	}
	expect(t, run(t, "cache", "set", "--config", cfgPath, "neg", "--", "-5"), 0, "", "")
	expect(t, run(t, "cache", "get", "--config", cfgPath, "neg"), 0, "-5\n", "")

	expect(t, run(t, "cache", "delete", "--config", cfgPath, "k"), 0, "", "")
	expect(t, run(t, "cache", "get", "--config", cfgPath, "k"), 1, "", `"k" not found`)

	r := run(t, "cache", "stats", "--config", cfgPath)
	var st struct {
		Keys     int64  `json:"keys"`
		URL      string `json:"redis_url"`
		Prefix   string `json:"key_prefix"`
		HitRatio float64
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil || st.Keys != 2 || st.Prefix != "ushka:" {
		t.Fatalf("cache stats: exit %d, %q (%+v), want 2 keys under ushka:", r.code, r.stdout, st)
	}

	// clear: never without confirmation, and only our keys.
	srv.Do("SET", "other-app:1", "theirs")
	srv.Do("SET", "ushkax:1", "theirs")
	expect(t, run(t, "cache", "clear", "--config", cfgPath), 2, "", "refusing to clear without --yes")
	if got := srv.Do("EXISTS", "ushka:with-ttl"); got != "1" {
		t.Fatal("clear without --yes deleted something")
	}
	expect(t, run(t, "cache", "clear", "--dry-run", "--config", cfgPath), 0, `would delete 2 keys under "ushka:"; nothing deleted (dry run)`, "")
	if got := srv.Do("DBSIZE"); got != "4" {
		t.Fatalf("DBSIZE after clear --dry-run = %s, want all 4 keys still there", got)
	}
	expect(t, run(t, "cache", "clear", "--yes", "--config", cfgPath), 0, `cleared 2 keys under "ushka:"`, "")
	if got := srv.Do("DBSIZE"); got != "2" {
		t.Fatalf("DBSIZE after clear = %s, want the 2 foreign keys", got)
	}
	if srv.Do("GET", "other-app:1") != "theirs" || srv.Do("GET", "ushkax:1") != "theirs" {
		t.Fatal("clear touched another application's keys")
	}
}

func TestCacheUnreachable(t *testing.T) {
	redistest.Require(t)
	addr := testutil.UnusedAddr(t)
	cfgPath := testutil.WriteConfig(t, fmt.Sprintf("[cache]\nenabled = true\nbackend = \"redis\"\nredis_url = \"redis://:s3cret@%s\"\n", addr))
	r := run(t, "cache", "get", "--config", cfgPath, "k")
	expect(t, r, 3, "", "unreachable")
	if strings.Contains(r.stderr, "s3cret") {
		t.Fatalf("the password leaked: %s", r.stderr)
	}
}

// startServe starts `ushka serve` with the config text, the report delay
// and any further flags, waits until it answers, and returns its base URL,
// the process and its logs.
func startServe(t *testing.T, config, delay string, flags ...string) (string, *exec.Cmd, *testutil.Buffer) {
	t.Helper()
	cfgPath := testutil.WriteConfig(t, config)
	addr := testutil.UnusedAddr(t)
	cmd := exec.Command(binary, append([]string{"serve", "--config", cfgPath, "--addr", addr, "--delay", delay}, flags...)...)
	cmd.Env = cleanEnv()
	logs := new(testutil.Buffer)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	url := "http://" + addr
	deadline := time.Now().Add(15 * time.Second)
	for {
		if resp, err := http.Get(url + "/healthz"); err == nil {
			resp.Body.Close()
			return url, cmd, logs
		}
		if time.Now().After(deadline) {
			t.Fatalf("ushka serve did not answer: %s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestServe(t *testing.T) {
	url, cmd, logs := startServe(t, "[cache]\nenabled = true\nbackend = \"in_memory\"\n", "300ms")
	fetch := func() (string, string, time.Duration) {
		start := time.Now()
		resp, err := http.Get(url + "/report")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.Header.Get("X-Cache"), string(b), time.Since(start)
	}
	x1, body1, d1 := fetch()
	x2, body2, d2 := fetch()
	if x1 != "MISS" || x2 != "HIT" || body1 != body2 || d1 < 300*time.Millisecond || d2 >= 300*time.Millisecond {
		t.Fatalf("GET /report twice = %s in %v, %s in %v (same body: %v); want a slow MISS then a fast HIT",
			x1, d1, x2, d2, body1 == body2)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ushka serve after SIGTERM: %v\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), "shutting down") {
		t.Fatalf("no graceful shutdown in the logs:\n%s", logs.String())
	}
}

// TestServeRefreshDuringAComputationIsFinal is issue 8, item 1 as a user
// meets it: GET /report starts a slow computation, POST /report/refresh
// comes while it runs, and the next GET /report must not serve the report
// that computation returns. On the code before the fix, every GET for the
// next 60 s had the first report's generated_at.
func TestServeRefreshDuringAComputationIsFinal(t *testing.T) {
	backends := map[string]func(t *testing.T) string{
		"in_memory": func(*testing.T) string { return "[cache]\nenabled = true\nbackend = \"in_memory\"\n" },
		"redis": func(t *testing.T) string {
			srv := redistest.Start(t)
			return fmt.Sprintf("[cache]\nenabled = true\nbackend = \"redis\"\nredis_url = \"redis://%s/0\"\n", srv.Addr)
		},
	}
	for name, config := range backends {
		t.Run("backend="+name, func(t *testing.T) {
			url, _, logs := startServe(t, config(t), "1s")
			report := func() string {
				resp, err := http.Get(url + "/report")
				if err != nil {
					t.Error(err)
					return ""
				}
				defer resp.Body.Close()
				var r struct {
					GeneratedAt string `json:"generated_at"`
				}
				if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
					t.Error(err)
				}
				return r.GeneratedAt
			}
			first := make(chan string, 1)
			go func() { first <- report() }()
			time.Sleep(300 * time.Millisecond) // the first computation is running
			resp, err := http.Post(url+"/report/refresh", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("POST /report/refresh = %s\n%s", resp.Status, logs.String())
			}
			after := report()
			old := <-first
			if old == "" || after == "" || after == old {
				t.Fatalf("GET /report after the refresh = generated_at %q, the report whose computation began before it (%q)", after, old)
			}
			// And the stale report was not stored behind the new one.
			time.Sleep(100 * time.Millisecond)
			if again := report(); again != after {
				t.Fatalf("GET /report later = %q, want the report computed after the refresh (%q)", again, after)
			}
		})
	}
}

func TestServeBadConfig(t *testing.T) {
	cfgPath := testutil.WriteConfig(t, "[cache]\nenabled = true\nbackend = \"memcache\"\n")
	r := run(t, "serve", "--config", cfgPath, "--addr", testutil.UnusedAddr(t))
	expect(t, r, 2, "", cfgPath+`:3: cache.backend: unknown backend "memcache" (registered: in_memory, redis)`)
	if strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Errorf("a config error should be one line, got:\n%s", r.stderr)
	}
}

// TestServeStaleWhileFailing is the fail-safe demo of issue 9, run as a user
// would: `ushka serve --ttl 1s` with stale_ttl and refresh_ahead in its
// ushka.toml. After a first good report, POST /report/fail?for=2s makes the
// computation fail; once the report is past its TTL, GET /report answers
// 200 STALE with the first report, until the failure is over and a new
// report is computed.
func TestServeStaleWhileFailing(t *testing.T) {
	const policy = "stale_ttl = \"1h\"\nrefresh_ahead = 0.8\nfail_safe_throttle = \"200ms\"\n"
	backends := map[string]func(t *testing.T) string{
		"in_memory": func(*testing.T) string {
			return "[cache]\nenabled = true\nbackend = \"in_memory\"\n" + policy
		},
		"redis": func(t *testing.T) string {
			srv := redistest.Start(t)
			return fmt.Sprintf("[cache]\nenabled = true\nbackend = \"redis\"\nredis_url = \"redis://%s/0\"\n", srv.Addr) + policy
		},
	}
	for name, config := range backends {
		t.Run("backend="+name, func(t *testing.T) {
			url, _, logs := startServe(t, config(t), "100ms", "--ttl", "1s")
			type reply struct {
				status      int
				xcache      string
				generatedAt string
			}
			report := func() reply {
				t.Helper()
				resp, err := http.Get(url + "/report")
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var r struct {
					GeneratedAt string `json:"generated_at"`
				}
				_ = json.NewDecoder(resp.Body).Decode(&r)
				return reply{resp.StatusCode, resp.Header.Get("X-Cache"), r.GeneratedAt}
			}
			fail := func(query string) int {
				t.Helper()
				resp, err := http.Post(url+"/report/fail"+query, "", nil)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}

			first := report()
			if first.status != 200 || first.xcache != "MISS" || first.generatedAt == "" {
				t.Fatalf("first GET /report = %+v, want 200 MISS\n%s", first, logs.String())
			}
			stored := time.Now()
			if got := fail("?for=2h"); got != http.StatusBadRequest {
				t.Fatalf("POST /report/fail?for=2h = %d, want 400", got)
			}
			if got := fail("?for=2s"); got != http.StatusOK {
				t.Fatalf("POST /report/fail?for=2s = %d, want 200", got)
			}
			failUntil := time.Now().Add(2 * time.Second)
			time.Sleep(time.Until(stored.Add(1100 * time.Millisecond))) // past the 1s TTL; nothing signals it
			for i := range 3 {
				if got := report(); got.status != 200 || got.xcache != "STALE" || got.generatedAt != first.generatedAt {
					t.Fatalf("GET /report %d while the computation fails, past the TTL = %+v, want 200 STALE with generated_at %s\n%s",
						i, got, first.generatedAt, logs.String())
				}
			}
			// Until the failure is over, every answer is the first report;
			// then a new one is computed.
			deadline := failUntil.Add(3 * time.Second)
			for {
				got := report()
				if got.status == 200 && got.xcache == "MISS" && got.generatedAt != first.generatedAt {
					if time.Now().Before(failUntil) {
						t.Fatalf("a new report was computed while the computation fails: %+v", got)
					}
					break
				}
				if got.status != 200 || got.xcache != "STALE" || got.generatedAt != first.generatedAt {
					t.Fatalf("GET /report = %+v, want 200 STALE with the first report or a new MISS\n%s", got, logs.String())
				}
				if time.Now().After(deadline) {
					t.Fatalf("no new report %v after the failure ended\n%s", time.Since(failUntil), logs.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// Without stale_ttl, a failing computation with nothing cached is a 503
// with a JSON error, never a 500.
func TestServeFailingWithoutStaleIs503(t *testing.T) {
	url, _, logs := startServe(t, "[cache]\nenabled = true\nbackend = \"in_memory\"\n", "10ms", "--ttl", "1h")
	resp, err := http.Post(url+"/report/fail?for=1m", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = http.Get(url + "/report")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Error string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 503 || !strings.Contains(body.Error, "database is down") {
		t.Fatalf("GET /report while failing = %d %+v (%v), want 503 with a JSON error\n%s", resp.StatusCode, body, err, logs.String())
	}
}

// An entry GetOrSet stored with a header (issue 9's layout) is printed by
// `ushka cache get` as its value alone, and one of an unknown layout version
// is a miss, not garbage.
func TestCacheGetOfEntriesWithAHeader(t *testing.T) {
	srv := redistest.Start(t)
	url := "redis://" + srv.Addr + "/0"
	cfgPath := testutil.WriteConfig(t, fmt.Sprintf("[cache]\nenabled = true\nbackend = \"redis\"\nredis_url = %q\n", url))
	c, err := cache.Open(t.Context(), cache.Config{Enabled: true, Backend: "redis", RedisURL: cache.SecretURL(url)}, cache.WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	type report struct {
		GeneratedAt string `json:"generated_at"`
	}
	if _, err := cache.GetOrSet(t.Context(), c, "report", time.Hour, func(context.Context) (report, error) {
		return report{"today"}, nil
	}, cache.StaleFor(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// GetOrSet stores its value after returning it: until then the key
	// holds the load's lock, a placeholder, which reads as missing.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, found, _ := cache.Get[report](t.Context(), c, "report"); found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("GetOrSet's value not stored 5s after it returned")
		}
	}
	if raw := srv.Do("GET", "ushka:report"); !strings.HasPrefix(raw, cache.EntryMagic+"1 ") {
		t.Fatalf("GetOrSet with StaleFor stored %q, want an entry with a header", raw)
	}
	expect(t, run(t, "cache", "get", "--config", cfgPath, "report"), 0, `{"generated_at":"today"}`+"\n", "")

	srv.Do("SET", "ushka:future", cache.EntryMagic+"2 0 0 - - 0\n{}")
	expect(t, run(t, "cache", "get", "--config", cfgPath, "future"), 1, "", `"future" not found`)
}

// TestCacheClearOnACluster: clear --dry-run counts the keys under the
// prefix on each master and deletes none; clear deletes them, master by
// master, saying how many on each, and leaves other keys alone.
func TestCacheClearOnACluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	a := cl.Addrs()
	url := "redis://" + a[0] + "?addr=" + a[1] + "&addr=" + a[2]
	// A 2s timeout: a new process dials each master within its first
	// Ping, which 250ms did not always cover on a busy machine.
	cfgPath := testutil.WriteConfig(t, fmt.Sprintf("[cache]\nenabled = true\nbackend = \"redis\"\nredis_url = %q\ntimeout = \"2s\"\n", url))
	c, err := cache.Open(t.Context(), cache.Config{Enabled: true, Backend: "redis", RedisURL: cache.SecretURL(url)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 60 {
		if err := c.Set(t.Context(), fmt.Sprint("k", i), "v", 0); err != nil {
			t.Fatal(err)
		}
	}
	r := run(t, "cache", "clear", "--dry-run", "--config", cfgPath)
	expect(t, r, 0, `would delete 60 keys under "ushka:" (`, "")
	for _, addr := range a {
		if !strings.Contains(r.stdout, addr+": ") {
			t.Fatalf("clear --dry-run on a Cluster = %q, want a count for master %s", r.stdout, addr)
		}
	}
	if v, found, err := cache.Get[string](t.Context(), c, "k7"); err != nil || !found || v != "v" {
		t.Fatalf("k7 after clear --dry-run = (%q, %v, %v), want it still there", v, found, err)
	}
	r = run(t, "cache", "clear", "--yes", "--config", cfgPath)
	expect(t, r, 0, `cleared 60 keys under "ushka:" (`, "")
	for i := range 60 {
		if _, found, err := cache.Get[string](t.Context(), c, fmt.Sprint("k", i)); err != nil || found {
			t.Fatalf("k%d after clear = (%v, %v), want it gone", i, found, err)
		}
	}
}

// reportsThenMetrics asks a running `ushka serve` at url for the report
// three times (one load, two hits), then for GET /metrics, and returns the
// scrape, failing t unless it is 200 in the Prometheus text format.
func reportsThenMetrics(t *testing.T, url string) string {
	t.Helper()
	for range 3 {
		resp, err := http.Get(url + "/report")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return string(body)
}

// TestServeMetrics scrapes GET /metrics of a running `ushka serve`: the
// cache's OpenTelemetry metrics in the Prometheus text format, moving with
// the requests, with the backend as a label.
func TestServeMetrics(t *testing.T) {
	url, _, _ := startServe(t, "[cache]\nenabled = true\n", "1ms")
	text := reportsThenMetrics(t, url)
	for _, want := range []string{
		`cache_hits_total{cache_backend="in_memory"`,
		`cache_misses_total{cache_backend="in_memory"`,
		`cache_loads_total{cache_backend="in_memory"`,
		`cache_load_duration_seconds_bucket{cache_backend="in_memory"`,
	} {
		if !strings.Contains(text, want) {
			t.Fatalf("GET /metrics lacks %s:\n%s", want, text)
		}
	}
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, "cache_hits_total{") && !strings.HasSuffix(strings.TrimSpace(line), " 2") {
			t.Fatalf("after 3 requests (1 load, 2 hits): %s", line)
		}
	}
}
