package cachetest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/internal/testutil"
)

// TestOutage runs the outage cases of the conformance suite: what a
// [cache.Cache] over the stores newStore returns does when the store fails
// or hangs. Each store is wrapped in a [Chaos], which injects the faults,
// so that no server has to be killed; the store itself must then answer
// the cache's probe (its [cache.Pinger], if it has one) and take the
// replayed invalidations once the faults are healed. A remote backend runs
// it beside [TestStore]:
//
//	func TestOutage(t *testing.T) {
//		cachetest.TestOutage(t, func(t *testing.T) cache.Store { return openStore(t) })
//	}
//
// The contract it checks, for every store that is not in the process:
// after a few calls in a row fail, or while calls wait on a store that
// answers nothing, the cache's circuit breaker opens, and calls fail at
// once with [cache.ErrUnavailable] instead of waiting; a probe closes it
// once the store answers; a Delete, Clear or Set that failed is returned
// as an error and replayed on the store before the breaker lets reads
// through, and meanwhile the process reads the key as missing; a queue
// that overflows is replaced by a Clear; GetOrSet with fail-safe serves
// the values it holds without a load.
func TestOutage(t *testing.T, newStore NewStore) {
	t.Helper()
	for _, tc := range outageTests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := open(t, newStore)
			o := &outage{t: t, inner: s}
			o.c = cache.New(o.chaos.Wrap(s), cache.WithLogger(slog.New(slog.NewTextHandler(&o.logs, nil))),
				cache.WithBreaker(cache.BreakerConfig{Retry: 20 * time.Millisecond, QueueMax: 4}))
			t.Cleanup(func() { o.c.Close() })
			tc.run(t, o)
		})
	}
}

// outage is one subtest's cache, its faults and its logs.
type outage struct {
	t     *testing.T
	chaos Chaos
	inner cache.Store // the store without the faults
	c     *cache.Cache
	logs  testutil.Buffer
}

var errDown = errors.New("connection refused")

var outageTests = []struct {
	name string
	run  func(t *testing.T, o *outage)
}{
	{"Breaker/opens_after_failures_in_a_row", testBreakerOpens},
	{"Breaker/opens_on_a_hang_and_fails_fast", testBreakerHang},
	{"Breaker/closes_when_the_store_answers", testBreakerCloses},
	{"Breaker/refusals_and_cancellations_do_not_open_it", testBreakerNotOutages},
	{"Invalidation/delete_replayed_before_reads", testReplayDelete},
	{"Invalidation/failed_set_removes_the_old_value", testReplaySet},
	{"Invalidation/clear_replayed", testReplayClear},
	{"Invalidation/full_queue_clears_the_cache", testQueueOverflow},
	{"FailSafe/served_without_a_load_while_down", testOutageFailSafe},
}

// set writes key through the cache, failing the test on an error.
func (o *outage) set(key, value string) {
	o.t.Helper()
	if err := o.c.Set(o.t.Context(), key, value, 0); err != nil {
		o.t.Fatalf("Set(%q) before the outage = %v", key, err)
	}
}

// open makes the store fail until the breaker opens. A call that
// succeeded meanwhile (a store of a loaded value, on its own goroutine)
// starts the count of failures in a row again, so it reads up to 20 times.
func (o *outage) open() {
	o.t.Helper()
	o.chaos.Fail(errDown)
	var s string
	for range 20 {
		if _, err := o.c.Get(o.t.Context(), "probe", &s); errors.Is(err, cache.ErrUnavailable) {
			return
		}
	}
	o.t.Fatalf("breaker after 20 failed calls = %+v, want open", o.c.Breaker())
}

