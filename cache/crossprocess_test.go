package cache_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/internal/redistest"
)

// GetOrSet across processes, tested as processes: the test binary re-runs
// itself as children (TestCrossProcessChild) that share one real
// redis-server, and the parent kills them with SIGKILL where the scenario
// says so. The load of every child counts itself with INCR on the server.

const (
	envChild = "USHKA_TEST_CHILD"  // the scenario a child runs
	envAddr  = "USHKA_TEST_REDIS"  // the server's host:port
	envLease = "USHKA_TEST_LEASE"  // lock_lease
	envValue = "USHKA_TEST_RESULT" // what the child's load returns
	envNear  = "USHKA_TEST_NEAR"   // "true": near_cache on
)

// child is a running child process and the lines it prints.
type child struct {
	cmd   *exec.Cmd
	lines chan string
}

func startChild(t *testing.T, srv *redistest.Server, near bool, scenario, lease, value string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestCrossProcessChild$", "-test.v")
	cmd.Env = append(os.Environ(), envChild+"="+scenario, envAddr+"="+srv.Addr, envLease+"="+lease, envValue+"="+value,
		fmt.Sprintf("%s=%v", envNear, near))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := &child{cmd: cmd, lines: make(chan string, 100)}
	go func() {
		defer close(ch.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if l, ok := strings.CutPrefix(sc.Text(), "child: "); ok {
				ch.lines <- l
			}
		}
	}()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return ch
}

// expect waits for the child's next line and checks it starts with want.
func (c *child) expect(t *testing.T, want string) string {
	t.Helper()
	select {
	case l, ok := <-c.lines:
		if !ok {
			t.Fatalf("child ended before saying %q", want)
		}
		if !strings.HasPrefix(l, want) {
			t.Fatalf("child said %q, want %q", l, want)
		}
		return l
	case <-time.After(30 * time.Second):
		t.Fatalf("child did not say %q within 30s", want)
	}
	return ""
}

func (c *child) wait(t *testing.T) {
	t.Helper()
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
}

