package httpcache_test

import (
	"context"

	"fmt"
	"github.com/ushka-go/ushka/cache"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ushka-go/ushka/httpcache"
)

// A response found through a Vary marker (the variant path) is stored under
// the marker's variant key even when it varies on more headers than the
// marker names: tenant A's page is then served to tenant B.
func TestReview14VariantVariesOnMore(t *testing.T) {
	p := &page{set: func(w http.ResponseWriter, r *http.Request) {
		if ten := r.Header.Get("X-Tenant"); ten != "" {
			w.Header().Set("Vary", "Accept-Encoding, X-Tenant")
			fmt.Fprintf(w, "private data of tenant %s; ", ten)
			return
		}
		w.Header().Set("Vary", "Accept-Encoding")
	}}
	h := httpcache.Middleware(newCache(t), httpcache.Options{})(p)
	req := func(tenant string) *http.Request {
		r := httptest.NewRequest("GET", "/p", nil)
		r.Header.Set("Accept-Encoding", "gzip")
		if tenant != "" {
			r.Header.Set("X-Tenant", tenant)
		}
		return r
	}
	// The anonymous page: a marker that says Accept-Encoding.
	body(t, do(t, h, httptest.NewRequest("GET", "/p", nil)))
	// Tenant A, then tenant B.
	a := body(t, do(t, h, req("A")))
	resp := do(t, h, req("B"))
	b := body(t, resp)
	if strings.Contains(b, "tenant A") {
		t.Fatalf("tenant B was served tenant A's page %q (X-Cache %q; tenant A got %q)", b, resp.Header.Get("X-Cache"), a)
	}
}

// Response header fields set straight in the map with a non-canonical key
// (w.Header()["set-cookie"] = ...) are written to the client as they are,
// and HTTP field names are case-insensitive: the client sees a Set-Cookie, a
// Cache-Control: private or a Vary. storable and varyOn look only under
// the canonical keys.
func TestReview14NonCanonicalResponseHeaders(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(w http.ResponseWriter, r *http.Request)
	}{
		{"set-cookie", func(w http.ResponseWriter, r *http.Request) {
			w.Header()["set-cookie"] = []string{"session=" + r.URL.Query().Get("who")}
		}},
		{"cache-control private", func(w http.ResponseWriter, r *http.Request) {
			w.Header()["cache-control"] = []string{"private"}
			fmt.Fprintf(w, "account of %s; ", r.URL.Query().Get("who"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &page{set: tc.set}
			h := httpcache.Middleware(newCache(t), httpcache.Options{})(p)
			srv := httptest.NewServer(h)
			defer srv.Close()
			get := func(who string) (*http.Response, string) {
				resp, err := http.Get(srv.URL + "/p?who=x")
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				return resp, body(t, resp)
			}
			get("alice")
			resp, b := get("bob")
			if resp.Header.Get("X-Cache") == "HIT" {
				t.Fatalf("second client served from the cache: %q, Set-Cookie %q, Cache-Control %q", b, resp.Header.Get("Set-Cookie"), resp.Header.Get("Cache-Control"))
			}
		})
	}
	t.Run("vary", func(t *testing.T) {
		p := &page{set: func(w http.ResponseWriter, r *http.Request) {
			w.Header()["vary"] = []string{"Accept-Language"}
			w.Header().Set("Content-Language", r.Header.Get("Accept-Language"))
		}}
		h := httpcache.Middleware(newCache(t), httpcache.Options{})(p)
		r1 := httptest.NewRequest("GET", "/p", nil)
		r1.Header.Set("Accept-Language", "en")
		body(t, do(t, h, r1))
		r2 := httptest.NewRequest("GET", "/p", nil)
		r2.Header.Set("Accept-Language", "fr")
		if resp := do(t, h, r2); resp.Header.Get("Content-Language") != "fr" {
			t.Fatalf("Accept-Language fr served Content-Language %q (X-Cache %q)", resp.Header.Get("Content-Language"), resp.Header.Get("X-Cache"))
		}
	})
}

// has() says it handles "a request built by hand, with a key not
// canonical", but Header.Get canonicalises its argument and so never finds
// a non-canonical key either.
func TestReview14NonCanonicalRequestCredentials(t *testing.T) {
	p := &page{set: func(w http.ResponseWriter, r *http.Request) {
		for k, v := range r.Header {
			if strings.EqualFold(k, "Authorization") {
				fmt.Fprintf(w, "hello %s; ", v[0])
			}
		}
	}}
	h := httpcache.Middleware(newCache(t), httpcache.Options{})(p)
	req := func(tok string) *http.Request {
		r := httptest.NewRequest("GET", "/p", nil)
		r.Header["authorization"] = []string{tok}
		return r
	}
	body(t, do(t, h, req("Bearer alice")))
	resp := do(t, h, req("Bearer bob"))
	if b := body(t, resp); strings.Contains(b, "alice") {
		t.Fatalf("bob got %q (X-Cache %q)", b, resp.Header.Get("X-Cache"))
	}
}

// A client that goes away while its request is the one running the
// handler: GetOrSet returns its context's error at once while the load
// goes on; lookup reads run.own/run.ran (written by the load goroutine),
// and ServeHTTP then runs the handler a second time for the gone client.
func TestReview14ClientGoneWhileLoading(t *testing.T) {
	release := make(chan struct{})
	var runs atomic.Int32
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := runs.Add(1)
		if n == 1 {
			<-release
		}
		w.Header().Set("Set-Cookie", "s=1") // not stored: run.own is written
		fmt.Fprint(w, "x")
	})
	h := httpcache.Middleware(newCache(t), httpcache.Options{})(next)
	ctx, cancel := context.WithCancel(context.Background())
	r := httptest.NewRequest("GET", "/p", nil).WithContext(ctx)
	done := make(chan struct{})
	go func() { defer close(done); h.ServeHTTP(httptest.NewRecorder(), r) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	time.Sleep(20 * time.Millisecond)
	close(release)
	<-done
	time.Sleep(20 * time.Millisecond)
	if n := runs.Load(); n != 1 {
		t.Fatalf("one request whose client went away ran the handler %d times", n)
	}
}