// heal ends the faults and waits for the breaker to close with nothing
// left to replay.
func (o *outage) heal() {
	o.t.Helper()
	o.chaos.Heal()
	deadline := time.Now().Add(10 * time.Second)
	for st := o.c.Breaker(); st.State != cache.BreakerClosed || st.Queued > 0; st = o.c.Breaker() {
		if time.Now().After(deadline) {
			o.t.Fatalf("breaker still %+v 10s after the store was healed; a probe must close it once the store answers", o.c.Breaker())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// innerHas reports whether the store itself, without the faults, holds key.
func (o *outage) innerHas(key string) bool {
	o.t.Helper()
	_, found, err := o.inner.Get(o.t.Context(), key)
	if err != nil {
		o.t.Fatalf("Get(%q) on the store itself = %v", key, err)
	}
	return found
}

func testBreakerOpens(t *testing.T, o *outage) {
	o.set("k", "v")
	o.chaos.Fail(errDown)
	var s string
	for i := range 3 {
		if _, err := o.c.Get(t.Context(), "k", &s); !errors.Is(err, errDown) {
			t.Fatalf("Get %d with the store failing = %v, want its error (the breaker opens after 3 in a row)", i+1, err)
		}
	}
	start := time.Now()
	_, err := o.c.Get(t.Context(), "k", &s)
	if !errors.Is(err, cache.ErrUnavailable) || errors.Is(err, errDown) {
		t.Fatalf("Get after 3 failures = %v, want cache.ErrUnavailable from the breaker, without calling the store", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("a call the breaker refused took %v", d)
	}
	st := o.c.Breaker()
	if st.State != cache.BreakerOpen || !strings.Contains(st.Reason, errDown.Error()) || st.Backend == "" {
		t.Fatalf("Breaker() = %+v, want open, with the failure as its reason and the backend named", st)
	}
	if !strings.Contains(err.Error(), st.Backend) {
		t.Fatalf("refused call's error %q does not name the backend %q", err, st.Backend)
	}
	if got := o.c.Stats(); got.Refused == 0 || got.BreakerOpened != 1 || got.Breaker != "open" {
		t.Fatalf("Stats = %+v, want the refused call counted and the breaker open once", got)
	}
	if err := o.c.Ping(t.Context()); !errors.Is(err, cache.ErrUnavailable) {
		t.Fatalf("Ping while open = %v, want cache.ErrUnavailable at once", err)
	}
	if logs := o.logs.String(); !strings.Contains(logs, "cache breaker open") {
		t.Fatalf("no log line when the breaker opened; logs:\n%s", logs)
	}
}

func testBreakerHang(t *testing.T, o *outage) {
	o.set("k", "v")
	o.chaos.Hang()
	// Calls on a store that answers nothing, all at once and no more after
	// them (as clients that each wait for their answer): they wait out
	// their context, but the breaker opens while they wait, once the store
	// has answered nothing for half the cache's timeout (125ms),
	// without waiting for three of them to time out.
	var wg sync.WaitGroup
	start := time.Now()
	for range 8 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
			defer cancel()
			var s string
			_, _ = o.c.Get(ctx, "k", &s)
		})
	}
	for o.c.Breaker().State != cache.BreakerOpen {
		if time.Since(start) > 2500*time.Millisecond {
			t.Fatalf("breaker %+v 2.5s into a hang with calls waiting; it must open before the calls' 3s deadlines pass", o.c.Breaker())
		}
		time.Sleep(5 * time.Millisecond)
	}
	for range 20 {
		t0 := time.Now()
		var s string
		_, err := o.c.Get(t.Context(), "k", &s)
		if !errors.Is(err, cache.ErrUnavailable) {
			t.Fatalf("Get once the breaker opened on a hang = %v, want cache.ErrUnavailable", err)
		}
		if d := time.Since(t0); d > 500*time.Millisecond {
			t.Fatalf("Get once the breaker opened on a hang took %v; it must not wait on the store", d)
		}
	}
	o.chaos.Heal()
	wg.Wait()
	o.heal()
}

func testBreakerCloses(t *testing.T, o *outage) {
	o.set("k", "v")
	o.open()
	o.heal()
	var s string
	if found, err := o.c.Get(t.Context(), "k", &s); err != nil || !found || s != "v" {
		t.Fatalf("Get after the breaker closed = (%q, %v, %v), want the value", s, found, err)
	}
	if logs := o.logs.String(); !strings.Contains(logs, "cache breaker closed") {
		t.Fatalf("no log line when the breaker closed; logs:\n%s", logs)
	}
	if st := o.c.Breaker(); st.Reason != "" {
		t.Fatalf("Breaker() once closed = %+v, want no reason", st)
	}
}

func testBreakerNotOutages(t *testing.T, o *outage) {
	o.set("k", "v")
	refused := fmt.Errorf("%w: WRONGTYPE", cache.ErrRefused)
	o.chaos.Fail(refused)
	var s string
	for range 10 {
		if _, err := o.c.Get(t.Context(), "k", &s); !errors.Is(err, cache.ErrRefused) {
			t.Fatalf("Get with the store refusing = %v, want its refusal", err)
		}
	}
	o.chaos.Hang()
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	for range 10 {
		_, _ = o.c.Get(canceled, "k", &s)
	}
	if st := o.c.Breaker(); st.State != cache.BreakerClosed {
		t.Fatalf("breaker after refusals and callers' own cancellations = %+v, want closed: the store answered, or nobody waited for it", st)
	}
	o.chaos.Heal()
}

func testReplayDelete(t *testing.T, o *outage) {
	o.set("k", "v")
	o.set("other", "v")
	o.open()
	err := o.c.Delete(t.Context(), "k")
	if !errors.Is(err, cache.ErrUnavailable) || !strings.Contains(err.Error(), "queued") {
		t.Fatalf("Delete while the breaker is open = %v, want cache.ErrUnavailable, saying it is queued", err)
	}
	if st := o.c.Stats(); st.Queued != 1 || st.QueuedNow != 1 {
		t.Fatalf("Stats after a refused Delete = %+v, want it queued", st)
	}
	var s string
	if found, err := o.c.Get(t.Context(), "k", &s); err != nil || found {
		t.Fatalf("Get of a key whose Delete is queued = (%v, %v), want a miss: this process deleted it", found, err)
	}
	if !o.innerHas("k") {
		t.Fatal("the store lost k while every call to it failed")
	}
	o.chaos.Heal()
	// The first read once the breaker lets reads through finds the Delete
	// done, in this cache and in the store itself.
	for o.c.Breaker().State != cache.BreakerClosed {
		time.Sleep(time.Millisecond)
	}
	if o.innerHas("k") {
		t.Fatal("the breaker closed before the queued Delete of k reached the store")
	}
	if found, err := o.c.Get(t.Context(), "k", &s); err != nil || found {
		t.Fatalf("first Get of k after recovery = (%v, %v), want a miss", found, err)
	}
	if found, err := o.c.Get(t.Context(), "other", &s); err != nil || !found {
		t.Fatalf("Get of a key not deleted after recovery = (%v, %v), want a hit", found, err)
	}
	if st := o.c.Stats(); st.Replayed != 1 || st.QueuedNow != 0 {
		t.Fatalf("Stats after recovery = %+v, want the Delete replayed and nothing left queued", st)
	}
}

func testReplaySet(t *testing.T, o *outage) {
	o.set("k", "old")
	o.chaos.Fail(errDown)
	if err := o.c.Set(t.Context(), "k", "new", 0); !errors.Is(err, errDown) {
		t.Fatalf("Set with the store failing = %v, want its error", err)
	}
	o.heal()
	if o.innerHas("k") {
		t.Fatal(`the store still holds k's old value after recovery: a Set that failed must remove it (the value it replaced is stale)`)
	}
	o.set("k", "newer")
	var s string
	if found, err := o.c.Get(t.Context(), "k", &s); err != nil || !found || s != "newer" {
		t.Fatalf("Get after a later Set = (%q, %v, %v), want it", s, found, err)
	}
}

func testReplayClear(t *testing.T, o *outage) {
	o.set("a", "1")
	o.set("b", "2")
	o.open()
	if err := o.c.Clear(t.Context()); !errors.Is(err, cache.ErrUnavailable) {
		t.Fatalf("Clear while the breaker is open = %v, want cache.ErrUnavailable", err)
	}
	var s string
	if found, err := o.c.Get(t.Context(), "a", &s); err != nil || found {
		t.Fatalf("Get while a Clear is queued = (%v, %v), want a miss", found, err)
	}
	o.heal()
	if o.innerHas("a") || o.innerHas("b") {
		t.Fatal("the store still holds keys after the queued Clear was replayed")
	}
}

func testQueueOverflow(t *testing.T, o *outage) {
	// The suite's queue holds 4 keys.
	for i := range 8 {
		o.set(fmt.Sprintf("k%d", i), "v")
	}
	o.open()
	for i := range 8 {
		_ = o.c.Delete(t.Context(), fmt.Sprintf("k%d", i))
	}
	if st := o.c.Stats(); st.Dropped == 0 {
		t.Fatalf("Stats after 8 Deletes into a queue of 4 = %+v, want dropped ones counted", st)
	}
	if logs := o.logs.String(); !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "queue full") {
		t.Fatalf("no error logged when the invalidation queue overflowed; logs:\n%s", logs)
	}
	o.heal()
	for i := range 8 {
		if o.innerHas(fmt.Sprintf("k%d", i)) {
			t.Fatalf("k%d still in the store after recovery: an overflowed queue must clear the cache", i)
		}
	}
}

