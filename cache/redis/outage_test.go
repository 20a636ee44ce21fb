package redis_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/internal/redistest"
	"github.com/ushka-go/ushka/internal/testutil"
)

// The outage tests: real redis-servers killed (Stop) or hung (Pause,
// SIGSTOP) under a Cache, whose circuit breaker (cache/breaker.go) must
// make the outage cost requests nothing once it is open, and whose queue
// (cache/queue.go) must replay the invalidations that failed meanwhile
// before anyone reads the keys again.
//
// Time bounds here are loose on purpose: the machine is a noisy 2-core one
// and runs them under -race. They check that a call did not wait for
// Redis, never how fast it was.
const (
	// outageFast bounds a GetOrSet made while the breaker is open: it
	// asks no server (a refusal, then fail-safe's copy in process
	// memory), which takes microseconds. 100ms leaves room for the
	// scheduler, the race detector and the GC on a busy machine, and is
	// still a tenth of the 1s timeout the calls would otherwise wait.
	outageFast = 100 * time.Millisecond
	// outageRecover bounds how soon the breaker closes once Redis is
	// back: a probe every 250ms (breaker_retry) and a short replay; the
	// rest is room for a slow machine.
	outageRecover = 15 * time.Second
	// outageTick is the interval between two requests of an outageLoad.
	outageTick = 2 * time.Millisecond
)

// waitBreaker waits until c's breaker is in state want, and returns when it
// saw it; it fails t after within.
func waitBreaker(t testing.TB, c *cache.Cache, want cache.BreakerState, within time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if st := c.Breaker(); st.State == want {
			return time.Now()
		} else if time.Now().After(deadline) {
			t.Fatalf("breaker still %v %v later, want %v (status %+v, stats %+v)", st.State, within, want, st, c.Stats())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// stayOpen checks, for d, that c's breaker stays open: Redis is down, so no
// probe can have been answered.
func stayOpen(t testing.TB, c *cache.Cache, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if st := c.Breaker(); st.State != cache.BreakerOpen {
			t.Fatalf("breaker %v while Redis is down, want open (status %+v)", st.State, st)
		}
	}
}

// tripBreaker opens c's breaker on a Redis that is down or hung, by pinging
// it until the breaker refuses: a call made afterwards is refused at once,
// never sent (unlike one that times out, which a paused server runs once
// it resumes).
func tripBreaker(t testing.TB, c *cache.Cache) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for c.Breaker().State != cache.BreakerOpen {
		if time.Now().After(deadline) {
			t.Fatalf("breaker not open after 30s of pings on a Redis that is down (stats %+v)", c.Stats())
		}
		if err := c.Ping(t.Context()); err == nil {
			t.Fatal("Ping succeeded on a Redis that is down")
		}
	}
}

// pauseServer pauses srv (SIGSTOP) and returns the function that resumes
// it, which t's end calls too if the test did not.
func pauseServer(t testing.TB, srv *redistest.Server) (resume func()) {
	t.Helper()
	srv.Pause()
	var once sync.Once
	resume = func() { once.Do(srv.Resume) }
	t.Cleanup(resume)
	return resume
}

// persistent are the redis-server arguments that keep its data across a
// kill (Stop) and a Restart: an append-only file synced on every write,
// in the server's directory, which Restart keeps.
var persistent = redistest.Options{Args: []string{"--appendonly", "yes", "--appendfsync", "always"}}

// getString reads key through c.
func getString(t testing.TB, c *cache.Cache, key string) (string, bool, error) {
	t.Helper()
	var v string
	found, err := c.Get(t.Context(), key, &v)
	return v, found, err
}

// mustMiss checks that key reads as missing through c, without an error.
func mustMiss(t testing.TB, c *cache.Cache, key, when string) {
	t.Helper()
	if v, found, err := getString(t, c, key); found || err != nil {
		t.Fatalf("Get(%q) %s = (%q, %v, %v), want a miss", key, when, v, found, err)
	}
}

// outageLoad is a stream of GetOrSet requests (fail-safe on) on keys loaded
// before, each on a goroutine of its own, one every outageTick whatever
// the earlier ones do: they arrive as a server's requests would, not only
// when earlier ones are done.
type outageLoad struct {
	t    *testing.T
	c    *cache.Cache
	keys []string

	loads       atomic.Int64 // calls of the load function
	outage      atomic.Bool  // Redis is down: loads count in outageLoads too
	outageLoads atomic.Int64
	served      atomic.Int64
	failed      atomic.Int64

	mu       sync.Mutex
	firstErr string
	from     time.Time // the requests started after from and ended before until are measured
	until    time.Time
	measured int
	slowest  time.Duration

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

func newOutageLoad(t *testing.T, c *cache.Cache, n int) *outageLoad {
	l := &outageLoad{t: t, c: c, stop: make(chan struct{}), done: make(chan struct{})}
	for i := range n {
		l.keys = append(l.keys, fmt.Sprint("k", i))
	}
	return l
}

func (l *outageLoad) value(key string) string { return "value of " + key }

func (l *outageLoad) load(key string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		l.loads.Add(1)
		if l.outage.Load() {
			l.outageLoads.Add(1)
		}
		return l.value(key), nil
	}
}