// A browser's revalidation that happens to start the load: a handler that
// answers conditional requests itself (http.ServeContent, FileServer)
// answers 304, which is not storable, so a pass marker is stored and the
// page is not cached for anyone for the route's TTL.
func TestReview14ConditionalMissPoisonsPage(t *testing.T) {
	var runs atomic.Int32
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		http.ServeContent(w, r, "p.html", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), strings.NewReader("<p>page</p>"))
	})
	h := httpcache.Middleware(newCache(t), httpcache.Options{TTL: time.Hour})(next)
	r := httptest.NewRequest("GET", "/p", nil)
	r.Header.Set("If-Modified-Since", time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC).Format(http.TimeFormat))
	if resp := do(t, h, r); resp.StatusCode != 304 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for range 3 {
		body(t, do(t, h, httptest.NewRequest("GET", "/p", nil)))
	}
	if n := runs.Load(); n > 2 {
		t.Fatalf("after one 304 from the handler, 3 plain GETs ran the handler: %d runs in all (page not cached for the TTL)", n)
	}
}

// 103 Early Hints before the 200: the recorder keeps the first status, so
// the page is recorded as a 103, never stored (pass marker), and the
// client of the miss gets a 103 from writeResponse.
func TestReview14EarlyHints(t *testing.T) {
	var runs atomic.Int32
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		w.Header().Set("Link", "</style.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, "page")
	})
	h := httpcache.Middleware(newCache(t), httpcache.Options{})(next)
	srv := httptest.NewServer(h)
	defer srv.Close()
	for range 2 {
		resp, err := http.Get(srv.URL + "/p")
		if err != nil {
			t.Fatal(err)
		}
		body(t, resp)
		resp.Body.Close()
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("a 200 page sent after 103 Early Hints: handler ran %d times for 2 GETs, want 1 (stored)", n)
	}
}