// TestCrossProcessChild is the child's side; it does nothing in a normal run.
func TestCrossProcessChild(t *testing.T) {
	scenario := os.Getenv(envChild)
	if scenario == "" {
		t.Skip("run by the cross-process tests as a child process")
	}
	addr := os.Getenv(envAddr)
	lease, _ := time.ParseDuration(os.Getenv(envLease))
	value := os.Getenv(envValue)
	ctx := context.Background()
	c, err := cache.Open(ctx, cache.Config{Enabled: true, Backend: "redis",
		RedisURL: cache.SecretURL("redis://" + addr), LockLease: lease, Timeout: time.Second,
		NearCache: os.Getenv(envNear) == "true"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	do := func(args ...string) string {
		r, err := redistest.Do(addr, nil, args...)
		if err != nil {
			t.Fatalf("redis %v: %v", args, err)
		}
		return r
	}
	say := func(format string, args ...any) { fmt.Printf("child: "+format+"\n", args...) }
	load := func(d time.Duration) func(context.Context) (string, error) {
		return func(context.Context) (string, error) {
			do("INCR", "test:loads")
			say("loading")
			time.Sleep(d)
			return value, nil
		}
	}
	switch scenario {
	case "burst": // 20 callers at once, once "go" is set
		say("ready")
		for do("EXISTS", "test:go") != "1" {
			time.Sleep(time.Millisecond)
		}
		var wg sync.WaitGroup
		results := make([]string, 20)
		for i := range results {
			wg.Go(func() {
				v, err := cache.GetOrSet(ctx, c, "report", time.Minute, load(500*time.Millisecond))
				if err != nil {
					v = "error: " + err.Error()
				}
				results[i] = v
			})
		}
		wg.Wait()
		say("results %s", strings.Join(results, ","))
	case "load": // one caller whose load takes as long as USHKA_TEST_RESULT's prefix says
		d, _ := time.ParseDuration(strings.SplitN(value, "/", 2)[0])
		v, err := cache.GetOrSet(ctx, c, "report", time.Minute, load(d))
		say("result %s %v", v, err)
	case "source": // a load that reads the source, then waits to be released
		v, err := cache.GetOrSet(ctx, c, "report", time.Minute, func(context.Context) (string, error) {
			do("INCR", "test:loads")
			v := do("GET", "test:source")
			say("loading read %s", v)
			for do("EXISTS", "test:release") != "1" {
				time.Sleep(time.Millisecond)
			}
			return v, nil
		})
		say("result %s %v", v, err)
		c.Close() // waits for nothing: the store write was conditional
	case "delete":
		say("deleted %v", c.Delete(ctx, "report"))
	default:
		t.Fatalf("unknown scenario %q", scenario)
	}
}

func loads(t *testing.T, srv *redistest.Server) string { return srv.Do("GET", "test:loads") }

// TestCrossProcessOneLoad: four processes of 20 callers each ask for the
// same cold key at once; the load runs once, and every caller gets its
// value.
func TestCrossProcessOneLoad(t *testing.T) {
	for _, near := range []bool{false, true} {
		t.Run(fmt.Sprintf("near_cache=%v", near), func(t *testing.T) {
			srv := redistest.Start(t)
			var children []*child
			for range 4 {
				children = append(children, startChild(t, srv, near, "burst", "5s", "report-1"))
			}
			for _, ch := range children {
				ch.expect(t, "ready")
			}
			srv.Do("SET", "test:go", "1")
			for _, ch := range children {
				for {
					l := ch.expect(t, "")
					if l == "loading" {
						continue
					}
					if want := "results " + strings.TrimSuffix(strings.Repeat("report-1,", 20), ","); l != want {
						t.Fatalf("a child's callers got %q, want %q", l, want)
					}
					break
				}
				ch.wait(t)
			}
			if n := loads(t, srv); n != "1" {
				t.Fatalf("the load ran %s times across 4 processes of 20 callers, want 1", n)
			}
		})
	}
}

// TestCrossProcessHolderKilled: the process loading a key is killed with
// SIGKILL mid-load; another process takes the key over once the lease has
// passed, not before, and not never.
func TestCrossProcessHolderKilled(t *testing.T) {
	const near = false
	srv := redistest.Start(t)
	const lease = time.Second
	a := startChild(t, srv, near, "load", lease.String(), "1h/from-a")
	a.expect(t, "loading")
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	b := startChild(t, srv, near, "load", lease.String(), "10ms/from-b")
	b.expect(t, "loading")
	took := time.Since(start)
	if l := b.expect(t, "result"); l != "result 10ms/from-b <nil>" {
		t.Fatalf("the process that took over said %q", l)
	}
	b.wait(t)
	if took > lease+2*time.Second {
		t.Fatalf("the key was taken over %v after its holder died, want within the %v lease", took, lease)
	}
	if n := loads(t, srv); n != "2" {
		t.Fatalf("loads = %s, want 2 (the killed one, the one that took over)", n)
	}
}

// TestCrossProcessLoadLongerThanLease: a load that runs five leases long
// keeps its lease by renewing it, so a second process waits for its value
// instead of loading too.
func TestCrossProcessLoadLongerThanLease(t *testing.T) {
	const near = false
	srv := redistest.Start(t)
	// 600ms: a renewal every 200ms must land within it, on a 2-core
	// machine running the whole suite under -race (300ms failed there once).
	const lease = 600 * time.Millisecond
	a := startChild(t, srv, near, "load", lease.String(), "3s/from-a")
	a.expect(t, "loading")
	b := startChild(t, srv, near, "load", lease.String(), "10ms/from-b")
	if l := a.expect(t, "result"); l != "result 3s/from-a <nil>" {
		t.Fatalf("the loading process said %q", l)
	}
	if l := b.expect(t, "result"); l != "result 3s/from-a <nil>" {
		t.Fatalf("the waiting process said %q, want the first process's value", l)
	}
	a.wait(t)
	b.wait(t)
	if n := loads(t, srv); n != "1" {
		t.Fatalf("loads = %s, want 1: the lease lapsed during a long load", n)
	}
}

// TestCrossProcessDeleteIsFinal: a Delete in one process while another
// process's load of the key runs makes that load's value not be stored:
// the classic cache-aside race (read old, delete, write old) cannot leave
// the old value in Redis. Found missing by the hostile review of issue 8.
func TestCrossProcessDeleteIsFinal(t *testing.T) {
	for _, near := range []bool{false, true} {
		t.Run(fmt.Sprintf("near_cache=%v", near), func(t *testing.T) {
			srv := redistest.Start(t)
			srv.Do("SET", "test:source", "v1")
			a := startChild(t, srv, near, "source", "5s", "")
			a.expect(t, "loading read v1")
			srv.Do("SET", "test:source", "v2") // the database changes...
			b := startChild(t, srv, near, "delete", "5s", "")
			if l := b.expect(t, "deleted"); l != "deleted <nil>" { // ...and another process invalidates
				t.Fatalf("Delete in the second process: %s", l)
			}
			b.wait(t)
			srv.Do("SET", "test:release", "1")
			a.expect(t, "result v1") // its caller asked before the Delete
			a.wait(t)
			if v := srv.Do("GET", "ushka:report"); v != "(nil)" {
				t.Fatalf("Redis holds %q after the Delete: the load that began before it stored its value", v)
			}
			c := startChild(t, srv, near, "source", "5s", "")
			c.expect(t, "loading read v2")
			c.wait(t)
		})
	}
}