func testOutageFailSafe(t *testing.T, o *outage) {
	ctx := t.Context()
	loads := 0
	load := func(context.Context) (string, error) { loads++; return "v", nil }
	for i := range 3 {
		// The first loads, and stores the value after returning it; the
		// next, once it is stored, hit, and keep this process's copy. A
		// store with a near cache hears of its own write a moment later,
		// and a copy read before that is not kept (it might be another
		// process's change): the last hit comes after a pause.
		if i == 2 {
			time.Sleep(50 * time.Millisecond)
		}
		if _, err := cache.GetOrSet(ctx, o.c, "k", time.Minute, load, cache.StaleFor(time.Hour)); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(5 * time.Second); !o.innerHas("k"); {
			if time.Now().After(deadline) {
				t.Fatal("GetOrSet's value not in the store 5s after it returned")
			}
			time.Sleep(time.Millisecond)
		}
	}
	o.open()
	for range 50 {
		v, err := cache.GetOrSet(ctx, o.c, "k", time.Minute, load, cache.StaleFor(time.Hour))
		if err != nil || v != "v" {
			t.Fatalf("GetOrSet while down = (%q, %v), want the value this process holds", v, err)
		}
	}
	if loads != 1 {
		t.Fatalf("loads = %d, want 1: with fail-safe on, a value this process holds is served while the store is down", loads)
	}
}
