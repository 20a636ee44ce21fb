package redis_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/cache/cachetest"
	"github.com/ushka-go/ushka/cache/redis"
	"github.com/ushka-go/ushka/internal/redistest"
	"github.com/ushka-go/ushka/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// rueidis's cluster client delays a slot-map refresh by up to a
		// second on a sleeping goroutine that Close does not wake; it ends
		// by itself when the delay is over.
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*call).DelayDo.func1"),
		// A slot-map refresh that finds connections it no longer needs
		// closes them 5s later, on a goroutine that ends by itself; a
		// freshly made Cluster's first refreshes do.
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*clusterClient)._refresh.func2"))
}

var prefixes atomic.Int64

// uniquePrefix keeps parallel subtests on one server apart.
func uniquePrefix(t *testing.T) string {
	return fmt.Sprintf("t%d:%s:", prefixes.Add(1), strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
}

func openStore(t *testing.T, cfg cache.Config) *redis.Store {
	t.Helper()
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second // -race on a 2-core machine is slow; production keeps 250ms
	}
	s, err := redis.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openCache(t *testing.T, cfg cache.Config, opts ...cache.Option) *cache.Cache {
	t.Helper()
	cfg.Enabled, cfg.Backend = true, "redis"
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	c, err := cache.Open(t.Context(), cfg, append([]cache.Option{cache.WithLogger(nil)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func conformance(t *testing.T, url string) {
	newStore := func(t *testing.T) cache.Store {
		return openStore(t, cache.Config{RedisURL: cache.SecretURL(url), KeyPrefix: uniquePrefix(t)})
	}
	cachetest.TestStore(t, newStore)
	cachetest.TestOutage(t, newStore)
}

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	conformance(t, "redis://"+srv.Addr+"/0")
}

func TestConformanceUnixSocket(t *testing.T) {
	srv := redistest.Start(t)
	conformance(t, "unix://"+srv.Socket+"?db=1")
}

func TestConformanceCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	a := cl.Addrs()
	conformance(t, "redis://"+a[0]+"?addr="+a[1]+"&addr="+a[2])
}

func TestConformanceTLS(t *testing.T) {
	files := redistest.NewTLSFiles(t)
	srv := redistest.Start(t, redistest.Options{TLS: files})
	cachetest.TestStore(t, func(t *testing.T) cache.Store {
		return openStore(t, cache.Config{
			RedisURL:  cache.SecretURL("rediss://" + srv.Addr + "/0"),
			TLSCAFile: files.CA,
			KeyPrefix: uniquePrefix(t),
		})
	})
}

func TestTLSWithoutTheCAFails(t *testing.T) {
	files := redistest.NewTLSFiles(t)
	srv := redistest.Start(t, redistest.Options{TLS: files})
	s := openStore(t, cache.Config{RedisURL: cache.SecretURL("rediss://" + srv.Addr)})
	_, _, err := s.Get(t.Context(), "k")
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Get over TLS with an untrusted certificate = %v, want a certificate error", err)
	}
}

func clearKeepsForeignKeys(t *testing.T, url string, do func(args ...string) string) {
	ctx := t.Context()
	for _, prefix := range []string{"ushka:", "app*[1]?:", `we\ird^-:`} {
		t.Run(prefix, func(t *testing.T) {
			foreign := []string{
				"ushka", "ushkax:1", "other:1", strings.TrimSuffix(prefix, ":"),
				// would match the prefix if its glob characters were not escaped
				"appX[1]Y:k", "app*1?:k", "appXYZ1Q:k", `weird^-:k`,
			}
			for _, k := range foreign {
				if strings.HasPrefix(k, prefix) {
					continue
				}
				if got := do("SET", k, "theirs"); got != "OK" {
					t.Fatalf("SET %s = %s", k, got)
				}
			}
			c := openCache(t, cache.Config{RedisURL: cache.SecretURL(url), KeyPrefix: prefix})
			for i := range 300 {
				if err := c.Set(ctx, fmt.Sprintf("k%d", i), i, 0); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.Clear(ctx); err != nil {
				t.Fatalf("Clear = %v", err)
			}
			for i := range 300 {
				if _, found, _ := cache.Get[int](ctx, c, fmt.Sprintf("k%d", i)); found {
					t.Fatalf("k%d survived Clear", i)
				}
			}
			for _, k := range foreign {
				if strings.HasPrefix(k, prefix) {
					continue
				}
				if got := do("GET", k); got != "theirs" {
					t.Errorf("foreign key %q = %q after Clear with prefix %q, want it untouched", k, got, prefix)
				}
			}
		})
	}
}

func TestClearKeepsForeignKeys(t *testing.T) {
	srv := redistest.Start(t)
	clearKeepsForeignKeys(t, "redis://"+srv.Addr, srv.Do)
}

func TestClearKeepsForeignKeysCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	// Foreign keys go through redis-cli -c, which follows MOVED redirects.
	do := func(args ...string) string {
		for _, n := range cl.Nodes {
			r := n.Do(args...)
			if !strings.HasPrefix(r, "-MOVED") {
				return r
			}
		}
		t.Fatalf("no node accepted %v", args)
		return ""
	}
	a := cl.Addrs()
	clearKeepsForeignKeys(t, "redis://"+a[0]+"?addr="+a[1], do)
}

func TestTwoCachesShareOneRedis(t *testing.T) {
	srv := redistest.Start(t)
	cfg := cache.Config{RedisURL: cache.SecretURL("redis://" + srv.Addr)}
	a, b := openCache(t, cfg), openCache(t, cfg)
	ctx := t.Context()
	if err := a.Set(ctx, "shared", map[string]int{"n": 1}, time.Minute); err != nil {
		t.Fatal(err)
	}
	got, found, err := cache.Get[map[string]int](ctx, b, "shared")
	if err != nil || !found || got["n"] != 1 {
		t.Fatalf("second cache Get = (%v, %v, %v), want the first cache's write", got, found, err)
	}
	if err := b.Delete(ctx, "shared"); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := cache.Get[map[string]int](ctx, a, "shared"); found {
		t.Fatal("first cache still sees a key the second deleted")
	}
}

func TestDefaultCodecLeavesReadableJSON(t *testing.T) {
	srv := redistest.Start(t)
	c := openCache(t, cache.Config{RedisURL: cache.SecretURL("redis://" + srv.Addr)})
	type user struct {
		Name string `json:"name"`
	}
	if err := c.Set(t.Context(), "user:1", user{"Ada"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := srv.Do("GET", "ushka:user:1"); got != `{"name":"Ada"}` {
		t.Fatalf("GET ushka:user:1 = %q, want readable JSON under the default prefix", got)
	}
	ttl := srv.Do("PTTL", "ushka:user:1")
	if ttl == "-1" || ttl == "-2" {
		t.Fatalf("PTTL = %s, want a TTL of about 60000ms", ttl)
	}
}

func TestDatabaseNumber(t *testing.T) {
	srv := redistest.Start(t)
	c := openCache(t, cache.Config{RedisURL: cache.SecretURL("redis://" + srv.Addr + "/5")})
	if err := c.Set(t.Context(), "k", "in five", 0); err != nil {
		t.Fatal(err)
	}
	if got := srv.DoDB(5, "GET", "ushka:k"); got != "in five" {
		t.Fatalf("GET in db 5 = %q", got)
	}
	if got := srv.DoDB(0, "GET", "ushka:k"); got != "(nil)" {
		t.Fatalf("GET in db 0 = %q, want nothing there", got)
	}
}

func TestPasswords(t *testing.T) {
	const secret = "c0rrect-h0rse"
	srv := redistest.Start(t, redistest.Options{Args: []string{"--requirepass", secret}})
	ctx := t.Context()

	good := openCache(t, cache.Config{RedisURL: cache.SecretURL("redis://:" + secret + "@" + srv.Addr)})
	if err := good.Set(ctx, "k", "v", 0); err != nil {
		t.Fatalf("Set with the right password = %v", err)
	}

	const wrong = "wr0ng-pa55w0rd"
	var logs testutil.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	url := cache.SecretURL("redis://default:" + wrong + "@" + srv.Addr)
	bad := openCache(t, cache.Config{RedisURL: url}, cache.WithLogger(logger))
	var s string
	_, getErr := bad.Get(ctx, "k", &s)
	if getErr == nil {
		t.Fatal("Get with a wrong password = nil error")
	}
	if !strings.Contains(getErr.Error(), "WRONGPASS") && !strings.Contains(getErr.Error(), "invalid") {
		t.Errorf("error %q does not say the password is wrong", getErr)
	}
	v, err := cache.GetOrSet(ctx, bad, "k", 0, func(context.Context) (string, error) { return "loaded", nil })
	if err != nil || v != "loaded" {
		t.Errorf("GetOrSet with a wrong password = (%q, %v), want load's value", v, err)
	}
	logged := logs.String()
	for _, text := range []string{getErr.Error(), logged, url.String(), fmt.Sprint(url)} {
		if strings.Contains(text, wrong) || strings.Contains(text, secret) {
			t.Errorf("a password leaked: %s", text)
		}
	}
	if !strings.Contains(logged, "cache read failed") {
		t.Errorf("GetOrSet did not log the failed read: %q", logged)
	}
}

func TestOpenDoesNotNeedRedisUp(t *testing.T) {
	redistest.Require(t)
	addr := testutil.UnusedAddr(t) // nothing listens there
	c := openCache(t, cache.Config{RedisURL: cache.SecretURL("redis://:pw@" + addr), Timeout: 250 * time.Millisecond})
	ctx := t.Context()
	start := time.Now()
	var s string
	_, err := c.Get(ctx, "k", &s)
	if err == nil {
		t.Fatal("Get with Redis down = nil error")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Get with Redis down took %v", d)
	}
	if !strings.Contains(err.Error(), addr) || strings.Contains(err.Error(), ":pw@") {
		t.Errorf("error %q should name the server and hide the password", err)
	}
	if err := c.Ping(ctx); err == nil {
		t.Error("Ping with Redis down = nil")
	}
	if err := c.Delete(ctx, "k"); err == nil {
		t.Error("Delete with Redis down = nil: a lost invalidation must be reported")
	}
	if err := c.Clear(ctx); err == nil {
		t.Error("Clear with Redis down = nil")
	}
}

func TestOpenRejectsBadURL(t *testing.T) {
	_, err := cache.Open(t.Context(), cache.Config{Enabled: true, Backend: "redis", RedisURL: "redis://:s3cret@host:port"})
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "redis_url") {
		t.Fatalf("Open with a malformed URL = %v, want a redis_url error without the password", err)
	}
	_, err = cache.Open(t.Context(), cache.Config{Enabled: true, Backend: "redis"})
	if err == nil || !strings.Contains(err.Error(), "redis_url") {
		t.Fatalf("Open without a URL = %v", err)
	}
	_, err = redis.Open(t.Context(), cache.Config{RedisURL: "redis://h", Timeout: -time.Second})
	if err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("Open with a negative timeout = %v", err)
	}
	_, err = redis.Open(t.Context(), cache.Config{RedisURL: "redis://h", TLSCAFile: "/nonexistent/ca.pem"})
	if err == nil || !strings.Contains(err.Error(), "tls_ca_file") {
		t.Fatalf("Open with a CA file on a redis:// URL = %v", err)
	}
	_, err = redis.Open(t.Context(), cache.Config{RedisURL: "rediss://h", TLSCAFile: "/nonexistent/ca.pem"})
	if err == nil || !strings.Contains(err.Error(), "tls_ca_file") {
		t.Fatalf("Open with a missing CA file = %v", err)
	}
}

// A Redis that accepts connections and never answers must not stall a
// request beyond the timeout.
func TestTimeoutBoundsEveryCall(t *testing.T) {
	srv := redistest.Start(t)
	// Every call waits out the timeout here, one after another: the breaker,
	// which would refuse them at once after a few, is kept shut
	// (TestBreaker* show it), and the reads are of a key whose write did not
	// fail (a key whose Delete failed reads as missing until it is replayed).
	c := openCache(t, cache.Config{RedisURL: cache.SecretURL("redis://" + srv.Addr), Timeout: 200 * time.Millisecond, BreakerFailures: 1 << 30, BreakerHangAfter: time.Hour})
	ctx := t.Context()
	if err := c.Set(ctx, "k", "v", 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "g", "v", 0); err != nil {
		t.Fatal(err)
	}
	srv.Pause()
	defer srv.Resume()
	bg := context.Background() // the shared-deadline path; t.Context() is cancelable
	for name, call := range map[string]func() error{
		"Get":               func() error { var s string; _, err := c.Get(ctx, "g", &s); return err },
		"Set":               func() error { return c.Set(ctx, "k", "v", 0) },
		"Delete":            func() error { return c.Delete(ctx, "k") },
		"Get (Background)":  func() error { var s string; _, err := c.Get(bg, "g", &s); return err },
		"Set (Background)":  func() error { return c.Set(bg, "k", "v", 0) },
		"Ping (Background)": func() error { return c.Ping(bg) },
	} {
		start := time.Now()
		err := call()
		d := time.Since(start)
		if err == nil || !strings.Contains(err.Error(), "timed out") {
			t.Errorf("%s on a stalled Redis = %v, want a timeout", name, err)
		}
		if d > time.Second {
			t.Errorf("%s on a stalled Redis took %v with a 200ms timeout", name, d)
		}
	}
	v, err := cache.GetOrSet(ctx, c, "k2", 0, func(context.Context) (string, error) { return "fresh", nil })
	if err != nil || v != "fresh" {
		t.Fatalf("GetOrSet on a stalled Redis = (%q, %v), want load's value", v, err)
	}
}

// Redis killed under load and started again: GetOrSet keeps serving, the
// failures are counted, and the same Cache works again afterwards.
func TestRedisKilledAndRestarted(t *testing.T) {
	srv := redistest.Start(t)
	c := openCache(t, cache.Config{RedisURL: cache.SecretURL("redis://" + srv.Addr), Timeout: 500 * time.Millisecond})
	ctx := t.Context()
	load := func(context.Context) (int, error) { return 42, nil }

	stop := make(chan struct{})
	var served, failed atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				v, err := cache.GetOrSet(ctx, c, fmt.Sprintf("k%d", (w+i)%20), time.Minute, load)
				if err != nil || v != 42 {
					failed.Add(1)
				} else {
					served.Add(1)
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	srv.Stop()
	failures := func() uint64 { st := c.Stats(); return st.Errors + st.Refused }
	errorsBefore := failures()
	time.Sleep(500 * time.Millisecond)
	downServed := served.Load()
	time.Sleep(500 * time.Millisecond)
	if served.Load() == downServed {
		t.Error("GetOrSet served nothing while Redis was down")
	}
	if failures() == errorsBefore {
		t.Error("no errors or refused calls counted while Redis was down")
	}
	srv.Restart()
	// Recovery: within a few seconds, writes and reads work again.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Set(ctx, "after", "ok", 0)
		if err == nil {
			if v, found, err := cache.Get[string](ctx, c, "after"); err == nil && found && v == "ok" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("cache did not recover within 10s after Redis restarted: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Errorf("GetOrSet returned %d errors while load succeeded, want none", n)
	}
}

func TestClosedStore(t *testing.T) {
	srv := redistest.Start(t)
	s := openStore(t, cache.Config{RedisURL: cache.SecretURL("redis://" + srv.Addr)})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); !errors.Is(err, cache.ErrClosed) {
		t.Fatalf("Ping after Close = %v, want ErrClosed", err)
	}
}

func TestClusterWithANodeAdded(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	a := cl.Addrs()
	c := openCache(t, cache.Config{RedisURL: cache.SecretURL("redis://" + a[0] + "?addr=" + a[1])})
	ctx := t.Context()
	const n = 500
	for i := range n {
		if err := c.Set(ctx, fmt.Sprintf("k%d", i), i, 0); err != nil {
			t.Fatal(err)
		}
	}
	cl.AddNode()
	// Slots moved to the new node; every key is still readable, new writes
	// land, and Clear finds keys on the new node too.
	for i := range n {
		var v int
		var found bool
		var err error
		for range 50 { // the client learns the new slot map on the first MOVED
			if found, err = c.Get(ctx, fmt.Sprintf("k%d", i), &v); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil || !found || v != i {
			t.Fatalf("after adding a node, Get(k%d) = (%v, %v, %v)", i, v, found, err)
		}
	}
	if keys := cl.Nodes[3].Do("DBSIZE"); keys == "0" {
		t.Fatal("rebalance moved no keys to the new node")
	}
	if err := c.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	for _, node := range cl.Nodes {
		if keys := node.Do("DBSIZE"); keys != "0" {
			t.Fatalf("node %s holds %s keys after Clear", node.Addr, keys)
		}
	}
}

func TestConformanceSentinel(t *testing.T) {
	master := redistest.Start(t)
	sentinel := redistest.StartSentinel(t, master, "mymaster")
	conformance(t, "redis://"+sentinel.Addr+"?master_set=mymaster")
	// The data went to the master the Sentinel named.
	c := openCache(t, cache.Config{RedisURL: cache.SecretURL("redis://" + sentinel.Addr + "?master_set=mymaster")})
	if err := c.Set(t.Context(), "via-sentinel", "yes", 0); err != nil {
		t.Fatal(err)
	}
	if got := master.Do("GET", "ushka:via-sentinel"); got != "yes" {
		t.Fatalf("GET on the master = %q", got)
	}
}

// TestClearWithReportsProgressAndDryRun: ClearWith's dry run counts the
// keys under the prefix on each master and deletes none (the near cache
// keeps its entries); a Clear reports each batch of each master as it goes,
// with counts that only grow, ending with every key found and unlinked;
// keys under another prefix are neither counted nor touched.
func TestClearWithReportsProgressAndDryRun(t *testing.T) {
	for _, tc := range []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"server", func(t *testing.T) string { return "redis://" + redistest.Start(t).Addr }},
		{"cluster", func(t *testing.T) string { return clusterURL(redistest.StartCluster(t, 3)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := tc.url(t)
			ctx := t.Context()
			s := openStore(t, nearConfig(url, "mine:"))
			other := openStore(t, cache.Config{RedisURL: cache.SecretURL(url), KeyPrefix: "theirs:"})
			const n = 2500 // more than one SCAN batch
			for i := range n {
				if err := s.Set(ctx, fmt.Sprint("k", i), []byte("v"), 0); err != nil {
					t.Fatal(err)
				}
			}
			if err := other.Set(ctx, "k0", []byte("theirs"), 0); err != nil {
				t.Fatal(err)
			}
			getNear(t, s, "k1")
			getNear(t, s, "k1")
			report, err := s.ClearWith(ctx, redis.ClearOptions{DryRun: true})
			if err != nil {
				t.Fatal(err)
			}
			found, unlinked := 0, 0
			for _, p := range report {
				found, unlinked = found+p.Found, unlinked+p.Unlinked
			}
			if found != n || unlinked != 0 {
				t.Fatalf("dry run = %+v: found %d, unlinked %d; want %d found, none unlinked", report, found, unlinked, n)
			}
			if _, _, near := getNear(t, s, "k1"); !near {
				t.Fatal("a dry run emptied the near cache")
			}
			last := map[string]redis.ClearProgress{}
			calls := 0
			report, err = s.ClearWith(ctx, redis.ClearOptions{Progress: func(p redis.ClearProgress) {
				calls++
				if prev := last[p.Node]; prev.Done || p.Found < prev.Found || p.Unlinked < prev.Unlinked || p.Unlinked > p.Found {
					t.Errorf("progress of %s went from %+v to %+v", p.Node, prev, p)
				}
				last[p.Node] = p
			}})
			if err != nil {
				t.Fatal(err)
			}
			found, unlinked = 0, 0
			for _, p := range report {
				found, unlinked = found+p.Found, unlinked+p.Unlinked
				if !last[p.Node].Done {
					t.Errorf("master %s's progress never said done", p.Node)
				}
			}
			if found != n || unlinked != n || calls <= len(report) {
				t.Fatalf("clear = %+v after %d progress calls: found %d, unlinked %d; want %d each, reported batch by batch", report, calls, found, unlinked, n)
			}
			if _, ok, _ := s.Get(ctx, "k7"); ok {
				t.Fatal("k7 still there after the clear")
			}
			if v, ok, _ := other.Get(ctx, "k0"); !ok || string(v) != "theirs" {
				t.Fatal("the clear touched another prefix's key")
			}
		})
	}
}
