package httpcache

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
)

// Regression tests of the second hostile review of issue 14's second
// session.

// TestReview15bRefreshLeavesTheHitAlone: the load an early refresh runs is
// the load of the request whose hit started it, and that request may not
// have read its result yet when the refresh has run: such a load must tell
// that request nothing (a MISS for a page made for another request) and
// send nothing to its client (the refresh's page, cut short). Called with
// a refresh's context, a request's load leaves the request alone.
func TestReview15bRefreshLeavesTheHitAlone(t *testing.T) {
	c := openConfig(t, cache.Config{Enabled: true, RefreshAhead: 0.5})
	var refreshCtx atomic.Value
	var runs atomic.Int32
	h := Middleware(c, Options{TTL: 200 * time.Millisecond, MaxBody: 1024})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cache.IsRefresh(r.Context()) {
			refreshCtx.Store(r.Context())
		}
		if runs.Add(1) == 1 {
			_, _ = io.WriteString(w, "small")
			return
		}
		_, _ = io.WriteString(w, strings.Repeat("a", 2048)) // past MaxBody
	})).(*handler)
	serve(t, h, httptest.NewRequest("GET", "/p", nil))
	time.Sleep(120 * time.Millisecond)                 // past half the ttl
	serve(t, h, httptest.NewRequest("GET", "/p", nil)) // a hit: starts a refresh
	for deadline := time.Now().Add(2 * time.Second); refreshCtx.Load() == nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no early refresh ran")
		}
	}
	// The request's load, run again with the refresh's context, as when the
	// refresh runs before the request reads its result.
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/p", nil)
	run := &loadRun{h: h, w: w, r: r, key: Key(r)}
	if _, err := run.load(refreshCtx.Load().(context.Context)); err != nil {
		t.Fatal(err)
	}
	run.mu.Lock()
	defer run.mu.Unlock()
	if run.res != (loadResult{}) || run.streamed || len(w.Header()) != 0 || w.Body.Len() != 0 {
		t.Errorf("a refresh's load told the request %+v (streamed %v) and wrote %d fields, %d bytes to its client",
			run.res, run.streamed, len(w.Header()), w.Body.Len())
	}
}

// getURL gets url and reads the whole body.
func getURL(t *testing.T, url string) (*http.Response, string, error) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// TestReview15bStreamedPageOutlivesTheSoftTimeout: a page over MaxBody is
// being sent to its request's client when fail-safe's load_timeout answers
// GetOrSet with the stale page; the client still gets the whole page it
// began to receive.
func TestReview15bStreamedPageOutlivesTheSoftTimeout(t *testing.T) {
	c := openConfig(t, cache.Config{Enabled: true, StaleTTL: time.Hour, LoadTimeout: 100 * time.Millisecond})
	var runs atomic.Int32
	done := make(chan struct{})
	h := Middleware(c, Options{TTL: 50 * time.Millisecond, MaxBody: 1024})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if runs.Add(1) == 1 {
			_, _ = io.WriteString(w, "small")
			return
		}
		defer close(done)
		_, _ = io.WriteString(w, strings.Repeat("a", 2048))
		time.Sleep(300 * time.Millisecond) // past load_timeout
		_, _ = io.WriteString(w, strings.Repeat("b", 2048))
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	if _, b, err := getURL(t, srv.URL+"/p"); err != nil || b != "small" {
		t.Fatal(b, err)
	}
	time.Sleep(80 * time.Millisecond)
	_, b, err := getURL(t, srv.URL+"/p")
	<-done
	if err != nil || len(b) != 4096 {
		t.Errorf("the client got %d bytes of 4096 (read error %v)", len(b), err)
	}
}