// preload loads every key, waits until Redis (srv, under prefix) holds
// them all, and reads them once more: hits, which keep this process's
// fail-safe copies (the values GetOrSet serves while Redis is down).
func (l *outageLoad) preload(srv *redistest.Server, prefix string) {
	t := l.t
	ctx := t.Context()
	for _, k := range l.keys {
		if v, err := cache.GetOrSet(ctx, l.c, k, time.Hour, l.load(k)); err != nil || v != l.value(k) {
			t.Fatalf("GetOrSet(%q) = %q, %v", k, v, err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, k := range l.keys { // stored in the background
		for srv.Do("EXISTS", prefix+k) != "1" {
			if time.Now().After(deadline) {
				t.Fatalf("%s not stored in Redis 10s after GetOrSet loaded it", k)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for _, k := range l.keys {
		var how cache.Outcome
		if v, err := cache.GetOrSet(ctx, l.c, k, time.Hour, l.load(k), cache.ReportOutcome(&how)); err != nil || v != l.value(k) || how != cache.OutcomeHit {
			t.Fatalf("GetOrSet(%q) again = %q, %v, %v; want a hit", k, v, err, how)
		}
	}
	if n := l.loads.Load(); n != int64(len(l.keys)) {
		t.Fatalf("%d loads for %d keys", n, len(l.keys))
	}
}

// start starts the requests; they stop when halt is called, or when t
// ends (before the cache is closed).
func (l *outageLoad) start() {
	l.t.Cleanup(l.halt)
	go func() {
		defer close(l.done)
		var wg sync.WaitGroup
		defer wg.Wait()
		tick := time.NewTicker(outageTick)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
			key := l.keys[i%len(l.keys)]
			wg.Go(func() { l.request(key) })
		}
	}()
}

func (l *outageLoad) request(key string) {
	start := time.Now()
	v, err := cache.GetOrSet(context.Background(), l.c, key, time.Hour, l.load(key))
	end := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil || v != l.value(key) {
		if l.failed.Add(1) == 1 {
			l.firstErr = fmt.Sprintf("GetOrSet(%q) = (%q, %v) at %v", key, v, err, start.Format("15:04:05.000"))
		}
	} else {
		l.served.Add(1)
	}
	if !l.from.IsZero() && start.After(l.from) && (l.until.IsZero() || end.Before(l.until)) {
		l.measured++
		l.slowest = max(l.slowest, end.Sub(start))
	}
}

// measure measures the requests that start after from and end before until
// (zero: not yet known).
func (l *outageLoad) measure(from, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.from, l.until = from, until
}

// halt stops the requests and waits for them.
func (l *outageLoad) halt() {
	l.stopOnce.Do(func() { close(l.stop) })
	<-l.done
}

// check fails t if a request failed, if a load ran while Redis was down,
// or if a request made while the breaker was open took outageFast or more.
func (l *outageLoad) check() {
	t := l.t
	t.Helper()
	l.halt()
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Logf("%d requests served; %d made while the breaker was open, the slowest in %v; %d loads in all",
		l.served.Load(), l.measured, l.slowest, l.loads.Load())
	if n := l.failed.Load(); n > 0 {
		t.Errorf("%d requests failed, want none (fail-safe holds every key); the first: %s", n, l.firstErr)
	}
	if n := l.outageLoads.Load(); n > 0 {
		t.Errorf("%d loads while Redis was down, want none: fail-safe's copies are fresh", n)
	}
	if l.measured == 0 {
		t.Error("no request was measured while the breaker was open")
	}
	if l.slowest >= outageFast {
		t.Errorf("a GetOrSet made while the breaker was open took %v, want under %v: it asks no server", l.slowest, outageFast)
	}
}

// TestOutageKilledUnderLoad: Redis killed under a stream of GetOrSet
// requests with fail-safe on, on keys loaded before. No request fails, none
// loads; once the breaker is open every request is answered at once, and
// the breaker stays open while Redis is down. Redis restarted (empty), the
// breaker closes within seconds, and writes and reads work again.
func TestOutageKilledUnderLoad(t *testing.T) {
	srv := redistest.Start(t)
	prefix := uniquePrefix(t)
	c := openCache(t, cache.Config{
		RedisURL: cache.SecretURL("redis://" + srv.Addr), KeyPrefix: prefix,
		Timeout: time.Second, StaleTTL: time.Hour,
	})
	l := newOutageLoad(t, c, 20)
	l.preload(srv, prefix)
	l.start()
	time.Sleep(300 * time.Millisecond) // hits while Redis is up

	l.outage.Store(true)
	killed := time.Now()
	srv.Stop()
	opened := waitBreaker(t, c, cache.BreakerOpen, 10*time.Second)
	t.Logf("breaker open %v after the kill: %s", opened.Sub(killed).Round(time.Millisecond), c.Breaker().Reason)
	l.measure(opened, time.Time{})
	stayOpen(t, c, time.Second)
	restart := time.Now()
	l.measure(opened, restart)
	l.outage.Store(false) // the restarted server is empty: the keys load again
	srv.Restart()
	closed := waitBreaker(t, c, cache.BreakerClosed, outageRecover)
	t.Logf("breaker closed %v after the restart", closed.Sub(restart).Round(time.Millisecond))
	time.Sleep(300 * time.Millisecond) // requests on the empty server: loads, stores
	l.check()

	st := c.Stats()
	if st.BreakerOpened == 0 || st.Refused == 0 {
		t.Errorf("Stats = %+v, want the breaker opened and calls refused", st)
	}
	if st.Breaker != "closed" {
		t.Errorf("Stats.Breaker = %q after recovery, want closed", st.Breaker)
	}
	ctx := t.Context()
	if err := c.Set(ctx, "after", "ok", 0); err != nil {
		t.Fatalf("Set after recovery: %v", err)
	}
	if v, found, err := getString(t, c, "after"); err != nil || !found || v != "ok" {
		t.Fatalf("Get after recovery = (%q, %v, %v), want ok", v, found, err)
	}
	if got := srv.Do("GET", prefix+"after"); got != "ok" {
		t.Fatalf("Redis holds %q under %s after recovery, want ok", got, prefix+"after")
	}
	// GetOrSet stores again: a key the requests loaded after the restart
	// is back in Redis.
	deadline := time.Now().Add(10 * time.Second)
	for srv.Do("EXISTS", prefix+l.keys[0]) != "1" {
		if time.Now().After(deadline) {
			t.Fatalf("%s not stored again 10s after recovery", l.keys[0])
		}
		_, _ = cache.GetOrSet(ctx, c, l.keys[0], time.Hour, l.load(l.keys[0]))
		time.Sleep(10 * time.Millisecond)
	}
}

// TestOutageHungUnderLoad: Redis hung (SIGSTOP) under the same stream, with
// a 1s timeout. The store stops answering while calls wait, and the breaker
// opens on that (breaker_hang_after, a quarter of the timeout), well
// before three calls could have waited out their timeouts; from then on
// requests do not wait for Redis at all. No request fails, none loads:
// Redis keeps its data, so there is no load before, during or after.
// Resumed, the breaker closes.
func TestOutageHungUnderLoad(t *testing.T) {
	srv := redistest.Start(t)
	prefix := uniquePrefix(t)
	const timeout = time.Second
	var logs testutil.Buffer
	c := openCache(t, cache.Config{
		RedisURL: cache.SecretURL("redis://" + srv.Addr), KeyPrefix: prefix,
		Timeout: timeout, StaleTTL: time.Hour,
	}, cache.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	l := newOutageLoad(t, c, 20)
	l.preload(srv, prefix)
	l.start()
	time.Sleep(300 * time.Millisecond)

	l.outage.Store(true)
	paused := time.Now()
	resume := pauseServer(t, srv)
	opened := waitBreaker(t, c, cache.BreakerOpen, 10*time.Second)
	st := c.Breaker() // its Reason is the opening's until the first probe fails, a timeout later
	openedAfter := st.Since.Sub(paused)
	t.Logf("breaker open %v after the pause: %s", openedAfter.Round(time.Millisecond), st.Reason)
	if openedAfter >= timeout {
		t.Errorf("breaker opened %v after the pause, want before one call's timeout (%v): breaker_hang_after (%v) should open it",
			openedAfter, timeout, timeout/4)
	}
	if !strings.Contains(st.Reason, "no answer") {
		t.Errorf("BreakerStatus.Reason = %q, want the hang detection's (no answer ...)", st.Reason)
	}
	if !strings.Contains(logs.String(), "cache breaker open") || !strings.Contains(logs.String(), "no answer for") {
		t.Errorf("no log of the breaker opening on a hang; logs:\n%s", logs.String())
	}
	if !strings.Contains(c.Breaker().Backend, "redis") {
		t.Errorf("BreakerStatus.Backend = %q, want redis", c.Breaker().Backend)
	}
	l.measure(opened, time.Time{})
	// Without fail-safe: the cache's own calls fail at once, and GetOrSet
	// runs its load without waiting for Redis.
	for name, call := range map[string]func() error{
		// Keys of their own: a key whose Set or Delete was refused reads
		// as missing (queued), without asking anyone.
		"Get":    func() error { _, _, err := getString(t, c, "nofs-get"); return err },
		"Set":    func() error { return c.Set(t.Context(), "nofs-set", "v", 0) },
		"Delete": func() error { return c.Delete(t.Context(), "nofs-delete") },
		"Ping":   func() error { return c.Ping(t.Context()) },
	} {
		start := time.Now()
		if err := call(); !errors.Is(err, cache.ErrUnavailable) {
			t.Errorf("%s while the breaker is open = %v, want cache.ErrUnavailable", name, err)
		}
		if d := time.Since(start); d >= outageFast {
			t.Errorf("%s while the breaker is open took %v, want under %v: it asks no server", name, d, outageFast)
		}
	}
	start := time.Now()
	v, err := cache.GetOrSet(t.Context(), c, "nofs-load", 0, func(context.Context) (string, error) { return "fresh", nil }, cache.StaleFor(0))
	if err != nil || v != "fresh" || time.Since(start) >= outageFast {
		t.Errorf("GetOrSet without fail-safe while the breaker is open = (%q, %v) in %v, want its load's value at once", v, err, time.Since(start))
	}
	// Longer than the timeout: the requests that began before the breaker
	// opened have waited it out and been served from fail-safe's copies.
	stayOpen(t, c, timeout+timeout/2)
	resumed := time.Now()
	l.measure(opened, resumed)
	resume()
	closed := waitBreaker(t, c, cache.BreakerClosed, outageRecover)
	t.Logf("breaker closed %v after the resume", closed.Sub(resumed).Round(time.Millisecond))
	time.Sleep(300 * time.Millisecond)
	l.outage.Store(false)
	l.check()
	if n := l.loads.Load(); n != int64(len(l.keys)) {
		t.Errorf("%d loads in all, want the %d of the preload: Redis kept every key through the pause", n, len(l.keys))
	}
	if err := c.Set(t.Context(), "after", "ok", 0); err != nil {
		t.Fatalf("Set after recovery: %v", err)
	}
	if v, found, err := getString(t, c, "after"); err != nil || !found || v != "ok" {
		t.Fatalf("Get after recovery = (%q, %v, %v), want ok", v, found, err)
	}
}

// TestOutageDeleteReplayedBeforeReads: a Delete, a Set (which owes a Delete
// of its key) made while Redis is down fail, and are queued. This process
// reads their keys as missing from then on: during the outage, on its very
// first read once Redis is back, and on every read after; and Redis no
// longer has them once the breaker has closed. With Redis hung (Pause) and
// killed (Stop, with its data kept on disk, so that the keys are there
// again when it restarts), with and without the near cache.
func TestOutageDeleteReplayedBeforeReads(t *testing.T) {
	for _, tc := range []struct {
		name       string
		kill, near bool
	}{
		{"paused", false, false},
		{"paused/near", false, true},
		{"killed", true, false},
		{"killed/near", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) { checkDeleteReplayed(t, tc.kill, tc.near) })
	}
}

func checkDeleteReplayed(t *testing.T, kill, near bool) {
	var srv *redistest.Server
	if kill {
		srv = redistest.Start(t, persistent)
	} else {
		srv = redistest.Start(t)
	}
	prefix := uniquePrefix(t)
	c := openCache(t, cache.Config{
		RedisURL: cache.SecretURL("redis://" + srv.Addr), KeyPrefix: prefix,
		Timeout: 500 * time.Millisecond, NearCache: near,
	})
	ctx := t.Context()
	// k1 is deleted before the breaker opens (the Delete is sent, and
	// fails), k2 once it is open (refused: never sent), k4 is Set once it
	// is open; k3 is left alone.
	keys := []string{"k1", "k2", "k3", "k4"}
	for _, k := range keys {
		if err := c.Set(ctx, k, "old "+k, 0); err != nil {
			t.Fatal(err)
		}
		for range 2 { // the second read is a near hit, with the near cache on
			if v, found, err := getString(t, c, k); err != nil || !found || v != "old "+k {
				t.Fatalf("Get(%q) = (%q, %v, %v)", k, v, found, err)
			}
		}
	}
	if near && c.Stats().NearHits == 0 {
		t.Fatalf("no near hits with the near cache on: %+v", c.Stats())
	}

	var recover func()
	if kill {
		srv.Stop()
		recover = srv.Restart
	} else {
		recover = pauseServer(t, srv)
	}
	before := c.Stats()
	err := c.Delete(ctx, "k1")
	if err == nil {
		t.Fatal("Delete(k1) on a Redis that is down succeeded")
	}
	if !strings.Contains(err.Error(), "queued") {
		t.Errorf("Delete(k1) = %v, want it to say it was queued", err)
	}
	if !kill && !strings.Contains(err.Error(), "timed out") {
		t.Errorf("Delete(k1) on a hung Redis = %v, want a timeout", err)
	}
	if st := c.Stats(); st.Queued != before.Queued+1 || st.QueuedNow != 1 {
		t.Errorf("after a failed Delete: Queued %d -> %d, QueuedNow %d; want one more queued", before.Queued, st.Queued, st.QueuedNow)
	}
	tripBreaker(t, c)
	for _, call := range []struct {
		name string
		do   func() error
	}{
		{"Delete(k2)", func() error { return c.Delete(ctx, "k2") }},
		{"Set(k4)", func() error { return c.Set(ctx, "k4", "new k4", 0) }},
	} {
		err := call.do()
		if !errors.Is(err, cache.ErrUnavailable) || !strings.Contains(err.Error(), "redis unavailable: circuit breaker open since") {
			t.Errorf("%s with the breaker open = %v, want cache.ErrUnavailable naming redis", call.name, err)
		}
	}
	if st, bs := c.Stats(), c.Breaker(); st.Queued != before.Queued+3 || st.QueuedNow != 3 || bs.Queued != 3 {
		t.Errorf("Stats Queued %d -> %d, QueuedNow %d, Breaker().Queued %d; want three queued", before.Queued, st.Queued, st.QueuedNow, bs.Queued)
	}
	for _, k := range []string{"k1", "k2", "k4"} {
		mustMiss(t, c, k, "during the outage, its Delete queued")
	}
	switch v, found, err := getString(t, c, "k3"); {
	case near && !kill:
		// Served from process memory: a hung server changes nothing there.
		if err != nil || !found || v != "old k3" {
			t.Errorf("Get(k3) from the near cache with Redis hung = (%q, %v, %v), want old k3", v, found, err)
		}
	case near && kill && err == nil:
		// The near cache may not have heard yet that its connection is
		// gone (it empties then); what it serves is what Redis holds.
		if found && v != "old k3" {
			t.Errorf("Get(k3) = %q, want old k3", v)
		}
	default:
		if !errors.Is(err, cache.ErrUnavailable) {
			t.Errorf("Get(k3) with the breaker open = (%q, %v, %v), want cache.ErrUnavailable", v, found, err)
		}
	}

	recovered := time.Now()
	recover()
	// From the first read on, and until the breaker closes: the keys whose
	// invalidations are queued are never read. A read may be refused
	// (ErrUnavailable) once its key was replayed and before the breaker
	// closes, never answered with a value.
	reads := 0
	for deadline := time.Now().Add(outageRecover); ; reads++ {
		open := c.Breaker().State != cache.BreakerClosed
		for _, k := range []string{"k1", "k2", "k4"} {
			if v, found, err := getString(t, c, k); found || err != nil && !errors.Is(err, cache.ErrUnavailable) {
				t.Fatalf("Get(%q) %v after Redis came back (read %d) = (%q, %v, %v), want a miss: its queued invalidation was not honoured",
					k, time.Since(recovered).Round(time.Millisecond), reads, v, found, err)
			}
		}
		if !open {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("breaker not closed %v after Redis came back: %+v", outageRecover, c.Breaker())
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Logf("breaker closed %v after Redis came back; %d rounds of reads meanwhile", time.Since(recovered).Round(time.Millisecond), reads)
	for _, k := range []string{"k1", "k2", "k4"} {
		mustMiss(t, c, k, "once the breaker closed")
		if got := srv.Do("EXISTS", prefix+k); got != "0" {
			t.Errorf("Redis still holds %s once the breaker closed (EXISTS = %s): its queued invalidation was not replayed", k, got)
		}
	}
	// k3 was kept (on disk, when Redis was killed): the missing keys were
	// removed by the replay, not lost with the server.
	if got := srv.Do("GET", prefix+"k3"); got != "old k3" {
		t.Errorf("Redis holds %q under k3 after the outage, want old k3", got)
	}
	if v, found, err := getString(t, c, "k3"); err != nil || !found || v != "old k3" {
		t.Errorf("Get(k3) after the outage = (%q, %v, %v), want old k3", v, found, err)
	}
	if st := c.Stats(); st.Replayed < before.Replayed+3 || st.QueuedNow != 0 || c.Breaker().Queued != 0 {
		t.Errorf("after recovery: Replayed %d -> %d, QueuedNow %d, Breaker %+v; want three replayed and none queued",
			before.Replayed, st.Replayed, st.QueuedNow, c.Breaker())
	}
	if err := c.Set(ctx, "k2", "new k2", 0); err != nil {
		t.Fatalf("Set after recovery: %v", err)
	}
	if v, found, err := getString(t, c, "k2"); err != nil || !found || v != "new k2" {
		t.Fatalf("Get(k2) after a Set after recovery = (%q, %v, %v), want new k2", v, found, err)
	}
}

// outageChildEnv makes the test binary, run again as a child process, one
// of the processes of TestOutageDeleteReplayedInEveryProcess
// (TestOutageChildProcess); its value is "redis_url|key_prefix|n|near|i".
const outageChildEnv = "USHKA_OUTAGE_CHILD"

// TestOutageDeleteReplayedInEveryProcess: the guarantee across OS
// processes. Three child processes (this test binary again), each with its
// own Cache on one Redis, read k0, k1 and k2 (near-cached, with the near
// cache on). Redis hangs; each child i deletes k_i, which its open breaker
// refuses and queues. Redis resumes: each child's first read of k_i, and
// every one after, misses; once every child's breaker has closed, Redis no
// longer holds any k_i, and every child reads every k_i as missing.
//
// A child killed (SIGKILL) before Redis came back takes its queue with it:
// its key is still in Redis, and the others still read it. That is the
// documented limitation (a queue is process memory; Close replays what it
// can, a kill nothing), asserted as such.
func TestOutageDeleteReplayedInEveryProcess(t *testing.T) {
	for _, tc := range []struct {
		name       string
		near, kill bool
	}{
		{"plain", false, false},
		{"near", true, false},
		{"near/child killed", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) { checkReplayedInEveryProcess(t, tc.near, tc.kill) })
	}
}

func checkReplayedInEveryProcess(t *testing.T, near, killOne bool) {
	const n = 3
	srv := redistest.Start(t)
	prefix := uniquePrefix(t)
	for i := range n {
		srv.Do("SET", fmt.Sprint(prefix, "k", i), fmt.Sprint("v", i))
	}
	kids := startOutageChildren(t, n, fmt.Sprintf("redis://%s|%s|%d|%v", srv.Addr, prefix, n, near))
	resume := pauseServer(t, srv)
	kids.send("delete")
	for range n {
		if e := kids.next(60*time.Second, "deleted"); e.words[0] != "deleted" {
			t.Fatalf("child %d said %v, want deleted", e.child, e.words)
		}
	}
	alive := []int{0, 1, 2}
	killed := -1
	if killOne {
		killed, alive = 2, alive[:2]
		if err := kids.cmds[killed].Process.Kill(); err != nil { // SIGKILL: no Close, no replay
			t.Fatal(err)
		}
		_ = kids.cmds[killed].Wait()
	}
	resume()
	kids.send("read")
	for range alive {
		e := kids.next(60*time.Second, "read")
		if e.words[0] != "read" {
			t.Fatalf("child %d said %v, want read", e.child, e.words)
		}
		t.Logf("child %d: %s", e.child, strings.Join(e.words[1:], " "))
	}
	// Every alive child's breaker has closed, its queue replayed.
	var gone []string
	for _, i := range alive {
		k := fmt.Sprint("k", i)
		gone = append(gone, k)
		if got := srv.Do("EXISTS", prefix+k); got != "0" {
			t.Errorf("Redis still holds %s, which child %d deleted during the outage, after its breaker closed", k, i)
		}
	}
	if killed >= 0 {
		// The documented limitation: the killed child's queued Delete of
		// its key died with it, and nothing else knew of it.
		if got := srv.Do("GET", fmt.Sprint(prefix, "k", killed)); got != fmt.Sprint("v", killed) {
			t.Errorf("Redis holds %q under k%d, whose deleting child was killed before it could replay; want v%d still there (its queue is lost)",
				got, killed, killed)
		}
	}
	// Every process reads every replayed key as missing: those that had
	// it in their near cache hear of its Delete from Redis.
	kids.send("gone " + strings.Join(gone, " "))
	for range alive {
		if e := kids.next(60*time.Second, "gone"); e.words[0] != "gone" {
			t.Fatalf("child %d said %v, want gone", e.child, e.words)
		}
	}
	if killed >= 0 {
		// And the alive ones still read the killed child's key.
		k := fmt.Sprint("k", killed)
		kids.send("has " + k + " " + fmt.Sprint("v", killed))
		for range alive {
			if e := kids.next(60*time.Second, "has"); e.words[0] != "has" {
				t.Fatalf("child %d said %v, want has", e.child, e.words)
			}
		}
	}
	endChildren(t, kids, alive)
}

// startOutageChildren starts n children running TestOutageChildProcess,
// child i with spec+"|i", killed by pid when t ends, and waits until each
// says it is ready. They are the children of lock_test.go, which
// startChildren starts running TestLockChildProcess: the same pipes,
// events, next and send, and the same lines ("LOCK word ...", an error
// being "LOCK error ...").
func startOutageChildren(t *testing.T, n int, spec string) *children {
	t.Helper()
	if os.Getenv(outageChildEnv) != "" {
		t.Skip("in a child")
	}
	return spawnChildren(t, n, "TestOutageChildProcess", func(i int) string { return fmt.Sprintf("%s=%s|%d", outageChildEnv, spec, i) })
}

// endChildren closes the alive children's stdin, which ends them, and
// fails t unless each exits with success: a test failure in a child, or a
// goroutine its Close left behind (goleak, in TestMain), fails its exit.
func endChildren(t *testing.T, kids *children, alive []int) {
	t.Helper()
	for _, i := range alive {
		kids.stdins[i].Close()
	}
	for _, i := range alive {
		exited := make(chan error, 1)
		go func() { exited <- kids.cmds[i].Wait() }()
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("child %d failed: %v (its output is above)", i, err)
			}
		case <-time.After(60 * time.Second):
			t.Errorf("child %d did not exit 60s after its stdin closed", i)
		}
	}
}

// TestOutageChildProcess is a child of
// TestOutageDeleteReplayedInEveryProcess, not a test of its own, and skips
// unless run as such (USHKA_OUTAGE_CHILD set). Child i opens a Cache on the
// parent's Redis and prefix, reads k0..k(n-1), which the parent set, and
// says "LOCK ready". Then, for each line of its stdin:
//
//   - "delete": it pings until its breaker is open (Redis is hung), deletes
//     k_i, which must be refused (cache.ErrUnavailable) and queued, reads
//     k_i as missing, and says "LOCK deleted".
//   - "read" (Redis is back): it reads k_i at once, then again until its
//     breaker has closed and once more after: each read must miss. It says
//     "LOCK read first=... closed_after=...".
//   - "gone KEY...": it reads the keys until each misses, and says "LOCK
//     gone".
//   - "has KEY VALUE": it reads KEY and says "LOCK has" if it holds VALUE.
//
// Anything else than expected is said as "LOCK error ...", which fails the
// parent. It exits when its stdin closes.
func TestOutageChildProcess(t *testing.T) {
	spec := os.Getenv(outageChildEnv)
	if spec == "" {
		t.Skip("a child process of TestOutageDeleteReplayedInEveryProcess")
	}
	parts := strings.Split(spec, "|")
	if len(parts) != 5 {
		t.Fatalf("%s=%q, want redis_url|key_prefix|n|near|i", outageChildEnv, spec)
	}
	url, prefix := parts[0], parts[1]
	n, _ := strconv.Atoi(parts[2])
	near := parts[3] == "true"
	self := "k" + parts[4]
	c := openCache(t, cache.Config{
		RedisURL: cache.SecretURL(url), KeyPrefix: prefix,
		Timeout: 500 * time.Millisecond, NearCache: near,
	})
	say := func(format string, args ...any) { fmt.Printf("LOCK "+format+"\n", args...) }
	fail := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		say("error %s", msg)
		t.Error(msg)
	}
	read := func(key string) (string, bool, error) { return getString(t, c, key) }
	for i := range n {
		k := fmt.Sprint("k", i)
		if v, found, err := read(k); err != nil || !found || v != fmt.Sprint("v", i) {
			t.Fatalf("Get(%q) = %q, %v, %v", k, v, found, err)
		}
	}
	say("ready")

	stdin := bufio.NewScanner(os.Stdin)
	for stdin.Scan() {
		words := strings.Fields(stdin.Text())
		if len(words) == 0 {
			continue
		}
		switch words[0] {
		case "delete":
			tripBreaker(t, c)
			queued := c.Stats().Queued
			if err := c.Delete(t.Context(), self); !errors.Is(err, cache.ErrUnavailable) {
				fail("Delete(%s) with the breaker open = %v, want cache.ErrUnavailable", self, err)
				continue
			}
			if st := c.Stats(); st.Queued != queued+1 || st.QueuedNow != 1 {
				fail("Delete(%s) refused, but Stats = %+v: not queued", self, st)
				continue
			}
			if v, found, err := read(self); found || err != nil {
				fail("Get(%s) after its Delete was queued = %q, %v, %v; want a miss", self, v, found, err)
				continue
			}
			say("deleted")
		case "read":
			start := time.Now()
			// A read is never answered with a value; it may be refused
			// (ErrUnavailable) once its key was replayed and until the
			// breaker closes.
			if v, found, err := read(self); found || err != nil && !errors.Is(err, cache.ErrUnavailable) {
				fail("first Get(%s) after Redis came back = %q, %v, %v; want a miss", self, v, found, err)
				continue
			}
			firstState := c.Breaker().State
			bad := ""
			for reads := 0; bad == ""; reads++ {
				closed := c.Breaker().State == cache.BreakerClosed
				if v, found, err := read(self); found || err != nil && (closed || !errors.Is(err, cache.ErrUnavailable)) {
					bad = fmt.Sprintf("Get(%s) %v after Redis came back (read %d) = %q, %v, %v; want a miss", self, time.Since(start), reads, v, found, err)
				}
				if closed {
					break
				}
				if time.Since(start) > outageRecover {
					bad = fmt.Sprintf("breaker not closed %v after Redis came back: %+v", outageRecover, c.Breaker())
				}
				time.Sleep(2 * time.Millisecond)
			}
			if bad != "" {
				fail("%s", bad)
				continue
			}
			say("read first=miss(breaker_%v) closed_after=%v replayed=%d", firstState, time.Since(start).Round(time.Millisecond), c.Stats().Replayed)
		case "gone":
			for _, k := range words[1:] {
				v, found, err := read(k)
				for deadline := time.Now().Add(10 * time.Second); (found || err != nil) && time.Now().Before(deadline); {
					time.Sleep(5 * time.Millisecond)
					v, found, err = read(k)
				}
				if found || err != nil {
					fail("Get(%s) = %q, %v, %v 10s after every child's breaker closed; want a miss", k, v, found, err)
				}
			}
			say("gone")
		case "has":
			if v, found, err := read(words[1]); !found || v != words[2] || err != nil {
				fail("Get(%s) = %q, %v, %v; want %s", words[1], v, found, err, words[2])
				continue
			}
			say("has")
		default:
			fail("unknown command %q", stdin.Text())
		}
	}
}

// TestOutageQueueBound: with invalidation_queue_max = 5, twenty Deletes
// during an outage overflow the queue: its keys are dropped (counted, and
// logged at ERROR once), and a Clear of the whole cache is queued in their
// place. Meanwhile every key of this cache reads as missing. Once Redis is
// back, every key of this cache is gone, deleted or not, and a key of
// another cache (another key prefix) on the same server is still there.
func TestOutageQueueBound(t *testing.T) {
	srv := redistest.Start(t)
	url := cache.SecretURL("redis://" + srv.Addr)
	prefix, otherPrefix := uniquePrefix(t), uniquePrefix(t)
	var logs testutil.Buffer
	c := openCache(t, cache.Config{RedisURL: url, KeyPrefix: prefix, Timeout: 500 * time.Millisecond, InvalidationQueueMax: 5},
		cache.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	other := openCache(t, cache.Config{RedisURL: url, KeyPrefix: otherPrefix, Timeout: 500 * time.Millisecond})
	ctx := t.Context()
	const deletes = 20
	var keys []string
	for i := range deletes {
		keys = append(keys, fmt.Sprint("d", i))
	}
	keys = append(keys, "kept") // never deleted: the Clear removes it too
	for _, k := range keys {
		if err := c.Set(ctx, k, "v", 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.Set(ctx, "foreign", "stays", 0); err != nil {
		t.Fatal(err)
	}

	resume := pauseServer(t, srv)
	tripBreaker(t, c)
	for _, k := range keys[:deletes] {
		if err := c.Delete(ctx, k); !errors.Is(err, cache.ErrUnavailable) {
			t.Fatalf("Delete(%q) with the breaker open = %v, want cache.ErrUnavailable", k, err)
		}
	}
	st := c.Stats()
	t.Logf("after %d Deletes: Queued %d, Dropped %d, QueuedNow %d", deletes, st.Queued, st.Dropped, st.QueuedNow)
	if st.Dropped == 0 {
		t.Errorf("Stats = %+v, want keys dropped from a queue of 5", st)
	}
	if st.Queued != deletes {
		t.Errorf("Stats.Queued = %d, want %d", st.Queued, deletes)
	}
	if bs := c.Breaker(); bs.Queued > 5+1 || bs.Queued != st.QueuedNow {
		t.Errorf("Breaker().Queued = %d, QueuedNow %d; want at most 5 keys and a Clear", bs.Queued, st.QueuedNow)
	}
	if n := strings.Count(logs.String(), "cache invalidation queue full"); n != 1 {
		t.Errorf("the overflow was logged %d times, want once; logs:\n%s", n, logs.String())
	}
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "cache invalidation queue full") && !strings.Contains(line, "level=ERROR") {
			t.Errorf("the overflow was logged below ERROR: %s", line)
		}
	}
	for _, k := range keys { // the Clear owed covers every key
		mustMiss(t, c, k, "while a Clear is queued")
	}

	resume()
	waitBreaker(t, c, cache.BreakerClosed, outageRecover)
	for _, k := range keys {
		mustMiss(t, c, k, "after the queued Clear was replayed")
		if got := srv.Do("EXISTS", prefix+k); got != "0" {
			t.Errorf("Redis still holds %s after the queued Clear was replayed", k)
		}
	}
	if got := srv.Do("GET", otherPrefix+"foreign"); got != "stays" {
		t.Errorf("the other cache's key holds %q after this cache's Clear, want stays", got)
	}
	if v, found, err := getString(t, other, "foreign"); err != nil || !found || v != "stays" {
		t.Errorf("the other cache reads (%q, %v, %v), want stays", v, found, err)
	}
	if st := c.Stats(); st.Replayed == 0 || st.QueuedNow != 0 {
		t.Errorf("Stats after recovery = %+v, want the Clear replayed and nothing queued", st)
	}
	if err := c.Set(ctx, "after", "ok", 0); err != nil {
		t.Fatalf("Set after recovery: %v", err)
	}
	if v, found, err := getString(t, c, "after"); err != nil || !found || v != "ok" {
		t.Fatalf("Get after recovery = (%q, %v, %v), want ok", v, found, err)
	}
}

// TestOutageDeleteReplayedOnACluster: the Delete replay on a Redis Cluster
// of three masters, all hung at once. Deletes of keys on every master,
// refused by the open breaker, are queued, read as missing, and replayed
// when the masters resume, each to the master that owns its key.
func TestOutageDeleteReplayedOnACluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	prefix := uniquePrefix(t)
	// One failure opens the breaker: the masters stay paused for well
	// under cluster-node-timeout (3s), so that they do not mark each other
	// failing when they resume.
	c := openCache(t, cache.Config{
		RedisURL: cache.SecretURL(clusterURL(cl)), KeyPrefix: prefix,
		Timeout: 500 * time.Millisecond, BreakerFailures: 1,
	})
	ctx := t.Context()
	var deleted []string
	for i := range 9 {
		deleted = append(deleted, fmt.Sprint("k", i))
	}
	for _, k := range append(deleted, "kept") {
		if err := c.Set(ctx, k, "v", 0); err != nil {
			t.Fatal(err)
		}
	}
	owners := map[*redistest.Server]bool{}
	for _, k := range deleted {
		owners[clusterOwner(t, cl, prefix+k)] = true
	}
	if len(owners) < 2 {
		t.Fatalf("the keys are on %d master(s), want them spread", len(owners))
	}

	var resumes []func()
	for _, m := range cl.Masters() {
		resumes = append(resumes, pauseServer(t, m))
	}
	tripBreaker(t, c)
	for _, k := range deleted {
		if err := c.Delete(ctx, k); !errors.Is(err, cache.ErrUnavailable) {
			t.Fatalf("Delete(%q) with the breaker open = %v, want cache.ErrUnavailable", k, err)
		}
		mustMiss(t, c, k, "during the outage, its Delete queued")
	}
	for _, r := range resumes {
		r()
	}
	waitBreaker(t, c, cache.BreakerClosed, outageRecover)
	for _, k := range deleted {
		mustMiss(t, c, k, "once the breaker closed")
		if m := clusterOwner(t, cl, prefix+k); m != nil {
			t.Errorf("%s still holds %s once the breaker closed: its queued Delete was not replayed", m.Addr, k)
		}
	}
	if clusterOwner(t, cl, prefix+"kept") == nil {
		t.Error("the key no one deleted is gone")
	}
	if st := c.Stats(); st.Replayed < uint64(len(deleted)) || st.QueuedNow != 0 {
		t.Errorf("Stats after recovery = %+v, want %d replayed and nothing queued", st, len(deleted))
	}
}

// clusterOwner returns the master that holds key, or nil when none does:
// each master answers EXISTS for the keys of its slots, and MOVED for the
// others.
func clusterOwner(t *testing.T, cl *redistest.Cluster, key string) *redistest.Server {
	t.Helper()
	var owner *redistest.Server
	answered := 0
	for _, m := range cl.Masters() {
		switch reply := m.Do("EXISTS", key); reply {
		case "1":
			owner = m
			answered++
		case "0":
			answered++
		default:
			if !strings.HasPrefix(reply, "-MOVED") {
				t.Fatalf("EXISTS %s on %s = %q", key, m.Addr, reply)
			}
		}
	}
	if answered != 1 {
		t.Fatalf("%d masters answered EXISTS %s, want the one that owns its slot", answered, key)
	}
	return owner
}

// TestOutageNotDeclaredDuringALongClear: a Clear of a large cache takes
// many round trips (a SCAN and a batch of UNLINKs per thousand keys), each
// answered by a healthy Redis, and may rightly take longer than the
// timeout (Store.Clear: "the whole is bounded by ctx alone"). A lone Get
// that comes while it runs is answered at once too. Neither is an outage:
// the breaker must stay closed and the Get succeed.
//
// Regression: the hang check measured a Clear like any other call, from
// its start, so a lone call that came breaker_hang_after (62.5ms) into it
// opened the breaker on a healthy Redis; the Get failed with
// cache.ErrUnavailable, and a Delete or Set at that moment would have
// returned an error too.
func TestOutageNotDeclaredDuringALongClear(t *testing.T) {
	srv := redistest.Start(t)
	prefix := uniquePrefix(t)
	var logs testutil.Buffer
	c := openCache(t, cache.Config{
		RedisURL: cache.SecretURL("redis://" + srv.Addr), KeyPrefix: prefix,
		Timeout: cache.DefaultTimeout, // breaker_hang_after: a quarter of it, 62.5ms
	}, cache.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	const n = 200000
	srv.Do("EVAL", "for i = 1, tonumber(ARGV[1]) do redis.call('SET', KEYS[1] .. i, 'v') end return 1", "1", prefix+"bulk:", strconv.Itoa(n))
	ctx := t.Context()
	if err := c.Set(ctx, "k", "v", 0); err != nil {
		t.Fatal(err)
	}
	cleared := make(chan error, 1)
	start := time.Now()
	go func() { cleared <- c.Clear(ctx) }()
	running := func() bool {
		select {
		case err := <-cleared:
			cleared <- err
			return false
		default:
			return true
		}
	}
	// Wait until the Clear has run for twice breaker_hang_after, and has
	// removed keys: Redis answers it.
	for running() && (time.Since(start) < 2*cache.DefaultTimeout/4 || srv.Do("DBSIZE") == strconv.Itoa(n+1)) {
		time.Sleep(5 * time.Millisecond)
	}
	tooFast := func(when string) {
		t.Helper()
		if err := <-cleared; err != nil {
			t.Fatalf("Clear = %v", err)
		}
		t.Skipf("the Clear of %d keys ended %s: too fast to show anything", n, when)
	}
	if !running() {
		tooFast("before the Get")
	}
	into := time.Since(start)
	_, _, err := getString(t, c, "k")
	if !running() {
		tooFast("during the Get")
	}
	if err := <-cleared; err != nil {
		t.Fatalf("Clear = %v", err)
	}
	t.Logf("the Clear of %d keys took %v; the Get came %v into it", n, time.Since(start).Round(time.Millisecond), into.Round(time.Millisecond))
	if err != nil {
		t.Errorf("Get during a long Clear on a healthy Redis = %v, want it answered", err)
	}
	if st := c.Stats(); st.BreakerOpened != 0 {
		t.Errorf("the breaker opened %d time(s) during a Clear that Redis answered throughout; logs:\n%s", st.BreakerOpened, logs.String())
	}
}
