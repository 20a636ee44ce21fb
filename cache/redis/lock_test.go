package redis_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/cache/cachetest"
	"github.com/ushka-go/ushka/cache/redis"
	"github.com/ushka-go/ushka/internal/redistest"
)

// lockerConformance runs cachetest.TestLocker with two stores per subtest,
// two clients with one prefix, as two processes would open them.
func lockerConformance(t *testing.T, url string) {
	cachetest.TestLocker(t, func(t *testing.T) (a, b cache.Store) {
		cfg := cache.Config{RedisURL: cache.SecretURL(url), KeyPrefix: uniquePrefix(t)}
		return openStore(t, cfg), openStore(t, cfg)
	})
}

func TestLockerConformance(t *testing.T) {
	srv := redistest.Start(t)
	lockerConformance(t, "redis://"+srv.Addr+"/0")
}

func TestLockerConformanceCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	lockerConformance(t, clusterURL(cl))
}

// The lease is kept by the server's clock: a placeholder lives exactly its
// lease (PX), and its lockUntil is the server's time plus the lease, not the
// caller's.
func TestLockUsesServerClock(t *testing.T) {
	srv := redistest.Start(t)
	s := openStore(t, cache.Config{RedisURL: cache.SecretURL("redis://" + srv.Addr)})
	ok, _, _, err := s.Lock(t.Context(), "k", "tok", 10*time.Second, time.Time{})
	if err != nil || !ok {
		t.Fatalf("Lock = %v, %v", ok, err)
	}
	if pttl, _ := strconv.Atoi(srv.Do("PTTL", "ushka:k")); pttl < 9000 || pttl > 10000 {
		t.Errorf("PTTL of the placeholder = %d, want about 10000 (PX lease)", pttl)
	}
	var sec, usec int64
	fmt.Sscanf(strings.ReplaceAll(srv.Do("TIME"), "\n", " "), "%d %d", &sec, &usec)
	serverNow := time.Unix(sec, usec*1000)
	b, _, _ := s.Get(t.Context(), "k")
	e, err := cache.ParseEntry(b)
	if err != nil {
		t.Fatal(err)
	}
	if d := e.LockUntil.Sub(serverNow); d < 9*time.Second || d > 10*time.Second {
		t.Errorf("lockUntil - server TIME = %v, want just under 10s", d)
	}
	if d := serverNow.Sub(e.Created); d < 0 || d > time.Second {
		t.Errorf("placeholder Created %v, server TIME %v: want Created from the server's clock", e.Created, serverNow)
	}
}

func TestLockRejectsBadTokensAndLeases(t *testing.T) {
	srv := redistest.Start(t)
	s := openStore(t, cache.Config{RedisURL: cache.SecretURL("redis://:hunter2@" + srv.Addr)})
	ctx := t.Context()
	for _, tc := range []struct {
		token string
		lease time.Duration
	}{
		{"", time.Second},
		{"-", time.Second},
		{"with space", time.Second},
		{"new\nline", time.Second},
		{strings.Repeat("x", 65), time.Second},
		{"ok", 0},
		{"ok", -time.Second},
	} {
		ok, _, _, err := s.Lock(ctx, "k", tc.token, tc.lease, time.Time{})
		if err == nil || ok {
			t.Errorf("Lock(token %q, lease %v) = (%v, %v), want an error", tc.token, tc.lease, ok, err)
		} else if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error shows the password: %v", err)
		}
	}
	if got := srv.Do("EXISTS", "ushka:k"); got != "0" {
		t.Errorf("a rejected Lock wrote the key (EXISTS = %s)", got)
	}
}