// TestReview15bPanicMidStreamAbortsTheResponse: a handler that panics while
// its page over MaxBody is being sent: the client sees the response break
// off, as without the cache, not a short page that ends cleanly, even when
// fail-safe has a stale page to give GetOrSet's caller.
func TestReview15bPanicMidStreamAbortsTheResponse(t *testing.T) {
	c := openConfig(t, cache.Config{Enabled: true, StaleTTL: time.Hour})
	var runs atomic.Int32
	h := Middleware(c, Options{TTL: 50 * time.Millisecond, MaxBody: 1024})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if runs.Add(1) == 1 {
			_, _ = io.WriteString(w, "small")
			return
		}
		_, _ = io.WriteString(w, strings.Repeat("a", 2048))
		panic("boom mid-stream")
	}))
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = nil
	srv.Start()
	defer srv.Close()
	if _, b, err := getURL(t, srv.URL+"/p"); err != nil || b != "small" {
		t.Fatal(b, err)
	}
	time.Sleep(80 * time.Millisecond)
	if _, b, err := getURL(t, srv.URL+"/p"); err == nil && b != "small" {
		t.Errorf("a handler that panicked mid-page: the client got a clean %d-byte page", len(b))
	}
}

// TestReview15bLargeServerErrorKeepsTheStalePage: a 5xx page over MaxBody
// is a failure as any 5xx is: it does not replace the last good page,
// which stale_ttl serves to the requests after it; the request whose run
// it was gets it as the handler wrote it, and the handler runs once for
// it, with a stale page or without.
func TestReview15bLargeServerErrorKeepsTheStalePage(t *testing.T) {
	c := openConfig(t, cache.Config{Enabled: true, StaleTTL: time.Hour})
	var failing atomic.Bool
	var runs atomic.Int32
	h := Middleware(c, Options{TTL: 50 * time.Millisecond, MaxBody: 1024})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		if failing.Load() {
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, strings.Repeat("e", 2048))
			return
		}
		_, _ = io.WriteString(w, "good")
	}))
	get := func() (int, string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/p", nil))
		return w.Code, w.Body.String()
	}
	get()
	time.Sleep(80 * time.Millisecond)
	failing.Store(true)
	before := runs.Load()
	if code, b := get(); code != http.StatusBadGateway || len(b) != 2048 || runs.Load() != before+1 {
		t.Errorf("the request whose run failed: %d, %d bytes, %d runs; want its 502 whole, one run", code, len(b), runs.Load()-before)
	}
	for i := range 3 {
		if code, b := get(); code != 200 || b != "good" {
			t.Errorf("request %d after the large 502: %d, %d bytes; want the stale good page", i, code, len(b))
		}
	}
	// Without a stale page the request gets the handler's own answer, once.
	c2 := openMemory(t)
	runs.Store(0)
	h2 := Middleware(c2, Options{MaxBody: 1024})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, strings.Repeat("e", 2048))
	}))
	w := httptest.NewRecorder()
	h2.ServeHTTP(w, httptest.NewRequest("GET", "/p", nil))
	if w.Code != http.StatusBadGateway || w.Body.Len() != 2048 || runs.Load() != 1 {
		t.Errorf("a large 502 without a stale page: %d, %d bytes, %d runs; want the handler's 502 whole, one run", w.Code, w.Body.Len(), runs.Load())
	}
}

// TestDeleteOfAPageDropsEveryVariant: a page that varies (on
// Accept-Encoding here) is dropped whole by a Delete of its Key: a variant
// stored before it is not served after it, even once another variant has
// made the page again.
func TestDeleteOfAPageDropsEveryVariant(t *testing.T) {
	c := openMemory(t)
	var version atomic.Int32
	version.Store(1)
	h := Middleware(c, Options{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Vary", "Accept-Encoding")
		fmt.Fprintf(w, "v%d %s", version.Load(), r.Header.Get("Accept-Encoding"))
	}))
	get := func(enc string) string {
		r := httptest.NewRequest("GET", "/p", nil)
		if enc != "" {
			r.Header.Set("Accept-Encoding", enc)
		}
		_, b := serve(t, h, r)
		return b
	}
	for range 2 {
		if b := get("gzip"); b != "v1 gzip" {
			t.Fatalf("gzip: %q", b)
		}
		if b := get(""); b != "v1 " {
			t.Fatalf("identity: %q", b)
		}
	}
	if err := c.Delete(t.Context(), Key(httptest.NewRequest("GET", "/p", nil))); err != nil {
		t.Fatal(err)
	}
	version.Store(2)
	if b := get("gzip"); b != "v2 gzip" {
		t.Errorf("gzip after the Delete: %q, want v2 gzip", b)
	}
	if b := get(""); b != "v2 " {
		t.Errorf("identity after the Delete, once gzip made the page again: %q, want v2", b)
	}
}
