package redis_test

import (
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/cache/redis"
	"github.com/ushka-go/ushka/internal/redistest"
	"github.com/ushka-go/ushka/internal/testutil"
)

// clusterURL is the redis_url of a Cluster seeded with every node.
func clusterURL(cl *redistest.Cluster) string {
	a := cl.Addrs()
	return "redis://" + a[0] + "?addr=" + strings.Join(a[1:], "&addr=")
}

// sumDBSIZE adds up the DBSIZE of servers.
func sumDBSIZE(t *testing.T, servers []*redistest.Server) int {
	t.Helper()
	total := 0
	for _, s := range servers {
		n, err := strconv.Atoi(s.Do("DBSIZE"))
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	return total
}

// Regression (issue 8, item 5): Clear and Info went to every node the
// client knew, replicas included, so a replica that was down made Clear
// fail (and stop before the masters after it), and Info counted each key
// once per copy.
func TestClusterClearAndInfoUseMastersOnly(t *testing.T) {
	cl := redistest.StartClusterWithReplicas(t, 3, 1)
	s := openStore(t, cache.Config{RedisURL: cache.SecretURL(clusterURL(cl))})
	ctx := t.Context()
	const n = 300
	for i := range n {
		if err := s.Set(ctx, fmt.Sprintf("k%d", i), []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
	}
	// Replication is asynchronous: wait until every replica holds its copy,
	// so that counting copies would show.
	deadline := time.Now().Add(10 * time.Second)
	for sumDBSIZE(t, cl.Replicas()) != n {
		if time.Now().After(deadline) {
			t.Fatalf("replicas hold %d keys after 10s, want %d", sumDBSIZE(t, cl.Replicas()), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Keys != n || info.Nodes != 3 {
		t.Errorf("Info with every replica up = %d keys on %d nodes, want %d keys on the 3 masters", info.Keys, info.Nodes, n)
	}

	cl.Replicas()[0].Stop()
	info, err = s.Info(ctx)
	if err != nil || info.Keys != n {
		t.Errorf("Info with a replica down = (%d keys, %v), want %d keys", info.Keys, err, n)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping with a replica down and every master up = %v", err)
	}
	start := time.Now()
	err = s.Clear(ctx)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Clear with a replica down took %v", d)
	}
	if err != nil {
		t.Fatalf("Clear with a replica down and every master up = %v", err)
	}
	if left := sumDBSIZE(t, cl.Masters()); left != 0 {
		t.Fatalf("the masters hold %d keys after Clear, want 0", left)
	}
}

// Regression (issue 8, item 6): a key prefix that is not UTF-8 was turned
// into U+FFFD in the SCAN pattern, so Clear deleted another application's
// keys under "\xef\xbf\xbd:" and left its own.
func TestClearWithANonUTF8Prefix(t *testing.T) {
	srv := redistest.Start(t)
	foreign := []string{"\xef\xbf\xbd:x", "\xef\xbf\xbd:y", "\xfe:x", "\xff", "other:1"}
	for _, k := range foreign {
		if got := srv.Do("SET", k, "theirs"); got != "OK" {
			t.Fatalf("SET %q = %s", k, got)
		}
	}
	s := openStore(t, cache.Config{RedisURL: cache.SecretURL("redis://" + srv.Addr), KeyPrefix: "\xff:"})
	ctx := t.Context()
	for i := range 10 {
		if err := s.Set(ctx, fmt.Sprintf("k%d", i), []byte("mine"), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if got := srv.Do("EXISTS", fmt.Sprintf("\xff:k%d", i)); got != "0" {
			t.Errorf("key %q survived Clear", fmt.Sprintf("\xff:k%d", i))
		}
	}
	for _, k := range foreign {
		if got := srv.Do("GET", k); got != "theirs" {
			t.Errorf("foreign key %q = %q after Clear with prefix \"\\xff:\", want it untouched", k, got)
		}
	}
}

// Regression (issue 8, item 8): Close waited for the background connect,
// that is for the dial timeout (5s by default), when the server accepted
// the connection and never answered; so did an application's shutdown.
func TestCloseDoesNotWaitForASilentServer(t *testing.T) {
	redistest.Require(t)
	a, b := testutil.SilentListener(t), testutil.SilentListener(t)
	for _, tc := range []struct{ name, url string }{
		{"standalone", "redis://" + a},
		{"cluster", "redis://" + a + "?addr=" + b},
		{"tls", "rediss://" + a},
		{"sentinel", "redis://" + a + "?master_set=mymaster"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent(),
				// As in TestMain: rueidis's delayed slot-map refresh ends by itself.
				goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*call).DelayDo.func1"))
			s, err := redis.Open(t.Context(), cache.Config{RedisURL: cache.SecretURL(tc.url), Timeout: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Ping(t.Context()) // the handshake is under way and unanswered
			if err == nil || !strings.Contains(err.Error(), "not answered") {
				t.Fatalf("Ping on a silent server = %v, want it to say the server has not answered", err)
			}
			start := time.Now()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > 200*time.Millisecond {
				t.Errorf("Close took %v with a handshake under way, want at once", d)
			}
			if err := s.Ping(t.Context()); !errors.Is(err, cache.ErrClosed) {
				t.Errorf("Ping after Close = %v, want ErrClosed", err)
			}
		})
	}
}

// Regression (issue 8, item 14): Ping said a read-only replica was healthy
// while every write to it failed.
func TestPingFailsOnAServerThatCannotTakeWrites(t *testing.T) {
	master := redistest.Start(t)
	host, port, _ := net.SplitHostPort(master.Addr)
	replica := redistest.Start(t, redistest.Options{Args: []string{"--replicaof", host, port}})
	sentinel := redistest.StartSentinel(t, master, "mymaster")
	limited := redistest.Start(t)
	// An ACL user that may not run ROLE: Ping falls back to PING.
	if got := limited.Do("ACL", "SETUSER", "app", "on", ">pw", "~*", "+get", "+set", "+ping"); got != "OK" {
		t.Fatalf("ACL SETUSER = %s", got)
	}
	for _, tc := range []struct {
		name, url string
		refused   string // "" when Ping must succeed
	}{
		{"master", "redis://" + master.Addr, ""},
		{"replica", "redis://" + replica.Addr, "read-only replica of " + master.Addr},
		{"sentinel master", "redis://" + sentinel.Addr + "?master_set=mymaster", ""},
		{"a sentinel without master_set", "redis://" + sentinel.Addr, "a Sentinel"},
		{"user without ROLE", "redis://app:pw@" + limited.Addr, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, cache.Config{RedisURL: cache.SecretURL(tc.url)})
			err := s.Ping(t.Context())
			if tc.refused == "" {
				if err != nil {
					t.Fatalf("Ping = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, cache.ErrRefused) || !strings.Contains(err.Error(), tc.refused) {
				t.Fatalf("Ping = %v, want an error matching ErrRefused that says %q", err, tc.refused)
			}
		})
	}
}

// Regression (issue 8, item 11): SET PX overflowed for a ttl near
// math.MaxInt64, and Redis refused every such Set. The ttl is kept: about
// 292 years.
func TestSetWithTheLongestTTL(t *testing.T) {
	srv := redistest.Start(t)
	s := openStore(t, cache.Config{RedisURL: cache.SecretURL("redis://" + srv.Addr)})
	if err := s.Set(t.Context(), "k", []byte("v"), math.MaxInt64); err != nil {
		t.Fatalf("Set with ttl math.MaxInt64 = %v", err)
	}
	pttl, err := strconv.ParseInt(srv.Do("PTTL", "ushka:k"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(math.MaxInt64/time.Millisecond) - 60_000; pttl < want {
		t.Fatalf("PTTL = %d ms, want at least %d (the ttl rounded to ms, less a minute)", pttl, want)
	}
	if v, found, err := s.Get(t.Context(), "k"); err != nil || !found || string(v) != "v" {
		t.Fatalf("Get = (%q, %v, %v)", v, found, err)
	}
}

// Item 12's part in the store: an error reply of Redis matches
// cache.ErrRefused and keeps its words; an outage does not match.
func TestErrorRepliesMatchErrRefused(t *testing.T) {
	srv := redistest.Start(t)
	if got := srv.Do("RPUSH", "ushka:list", "x"); got != "1" {
		t.Fatalf("RPUSH = %s", got)
	}
	if got := srv.Do("ACL", "SETUSER", "reader", "on", ">r3ader", "~*", "+get"); got != "OK" {
		t.Fatalf("ACL SETUSER = %s", got)
	}
	full := redistest.Start(t, redistest.Options{Args: []string{"--maxmemory", "1mb", "--maxmemory-policy", "noeviction"}})
	master := redistest.Start(t)
	host, port, _ := net.SplitHostPort(master.Addr)
	replica := redistest.Start(t, redistest.Options{Args: []string{"--replicaof", host, port}})
	stopped := redistest.Start(t)
	silent := testutil.SilentListener(t)
	down := testutil.UnusedAddr(t)

	url := func(addr string) cache.SecretURL { return cache.SecretURL("redis://" + addr) }
	for _, tc := range []struct {
		name string
		call func(t *testing.T) error
		want string // the reply's code, "" for an outage that must not match
	}{
		{"WRONGTYPE", func(t *testing.T) error {
			_, _, err := openStore(t, cache.Config{RedisURL: url(srv.Addr)}).Get(t.Context(), "list")
			return err
		}, "WRONGTYPE"},
		{"NOPERM", func(t *testing.T) error {
			return openStore(t, cache.Config{RedisURL: url("reader:r3ader@" + srv.Addr)}).Set(t.Context(), "k", []byte("v"), 0)
		}, "NOPERM"},
		{"WRONGPASS", func(t *testing.T) error {
			_, _, err := openStore(t, cache.Config{RedisURL: url("reader:wr0ng@" + srv.Addr)}).Get(t.Context(), "k")
			return err
		}, "WRONGPASS"},
		{"OOM", func(t *testing.T) error {
			s := openStore(t, cache.Config{RedisURL: url(full.Addr)})
			big := make([]byte, 256<<10)
			for i := range 100 {
				if err := s.Set(t.Context(), fmt.Sprintf("k%d", i), big, 0); err != nil {
					return err
				}
			}
			t.Fatal("100 Sets of 256KB on a server with maxmemory 1mb all succeeded")
			return nil
		}, "OOM"},
		{"READONLY", func(t *testing.T) error {
			return openStore(t, cache.Config{RedisURL: url(replica.Addr)}).Set(t.Context(), "k", []byte("v"), 0)
		}, "READONLY"},
		{"nobody listening", func(t *testing.T) error {
			_, _, err := openStore(t, cache.Config{RedisURL: url(down)}).Get(t.Context(), "k")
			return err
		}, ""},
		{"server stopped", func(t *testing.T) error {
			s := openStore(t, cache.Config{RedisURL: url(stopped.Addr)})
			if err := s.Set(t.Context(), "k", []byte("v"), 0); err != nil {
				t.Fatal(err)
			}
			stopped.Stop()
			return s.Set(t.Context(), "k", []byte("v"), 0)
		}, ""},
		{"server silent", func(t *testing.T) error {
			_, _, err := openStore(t, cache.Config{RedisURL: url(silent), Timeout: 100 * time.Millisecond}).Get(t.Context(), "k")
			return err
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(t)
			if err == nil {
				t.Fatal("err = nil")
			}
			if got := errors.Is(err, cache.ErrRefused); got != (tc.want != "") {
				t.Fatalf("errors.Is(%v, ErrRefused) = %v, want %v", err, got, tc.want != "")
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "r3ader") || strings.Contains(err.Error(), "wr0ng") {
				t.Fatalf("err = %v, want it to say %q and show no password", err, tc.want)
			}
		})
	}
}