// The subscription of Watch is one goroutine per store, started by the
// first Watch and ended by Close (goleak in TestMain checks that nothing is
// left), and it comes back by itself after the server restarts.
func TestWatchResubscribesAfterRestart(t *testing.T) {
	srv := redistest.Start(t)
	cfg := cache.Config{RedisURL: cache.SecretURL("redis://" + srv.Addr)}
	a, b := openStore(t, cfg), openStore(t, cfg)
	filled, stop := b.Watch("k")
	defer stop()
	waitReady(t, b)
	srv.Stop()
	srv.Restart()
	// Fill until one wakes b: its subscription is back within the backoff.
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Calls may fail while a's connection is remade: try again.
		if ok, _, _, err := a.Lock(t.Context(), "k", "t1", time.Minute, time.Time{}); err == nil && ok {
			_, _ = a.Fill(t.Context(), "k", "t1", []byte("v"), 0)
		}
		select {
		case <-filled:
			return
		case <-time.After(100 * time.Millisecond):
		}
		_ = a.Delete(t.Context(), "k")
		if time.Now().After(deadline) {
			t.Fatal("Watch not woken by a Fill within 10s of the server's restart")
		}
	}
}

func TestWatchClosedStore(t *testing.T) {
	srv := redistest.Start(t)
	s := openStore(t, cache.Config{RedisURL: cache.SecretURL("redis://" + srv.Addr)})
	before, stop := s.Watch("k")
	defer stop()
	s.Close()
	select {
	case <-before:
	case <-time.After(time.Second):
		t.Fatal("Close did not wake a watcher, which would wait for its re-check interval before meeting ErrClosed")
	}
	after, stop2 := s.Watch("k")
	defer stop2()
	select {
	case <-after:
	default:
		t.Fatal("Watch after Close returned a channel with no wake-up")
	}
}

func waitReady(t *testing.T, s *redis.Store) {
	t.Helper()
	select {
	case <-redis.WatchReady(s):
	case <-time.After(10 * time.Second):
		t.Fatal("the Watch subscription was not confirmed within 10s")
	}
}

// TestWatchLatency measures how soon a watcher in one store is woken after
// another store (its own connection, as another process has) fills the key:
// from the start of the Fill call to the wake-up, over 200 fills.
func TestWatchLatency(t *testing.T) {
	srv := redistest.Start(t)
	cfg := cache.Config{RedisURL: cache.SecretURL("redis://" + srv.Addr)}
	a, b := openStore(t, cfg), openStore(t, cfg)
	_, stop := b.Watch("warm-up")
	waitReady(t, b)
	stop()
	ctx := t.Context()
	const n = 200
	lat := make([]time.Duration, 0, n)
	for i := range n {
		key := fmt.Sprintf("k%d", i)
		filled, stop := b.Watch(key)
		if ok, _, _, err := a.Lock(ctx, key, "t1", time.Minute, time.Time{}); err != nil || !ok {
			t.Fatalf("Lock = %v, %v", ok, err)
		}
		start := time.Now()
		if ok, err := a.Fill(ctx, key, "t1", []byte("v"), 0); err != nil || !ok {
			t.Fatalf("Fill = %v, %v", ok, err)
		}
		select {
		case <-filled:
			lat = append(lat, time.Since(start))
		case <-time.After(time.Second):
			t.Fatalf("fill %d: no wake-up within 1s", i)
		}
		stop()
	}
	slices.Sort(lat)
	p50, p99 := lat[n/2], lat[n*99/100-1]
	t.Logf("Watch wake-up after a Fill by another store, %d fills on loopback: p50 %v, p99 %v, max %v", n, p50, p99, lat[n-1])
	limit := 10 * time.Millisecond
	if raceEnabled {
		limit = 50 * time.Millisecond
	}
	if p99 > limit {
		t.Errorf("p99 wake-up latency %v, want under %v", p99, limit)
	}
}

// childEnv makes the test binary, run again as a child, a lock contender
// or a filler (TestLockChildProcess); its value is
// "redis_url|key|lease[|fill]".
const childEnv = "USHKA_LOCK_CHILD"

