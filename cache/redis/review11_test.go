package redis_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/internal/redistest"
)

// The tests of this file come from the first hostile review of the outage
// breaker (issue 11). Each failed on the code it reviewed; its comment
// tells the bug it found, in the present tense of that code, and the test
// now keeps it from coming back.

// TestReview11GetOrSetServesAQueuedDeleteThroughLock: the contract says
// that until a queued Delete is replayed, THIS process reads the key as
// missing. Get does (guard.Get checks the queue), but GetOrSet on a Redis
// store goes on to Locker.Lock, which the guard passes through without
// looking at the queue: Lock returns the entry Redis still holds, and
// lockOrWait serves it as "stored by another process". The user deleted
// "price" (Delete returned an error saying it is queued), Get says it is
// gone, and GetOrSet hands out the old price until the prober's next
// replay (breaker_retry later; here Redis restarted from its AOF while the
// Delete failed, and the breaker never opened: one failure).
func TestReview11GetOrSetServesAQueuedDeleteThroughLock(t *testing.T) {
	srv := redistest.Start(t, persistent)
	prefix := uniquePrefix(t)
	c := openCache(t, cache.Config{
		RedisURL: cache.SecretURL("redis://" + srv.Addr), KeyPrefix: prefix,
		Timeout: 500 * time.Millisecond, BreakerRetry: 5 * time.Second,
	})
	ctx := t.Context()
	if err := c.Set(ctx, "price", "old", 0); err != nil {
		t.Fatal(err)
	}
	srv.Stop() // Redis crashes (AOF on: it keeps "price")
	err := c.Delete(ctx, "price")
	if err == nil {
		t.Fatal("Delete on a stopped Redis succeeded")
	}
	t.Logf("Delete while Redis is down: %v", err)
	srv.Restart()
	if got := srv.Do("GET", prefix+"price"); got != "old" {
		t.Fatalf("Redis holds %q after restart, want the old value (AOF)", got)
	}
	// Redis is back; the Delete is queued until the prober's next try.
	if st := c.Breaker(); st.Queued != 1 {
		t.Fatalf("Breaker() = %+v, want the failed Delete queued", st)
	}
	mustMiss(t, c, "price", "while its Delete is queued")
	loads := 0
	v, err := cache.GetOrSet(ctx, c, "price", time.Hour, func(context.Context) (string, error) {
		loads++
		return "new", nil
	})
	if err != nil && !errors.Is(err, cache.ErrUnavailable) {
		t.Fatalf("GetOrSet = %v", err)
	}
	if v == "old" {
		t.Fatalf("GetOrSet(price) = %q (loads %d) while its Delete is queued and Get reads it as missing: "+
			"the deleted value was served through Locker.Lock (breaker %+v)", v, loads, c.Breaker())
	}
}

// TestReview11BreakerFlapsWhileRedisLoads: a Redis restarted with a large
// data set answers -LOADING to every command but a few for as long as it
// loads (minutes, for a big one): an outage, by the store's own rules
// (transientReplies). Yet ROLE is allowed while loading and says
// "master", so the breaker's probe (Store.Ping) is answered: the breaker
// closes, lets breaker_failures calls through to fail with LOADING, opens
// again, and so on every breaker_retry for the whole load, logging a WARN
// and an INFO each time. Users get errors instead of fast refusals, and
// the service's logs fill with open/closed pairs.
func TestReview11BreakerFlapsWhileRedisLoads(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Args: []string{"--enable-debug-command", "yes"}})
	if got := srv.Do("DEBUG", "POPULATE", "4000000", "bulk"); got != "OK" {
		t.Skipf("DEBUG POPULATE = %s", got)
	}
	if got := srv.Do("SAVE"); got != "OK" {
		t.Fatalf("SAVE = %s", got)
	}
	prefix := uniquePrefix(t)
	c := openCache(t, cache.Config{
		RedisURL: cache.SecretURL("redis://" + srv.Addr), KeyPrefix: prefix,
		Timeout: 500 * time.Millisecond,
	})
	ctx := t.Context()
	if err := c.Set(ctx, "k", "v", 0); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	restarted := make(chan struct{})
	go func() { defer close(restarted); srv.Restart() }() // returns once loaded
	defer func() { <-restarted }()
	var loadingErrs, calls int
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		select {
		case <-restarted:
			end = time.Now()
			continue
		default:
		}
		calls++
		var s string
		if _, err := c.Get(ctx, "k", &s); err != nil && !errors.Is(err, cache.ErrUnavailable) && strings.Contains(err.Error(), "LOADING") {
			loadingErrs++
		}
	}
	select {
	case <-restarted:
		t.Skip("Redis loaded its data too fast to see the breaker while it loads")
	default:
	}
	st := c.Stats()
	t.Logf("%d Gets while Redis loads: %d sent to it and failed with LOADING; breaker opened %d times", calls, loadingErrs, st.BreakerOpened)
	if st.BreakerOpened > 1 {
		t.Fatalf("the breaker opened %d times in 1.5s while Redis was LOADING (%d calls failed with LOADING): its probe (ROLE) is answered while every GET is not, so it flaps every breaker_retry",
			st.BreakerOpened, loadingErrs)
	}
}