// A body over MaxBody is "passed on", but only after the handler has
// returned: the whole of it is buffered in memory first, and nothing
// reaches the client meanwhile (a download or a long page behind a
// wrapped mux).
func TestReview14OverflowBuffersEverything(t *testing.T) {
	release := make(chan struct{})
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(make([]byte, 64))
		<-release
	})
	h := httpcache.Middleware(newCache(t), httpcache.Options{MaxBody: 16})(next)
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer close(release)
	client := &http.Client{Timeout: 500 * time.Millisecond}
	resp, err := client.Get(srv.URL + "/big")
	if err != nil {
		t.Fatalf("no response header within 500ms although the handler wrote 64 bytes > MaxBody 16: %v", err)
	}
	resp.Body.Close()
}

// The recorder is no http.Flusher: a streaming handler (SSE) cannot flush.
func TestReview14Flush(t *testing.T) {
	var flushErr error
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: 1\n\n")
		flushErr = http.NewResponseController(w).Flush()
	})
	h := httpcache.Middleware(newCache(t), httpcache.Options{})(next)
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	body(t, resp)
	resp.Body.Close()
	if flushErr != nil {
		t.Fatalf("Flush through the middleware: %v", flushErr)
	}
}

// A handler that panics: the panic is re-raised in each waiting request;
// does the handler run again?
func TestReview14Panic(t *testing.T) {
	var runs atomic.Int32
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		panic("boom")
	})
	h := httpcache.Middleware(newCache(t), httpcache.Options{})(next)
	var wg sync.WaitGroup
	func() {
		defer func() { recover() }()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/p", nil))
	}()
	wg.Wait()
	if n := runs.Load(); n != 1 {
		t.Fatalf("a panicking handler ran %d times for one request", n)
	}
}

// Key lower-cases the host with strings.ToLower, which maps every invalid
// UTF-8 byte to U+FFFD and "İ" to "i̇": two different hosts share a key.
func TestReview14HostLowerCollision(t *testing.T) {
	for _, pair := range [][2]string{{"\xff.example", "\xfe.example"}, {"İ.example", "i.example"}} {
		r1 := httptest.NewRequest("GET", "/p", nil)
		r1.Host = pair[0]
		r2 := httptest.NewRequest("GET", "/p", nil)
		r2.Host = pair[1]
		if httpcache.Key(r1) == httpcache.Key(r2) {
			t.Errorf("hosts %q and %q share the key %q", pair[0], pair[1], httpcache.Key(r1))
		}
	}
}

// One page, two keys: the fast path keeps "a=1=2" as it is, the slow one
// writes the same parameters as "a=1%3D2" (FuzzKey's "same" case).
func TestReview14QuerySplit(t *testing.T) {
	r1 := httptest.NewRequest("GET", "/p?a=1=2", nil)
	r2 := httptest.NewRequest("GET", "/p?a=1%3D2", nil)
	if httpcache.Key(r1) != httpcache.Key(r2) {
		t.Errorf("same parameters, two keys:\n%q\n%q", httpcache.Key(r1), httpcache.Key(r2))
	}
}

// With stale_ttl, a pass marker past its ttl whose handler now fails is
// "served stale": ServeHTTP finds a pass marker and runs the handler a
// second time for the same request.
func TestReview14StalePassMarkerRunsTwice(t *testing.T) {
	c, err := cache.Open(t.Context(), cache.Config{Enabled: true}, cache.WithLogger(nil),
		cache.WithGetOrSetDefaults(cache.StaleFor(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var failing atomic.Bool
	var runs atomic.Int32
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		if failing.Load() {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.Header().Set("Set-Cookie", "s=1")
	})
	h := httpcache.Middleware(c, httpcache.Options{TTL: 50 * time.Millisecond})(next)
	do(t, h, httptest.NewRequest("GET", "/p", nil)) // a pass marker
	time.Sleep(80 * time.Millisecond)
	failing.Store(true)
	runs.Store(0)
	resp := do(t, h, httptest.NewRequest("GET", "/p", nil))
	if n := runs.Load(); n != 1 {
		t.Fatalf("one request to a failing handler ran it %d times (status %d, X-Cache %q)", n, resp.StatusCode, resp.Header.Get("X-Cache"))
	}
}