// TestLockChildProcess is a child of TestLockAcrossProcesses, not a test of
// its own. It connects and says "LOCK ready"; when its stdin says go, it
// tries to Lock the key until it wins (woken by Watch, re-checking every
// 20ms), says "LOCK won <token>", and renews its lease every lease/3 until
// killed. It exits when its stdin closes.
func TestLockChildProcess(t *testing.T) {
	spec := os.Getenv(childEnv)
	if spec == "" {
		t.Skip("a child process of TestLockAcrossProcesses")
	}
	parts := strings.Split(spec, "|")
	url, key := parts[0], parts[1]
	lease, err := time.ParseDuration(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	s, err := redis.Open(context.Background(), cache.Config{RedisURL: cache.SecretURL(url), Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	filled, stop := s.Watch(key)
	defer stop()
	waitReady(t, s)
	stdin := bufio.NewReader(os.Stdin)
	fmt.Println("LOCK ready")
	if _, err := stdin.ReadString('\n'); err != nil {
		return
	}
	if len(parts) < 4 || parts[3] != "fill" {
		go func() { // the parent is gone: so are we
			_, _ = io.Copy(io.Discard, stdin)
			os.Exit(0)
		}()
	}
	if len(parts) > 3 && parts[3] == "fill" {
		fillOnRequest(s, stdin)
		return
	}
	token := randomToken()
	for {
		ok, _, _, err := s.Lock(ctx, key, token, lease, time.Time{})
		if err != nil {
			fmt.Println("LOCK error", err)
		}
		if ok {
			break
		}
		select {
		case <-filled:
		case <-time.After(20 * time.Millisecond):
		}
	}
	fmt.Println("LOCK won", token)
	for range time.Tick(lease / 3) {
		if ok, err := s.Renew(ctx, key, token, lease); err != nil || !ok {
			fmt.Println("LOCK lost", ok, err)
			os.Exit(1)
		}
	}
}

// fillOnRequest serves TestWatchLatencyAcrossProcesses: for each line
// "fill KEY" it locks and fills KEY, then says "LOCK filled KEY T", T being
// the wall-clock time (Unix ns) just before the Fill call.
func fillOnRequest(s *redis.Store, stdin *bufio.Reader) {
	ctx := context.Background()
	for {
		line, err := stdin.ReadString('\n')
		if err != nil {
			return
		}
		key := strings.TrimPrefix(strings.TrimSpace(line), "fill ")
		if ok, _, _, err := s.Lock(ctx, key, "filler", time.Minute, time.Time{}); err != nil || !ok {
			fmt.Println("LOCK error lock", ok, err)
			continue
		}
		start := time.Now().UnixNano()
		if ok, err := s.Fill(ctx, key, "filler", []byte("v"), 0); err != nil || !ok {
			fmt.Println("LOCK error fill", ok, err)
			continue
		}
		fmt.Println("LOCK filled", key, start)
	}
}

func randomToken() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

type childEvent struct {
	child int
	words []string
	at    time.Time
}

// children are child processes of a multi-process test: the test binary
// run again as TestLockChildProcess.
type children struct {
	t      *testing.T
	cmds   []*exec.Cmd
	stdins []io.WriteCloser
	events chan childEvent // their "LOCK ..." lines
}

// startChildren starts n children with spec as the value of childEnv,
// killed by pid when t ends, and waits until each says it is ready.
func startChildren(t *testing.T, n int, spec string) *children {
	t.Helper()
	if os.Getenv(childEnv) != "" {
		t.Skip("in a child")
	}
	return spawnChildren(t, n, "TestLockChildProcess", func(int) string { return childEnv + "=" + spec })
}

// spawnChildren runs n copies of the test binary, each running test alone
// with the environment variable env(i), and waits until each says ready.
// They speak in lines "LOCK word..." on stdout.
func spawnChildren(t *testing.T, n int, test string, env func(i int) string) *children {
	t.Helper()
	c := &children{t: t, events: make(chan childEvent, 64)}
	for i := range n {
		cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
		cmd.Env = append(os.Environ(), env(i))
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		c.cmds, c.stdins = append(c.cmds, cmd), append(c.stdins, stdin)
		t.Cleanup(func() {
			stdin.Close()
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if w := strings.Fields(sc.Text()); len(w) > 1 && w[0] == "LOCK" {
					c.events <- childEvent{i, w[1:], time.Now()}
				}
			}
		}()
	}
	for range n {
		if e := c.next(60*time.Second, "ready"); e.words[0] != "ready" {
			t.Fatalf("child %d said %v before all were ready", e.child, e.words)
		}
	}
	return c
}

// next returns the next event within d; an error or a lost lock fails t.
func (c *children) next(d time.Duration, what string) childEvent {
	c.t.Helper()
	select {
	case e := <-c.events:
		if e.words[0] == "error" || e.words[0] == "lost" {
			c.t.Fatalf("child %d: %v", e.child, e.words)
		}
		return e
	case <-time.After(d):
		c.t.Fatalf("no child %s within %v", what, d)
		return childEvent{}
	}
}

// send writes line to every child.
func (c *children) send(line string) {
	for _, in := range c.stdins {
		fmt.Fprintln(in, line)
	}
}

// TestLockAcrossProcesses runs four OS processes (this test binary again)
// that contend for one key's lock on a real redis-server: exactly one wins
// and keeps the lock by renewing it for several leases; killed with SIGKILL
// mid-lease, it is replaced by another within the lease, twice over.
func TestLockAcrossProcesses(t *testing.T) {
	srv := redistest.Start(t)
	const n, lease = 4, 500 * time.Millisecond
	kids := startChildren(t, n, fmt.Sprintf("redis://%s|job|%s", srv.Addr, lease))
	kids.send("go")
	alive := n
	winner := kids.next(10*time.Second, "won")
	for round := 0; ; round++ {
		if winner.words[0] != "won" {
			t.Fatalf("child %d said %v, want won", winner.child, winner.words)
		}
		// The one winner holds the key for several leases, renewing it,
		// and no other child wins meanwhile. The kill then comes between
		// two renewals: mid-lease.
		if e := peek(kids.events, 3*lease+lease/6); e != nil {
			t.Fatalf("round %d: child %d said %v while child %d held the lock: want exactly one winner", round, e.child, e.words, winner.child)
		}
		placeholder, err := cache.ParseEntry([]byte(srv.Do("GET", "ushka:job")))
		if err != nil || placeholder.Lock != winner.words[1] {
			t.Fatalf("round %d: stored entry %+v (%v), want locked by the winner's token %s", round, placeholder, err, winner.words[1])
		}
		if alive == 2 {
			break
		}
		// SIGKILL the winner mid-lease: no Unlock, no Fill.
		killed := time.Now()
		if err := kids.cmds[winner.child].Process.Kill(); err != nil {
			t.Fatal(err)
		}
		alive--
		taker := kids.next(5*time.Second, "took over")
		took := taker.at.Sub(killed)
		t.Logf("round %d: child %d killed; child %d took over %v later (lease %v, renewed every %v)", round, winner.child, taker.child, took, lease, lease/3)
		if taker.child == winner.child {
			t.Fatalf("the killed child %d won again", taker.child)
		}
		// The lease was renewed at most lease/3 before the kill, so it
		// ends between 2/3 of a lease and a lease after it.
		slack := 150 * time.Millisecond
		if raceEnabled {
			slack = 400 * time.Millisecond
		}
		if took > lease+slack {
			t.Errorf("round %d: takeover %v after the kill, want within the lease %v (+%v to notice)", round, took, lease, slack)
		}
		if took < lease*2/3-slack {
			t.Errorf("round %d: takeover %v after the kill, before the renewed lease (%v) could have passed", round, took, lease*2/3)
		}
		winner = taker
	}
}

// peek returns the first event within d, or nil.
func peek(events <-chan childEvent, d time.Duration) *childEvent {
	select {
	case e := <-events:
		return &e
	case <-time.After(d):
		return nil
	}
}

// TestWatchLatencyAcrossProcesses measures how soon a watcher in this
// process is woken after another OS process fills the key: from the wall
// clock just before the child's Fill call to the wake-up here, over 200
// fills on loopback.
func TestWatchLatencyAcrossProcesses(t *testing.T) {
	srv := redistest.Start(t)
	url := "redis://" + srv.Addr
	kids := startChildren(t, 1, url+"|unused|1s|fill")
	kids.send("go")
	s := openStore(t, cache.Config{RedisURL: cache.SecretURL(url)})
	_, stop := s.Watch("warm-up")
	waitReady(t, s)
	stop()
	const n = 200
	lat := make([]time.Duration, 0, n)
	for i := range n {
		key := fmt.Sprintf("k%d", i)
		filled, stop := s.Watch(key)
		kids.send("fill " + key)
		var woke time.Time
		select {
		case <-filled:
			woke = time.Now()
		case <-time.After(5 * time.Second):
			t.Fatalf("fill %d: no wake-up within 5s", i)
		}
		stop()
		e := kids.next(5*time.Second, "filled")
		if len(e.words) != 3 || e.words[0] != "filled" || e.words[1] != key {
			t.Fatalf("child said %v, want filled %s", e.words, key)
		}
		ns, err := strconv.ParseInt(e.words[2], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		lat = append(lat, woke.Sub(time.Unix(0, ns)))
	}
	slices.Sort(lat)
	p50, p99 := lat[n/2], lat[n*99/100-1]
	t.Logf("Watch wake-up after a Fill by another process, %d fills on loopback: p50 %v, p99 %v, max %v", n, p50, p99, lat[n-1])
	limit := 10 * time.Millisecond
	if raceEnabled {
		limit = 50 * time.Millisecond
	}
	if p99 > limit {
		t.Errorf("p99 wake-up latency %v, want under %v", p99, limit)
	}
}

// TestLockerConformanceThroughChaos: a store wrapped by cachetest.Chaos,
// with no fault in force, is still a Locker that keeps the contract, so
// that outage tests of GetOrSet run with the cross-process lock.
func TestLockerConformanceThroughChaos(t *testing.T) {
	srv := redistest.Start(t)
	var chaos cachetest.Chaos
	cachetest.TestLocker(t, func(t *testing.T) (a, b cache.Store) {
		cfg := cache.Config{RedisURL: cache.SecretURL("redis://" + srv.Addr), KeyPrefix: uniquePrefix(t)}
		return chaos.Wrap(openStore(t, cfg)), chaos.Wrap(openStore(t, cfg))
	})
	if chaos.Injected() != 0 {
		t.Fatalf("%d faults injected with none in force", chaos.Injected())
	}
}

// TestChaosKeepsTheNearCache: a near-cached Redis store wrapped by Chaos is
// still a NearCacher and a Locker, so that outage tests run with both.
func TestChaosKeepsTheNearCache(t *testing.T) {
	srv := redistest.Start(t)
	var chaos cachetest.Chaos
	s := chaos.Wrap(openStore(t, nearConfig("redis://"+srv.Addr, uniquePrefix(t))))
	if _, ok := s.(cache.NearCacher); !ok {
		t.Fatal("Wrap dropped cache.NearCacher")
	}
	if _, ok := s.(cache.Locker); !ok {
		t.Fatal("Wrap dropped cache.Locker")
	}
	c := cache.New(s, cache.WithLogger(nil))
	expectOneNearHit(t, c, "through Chaos")
	ctx := t.Context()
	var v string
	chaos.Fail(errors.New("connection refused"), cachetest.OpGet)
	// A near hit is process memory: the front end serves it without asking
	// the store (NearPeek), even while reads of the store fail.
	if found, err := c.Get(ctx, "k", &v); err != nil || !found {
		t.Fatalf("near hit while Chaos fails every read = (%v, %v), want it served from memory", found, err)
	}
	if _, err := c.Get(ctx, "not-near", &v); err == nil {
		t.Fatal("a read of a key the near cache does not hold succeeded while Chaos fails every read")
	}
}
