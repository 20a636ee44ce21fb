package httpcache

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
)

// Regression tests of the hostile review of issue 14's second session: an
// early refresh (refresh_ahead) ran the load of the request whose hit
// started it, in the background, with that request's ResponseWriter and
// result fields, after the request had its answer: a data race on the
// fields (-race), and a page grown past MaxBody streamed into a finished
// response, whose header map an outer logger could be reading.

func openRefreshing(t *testing.T) *cache.Cache {
	t.Helper()
	return openConfig(t, cache.Config{Enabled: true, RefreshAhead: 0.5})
}

// TestReview15RefreshAheadLeavesTheRequestAlone: hits in the refresh window
// start a refresh in the background; every response is a whole page, and
// the refreshed one is served once it lands. Run with -race.
func TestReview15RefreshAheadLeavesTheRequestAlone(t *testing.T) {
	p := &counted{}
	h := Middleware(openRefreshing(t), Options{TTL: 300 * time.Millisecond})(p)
	serve(t, h, httptest.NewRequest("GET", "/p", nil))
	serve(t, h, httptest.NewRequest("GET", "/p", nil))
	time.Sleep(170 * time.Millisecond) // past half the ttl: a hit starts a refresh
	for range 20 {
		if resp, b := serve(t, h, httptest.NewRequest("GET", "/p", nil)); b != "run 1" && b != "run 2" {
			t.Fatalf("in the refresh window: %q (X-Cache %q), want run 1 or run 2", b, resp.Header.Get("X-Cache"))
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, b := serve(t, h, httptest.NewRequest("GET", "/p", nil))
		if b == "run 2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the refreshed page never came: %q", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReview15RefreshWritesNoFinishedResponse: the refresh a hit started
// makes a page over MaxBody; nothing of it reaches the response of that
// hit, which has returned, while a logger around the middleware reads its
// header.
func TestReview15RefreshWritesNoFinishedResponse(t *testing.T) {
	var runs atomic.Int32
	big := strings.Repeat("z", 4096)
	h := Middleware(openRefreshing(t), Options{TTL: 300 * time.Millisecond, MaxBody: 1024})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if runs.Add(1) == 1 {
			_, _ = io.WriteString(w, "small")
			return
		}
		for i := range 64 {
			w.Header().Set("X-H"+strings.Repeat("h", i), "v")
		}
		_, _ = io.WriteString(w, big)
	}))
	serve(t, h, httptest.NewRequest("GET", "/p", nil))
	serve(t, h, httptest.NewRequest("GET", "/p", nil))
	time.Sleep(170 * time.Millisecond)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/p", nil)) // its hit starts the refresh
	fields := len(w.Header())
	for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); {
		for k := range w.Header() { // the logger
			_ = k
		}
		if runs.Load() >= 2 {
			time.Sleep(50 * time.Millisecond)
			break
		}
	}
	if runs.Load() < 2 {
		t.Fatal("no refresh ran")
	}
	if len(w.Header()) != fields || w.Body.String() != "small" {
		t.Errorf("the refresh wrote into the finished response: %d fields (had %d), body of %d bytes", len(w.Header()), fields, w.Body.Len())
	}
}

// TestReview15HeldBoundUnderConcurrentKeeps: pages kept at once by many
// requests never hold more than readyBytes between them.
func TestReview15HeldBoundUnderConcurrentKeeps(t *testing.T) {
	c := openMemory(t)
	big := strings.Repeat("x", 3<<20)
	p := &counted{set: func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, big) }}
	h := p.handler(t, c, Options{MaxBody: 4 << 20})
	const targets = 16
	for i := range targets { // store each page, not yet kept
		serve(t, h, httptest.NewRequest("GET", "/big?n="+string(rune('a'+i)), nil))
	}
	var maxHeld atomic.Int64
	for round := range 6 {
		var wg sync.WaitGroup
		for i := range targets {
			wg.Go(func() {
				serve(t, h, httptest.NewRequest("GET", "/big?n="+string(rune('a'+i)), nil))
				if held := h.ready.held.Load(); held > maxHeld.Load() {
					maxHeld.Store(held)
				}
			})
		}
		wg.Wait()
		if a := h.ready.slots.Load(); a != nil && round%2 == 0 {
			for i := range a.slots { // empty the table, so that the next round keeps again
				h.ready.free(&a.slots[i], nil)
			}
		}
	}
	if m := maxHeld.Load(); m > readyBytes {
		t.Errorf("the table held %d bytes at most, over its bound %d", m, readyBytes)
	}
	var sum int64
	if a := h.ready.slots.Load(); a != nil {
		for i := range a.slots {
			if rd := a.slots[i].Load(); rd != nil {
				sum += rd.size
			}
		}
	}
	if held := h.ready.held.Load(); held != sum {
		t.Errorf("held is %d, the pages kept hold %d", held, sum)
	}
}

// TestReview15ReadyPageEndsWithThePagesFreshness: past the page's own
// freshness (its created time plus its ttl, which ends a little before the
// cache's entry does), a request is not a HIT from the table.
func TestReview15ReadyPageEndsWithThePagesFreshness(t *testing.T) {
	c := openMemory(t)
	p := &counted{}
	h := p.handler(t, c, Options{TTL: 300 * time.Millisecond})
	warm(t, h, p, "/p")
	rd := h.ready.find(httptest.NewRequest("GET", "/p", nil))
	if rd == nil || rd.maxAge != 300*time.Millisecond {
		t.Fatalf("ready page %+v, want one whose freshness ends at 300ms", rd)
	}
	// A page whose freshness has run out while the cache's entry has not:
	// the page is made older than its ttl, as the few microseconds between
	// the page's making and the entry's write leave it.
	rd.age = rd.maxAge
	tags := p.tags.Load()
	serve(t, h, httptest.NewRequest("GET", "/p", nil))
	if p.tags.Load() == tags {
		t.Error("a page past its freshness was served from the table, without reading the cache")
	}
}
