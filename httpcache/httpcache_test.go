package httpcache_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/httpcache"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newCache(t testing.TB) *cache.Cache {
	t.Helper()
	c, err := cache.Open(context.Background(), cache.Config{Enabled: true}, cache.WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// page is a handler that counts its runs and answers with the run number,
// after setting the headers set does.
type page struct {
	runs atomic.Int32
	set  func(w http.ResponseWriter, r *http.Request)
}

func (p *page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := p.runs.Add(1)
	if p.set != nil {
		p.set(w, r)
	}
	fmt.Fprintf(w, "run %d", n)
}

func do(t *testing.T, h http.Handler, req *http.Request) *http.Response {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Result()
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRules is every storage rule, each shown by two requests: whether the
// second is served from the cache (the handler ran once) or not.
func TestRules(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   httpcache.Options
		set    func(w http.ResponseWriter, r *http.Request)
		req    func() *http.Request
		stored bool
	}{
		{name: "GET 200 is stored", stored: true},
		{name: "404 is stored", set: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(404) }, stored: true},
		{name: "301 is stored", set: func(w http.ResponseWriter, _ *http.Request) { w.Header().Set("Location", "/x"); w.WriteHeader(301) }, stored: true},
		{name: "500 is not", set: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) }},
		{name: "302 is not", set: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(302) }},
		{name: "POST is not", req: func() *http.Request { return httptest.NewRequest("POST", "/p", nil) }},
		{name: "Set-Cookie is not", set: func(w http.ResponseWriter, _ *http.Request) {
			http.SetCookie(w, &http.Cookie{Name: "session", Value: "secret-of-user-1"})
		}},
		{name: "Set-Cookie with the route's opt-in is", opts: httpcache.Options{StoreSetCookie: true}, set: func(w http.ResponseWriter, _ *http.Request) {
			http.SetCookie(w, &http.Cookie{Name: "lang", Value: "en"})
		}, stored: true},
		{name: "Cache-Control private is not", set: cc("private, max-age=60")},
		{name: "Cache-Control no-store is not", set: cc("no-store")},
		{name: "Cache-Control no-cache is not", set: cc("no-cache")},
		{name: "Cache-Control private with StorePrivate is", opts: httpcache.Options{StorePrivate: true}, set: cc("private"), stored: true},
		{name: "max-age=0 is not", set: cc("max-age=0")},
		{name: "Vary * is not", set: func(w http.ResponseWriter, _ *http.Request) { w.Header().Set("Vary", "*") }},
		{name: "a request with a Cookie is not served or stored", req: func() *http.Request {
			r := httptest.NewRequest("GET", "/p", nil)
			r.AddCookie(&http.Cookie{Name: "session", Value: "abc"})
			return r
		}},
		{name: "a request with a Cookie, with the opt-in, is", opts: httpcache.Options{CacheCookieRequests: true}, req: func() *http.Request {
			r := httptest.NewRequest("GET", "/p", nil)
			r.AddCookie(&http.Cookie{Name: "consent", Value: "yes"})
			return r
		}, stored: true},
		{name: "a request with Authorization is not", req: func() *http.Request {
			r := httptest.NewRequest("GET", "/p", nil)
			r.SetBasicAuth("alice", "pw")
			return r
		}},
		{name: "a Range request is not", req: func() *http.Request {
			r := httptest.NewRequest("GET", "/p", nil)
			r.Header.Set("Range", "bytes=0-1")
			return r
		}},
		{name: "a body over MaxBody is not", opts: httpcache.Options{MaxBody: 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &page{set: tc.set}
			h := httpcache.Middleware(newCache(t), tc.opts)(p)
			req := tc.req
			if req == nil {
				req = func() *http.Request { return httptest.NewRequest("GET", "/p", nil) }
			}
			first := do(t, h, req())
			b1 := body(t, first)
			second := do(t, h, req())
			b2 := body(t, second)
			if got := p.runs.Load() == 1; got != tc.stored {
				t.Fatalf("handler ran %d times for two requests (bodies %q, %q; X-Cache %q, %q): stored = %v, want %v",
					p.runs.Load(), b1, b2, first.Header.Get("X-Cache"), second.Header.Get("X-Cache"), got, tc.stored)
			}
			if tc.stored && (b1 != b2 || second.Header.Get("X-Cache") != "HIT" || first.StatusCode != second.StatusCode) {
				t.Fatalf("second response %d %q X-Cache %q, want the first's (%d %q) with HIT", second.StatusCode, b2, second.Header.Get("X-Cache"), first.StatusCode, b1)
			}
			if !tc.stored && strings.Contains(b2, "run 1") {
				t.Fatalf("the second request was served the first's response %q", b2)
			}
		})
	}
}

func cc(v string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) { w.Header().Set("Cache-Control", v) }
}

// TestSetCookieNeverReachesAnotherClient: concurrent requests for a page
// that sets a session cookie each get their own, never another's.
func TestSetCookieNeverReachesAnotherClient(t *testing.T) {
	p := &page{set: func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond)
		http.SetCookie(w, &http.Cookie{Name: "session", Value: r.URL.Query().Get("who")})
	}}
	h := httpcache.Middleware(newCache(t), httpcache.Options{})(p)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			who := fmt.Sprint("user", i)
			resp := do(t, h, httptest.NewRequest("GET", "/p?who="+who, nil))
			for _, c := range resp.Cookies() {
				if c.Value != who {
					t.Errorf("%s received the cookie %q", who, c.Value)
				}
			}
		})
	}
	// The same URL from many clients: each sets its own cookie.
	for i := range 20 {
		wg.Go(func() {
			resp := do(t, h, httptest.NewRequest("GET", "/same?who=x", nil))
			_ = resp
			_ = i
		})
	}
	wg.Wait()
}

// TestMaxAgeAndTTL: s-maxage, then max-age, then the route's TTL decide how
// long a page stays.
func TestMaxAgeAndTTL(t *testing.T) {
	p := &page{set: cc("public, max-age=1")}
	h := httpcache.Middleware(newCache(t), httpcache.Options{TTL: time.Hour})(p)
	body(t, do(t, h, httptest.NewRequest("GET", "/p", nil)))
	if r := do(t, h, httptest.NewRequest("GET", "/p", nil)); r.Header.Get("X-Cache") != "HIT" {
		t.Fatal("not stored")
	}
	time.Sleep(1100 * time.Millisecond)
	if r := do(t, h, httptest.NewRequest("GET", "/p", nil)); r.Header.Get("X-Cache") == "HIT" || p.runs.Load() != 2 {
		t.Fatalf("a page with max-age=1 still served from the cache after 1.1s (the route's TTL is an hour)")
	}
}

// TestVaryKeepsVariantsApart: a response that varies on Accept-Encoding
// (and Accept-Language) is stored per value: gzip and identity, or two
// languages, never mix; each variant is then a HIT.
func TestVaryKeepsVariantsApart(t *testing.T) {
	p := &page{set: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Vary", "Accept-Encoding, Accept-Language")
		w.Header().Set("Content-Language", r.Header.Get("Accept-Language"))
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
		}
	}}
	h := httpcache.Middleware(newCache(t), httpcache.Options{})(p)
	req := func(enc, lang string) *http.Request {
		r := httptest.NewRequest("GET", "/p", nil)
		if enc != "" {
			r.Header.Set("Accept-Encoding", enc)
		}
		r.Header.Set("Accept-Language", lang)
		return r
	}
	for round := range 2 {
		for _, v := range []struct{ enc, lang string }{{"gzip", "en"}, {"", "en"}, {"gzip", "fr"}} {
			resp := do(t, h, req(v.enc, v.lang))
			gz := resp.Header.Get("Content-Encoding") == "gzip"
			if gz != (v.enc == "gzip") || resp.Header.Get("Content-Language") != v.lang {
				t.Fatalf("round %d, Accept-Encoding %q, Accept-Language %q: got Content-Encoding %q, Content-Language %q: variants mixed",
					round, v.enc, v.lang, resp.Header.Get("Content-Encoding"), resp.Header.Get("Content-Language"))
			}
			if round == 1 && resp.Header.Get("X-Cache") != "HIT" {
				t.Errorf("round 2, %q %q: X-Cache %q, want HIT", v.enc, v.lang, resp.Header.Get("X-Cache"))
			}
		}
	}
	if n := p.runs.Load(); n != 3 {
		t.Errorf("handler ran %d times for 3 variants asked twice, want 3", n)
	}
}

// TestConditionalAndHEAD: If-None-Match and If-Modified-Since are answered
// 304 from the stored page; HEAD is served from the GET's page without a
// body, and a HEAD miss goes to the handler without storing anything.
func TestConditionalAndHEAD(t *testing.T) {
	lm := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	p := &page{set: func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Last-Modified", lm.Format(http.TimeFormat))
	}}
	h := httpcache.Middleware(newCache(t), httpcache.Options{})(p)
	if r := do(t, h, httptest.NewRequest("HEAD", "/p", nil)); r.Header.Get("X-Cache") != "" || p.runs.Load() != 1 {
		t.Fatalf("a HEAD miss: X-Cache %q, %d runs; want the handler, uncached", r.Header.Get("X-Cache"), p.runs.Load())
	}
	body(t, do(t, h, httptest.NewRequest("GET", "/p", nil)))
	r := httptest.NewRequest("GET", "/p", nil)
	r.Header.Set("If-None-Match", `W/"v0", "v1"`)
	if resp := do(t, h, r); resp.StatusCode != 304 || body(t, resp) != "" || resp.Header.Get("ETag") != `"v1"` {
		t.Errorf("If-None-Match of the stored ETag: %d, want 304 with the ETag and no body", resp.StatusCode)
	}
	r = httptest.NewRequest("GET", "/p", nil)
	r.Header.Set("If-None-Match", `"v0"`)
	if resp := do(t, h, r); resp.StatusCode != 200 || body(t, resp) != "run 2" {
		t.Errorf("If-None-Match of another ETag: %d, want 200 and the page", resp.StatusCode)
	}
	r = httptest.NewRequest("GET", "/p", nil)
	r.Header.Set("If-Modified-Since", lm.Add(time.Hour).Format(http.TimeFormat))
	if resp := do(t, h, r); resp.StatusCode != 304 {
		t.Errorf("If-Modified-Since after Last-Modified: %d, want 304", resp.StatusCode)
	}
	resp := do(t, h, httptest.NewRequest("HEAD", "/p", nil))
	if resp.StatusCode != 200 || body(t, resp) != "" || resp.Header.Get("X-Cache") != "HIT" || resp.Header.Get("Content-Length") != "5" {
		t.Errorf("HEAD after a GET: %d, X-Cache %q, Content-Length %q; want 200, HIT, the GET's length, no body",
			resp.StatusCode, resp.Header.Get("X-Cache"), resp.Header.Get("Content-Length"))
	}
	if p.runs.Load() != 2 {
		t.Errorf("handler ran %d times, want 2 (a HEAD miss and one GET)", p.runs.Load())
	}
}

// TestStampede: 50 concurrent requests for one page run the handler once;
// all get the same body; the ones that waited are MISS, later ones HIT with
// an Age.
func TestStampede(t *testing.T) {
	gate := make(chan struct{})
	p := &page{set: func(http.ResponseWriter, *http.Request) { <-gate }}
	h := httpcache.Middleware(newCache(t), httpcache.Options{})(p)
	var wg sync.WaitGroup
	bodies := make(chan string, 50)
	for range 50 {
		wg.Go(func() { bodies <- body(t, do(t, h, httptest.NewRequest("GET", "/p?b=2&a=1", nil))) })
	}
	time.Sleep(50 * time.Millisecond)
	close(gate)
	wg.Wait()
	close(bodies)
	for b := range bodies {
		if b != "run 1" {
			t.Fatalf("a request got %q, want run 1", b)
		}
	}
	resp := do(t, h, httptest.NewRequest("GET", "/p?a=1&b=2", nil)) // the same query in another order
	if p.runs.Load() != 1 || resp.Header.Get("X-Cache") != "HIT" || resp.Header.Get("Age") == "" {
		t.Fatalf("%d runs; the reordered query: X-Cache %q Age %q; want one run and a HIT with an Age", p.runs.Load(), resp.Header.Get("X-Cache"), resp.Header.Get("Age"))
	}
}

// TestTagsInvalidatePages: a route's tags let InvalidateTags drop its pages.
func TestTagsInvalidatePages(t *testing.T) {
	c := newCache(t)
	p := &page{}
	h := httpcache.Middleware(c, httpcache.Options{Tags: func(*http.Request) []string { return []string{"pages"} }})(p)
	body(t, do(t, h, httptest.NewRequest("GET", "/p", nil)))
	body(t, do(t, h, httptest.NewRequest("GET", "/p", nil)))
	if err := c.InvalidateTags(t.Context(), "pages"); err != nil {
		t.Fatal(err)
	}
	if b := body(t, do(t, h, httptest.NewRequest("GET", "/p", nil))); b != "run 2" {
		t.Fatalf("after InvalidateTags the page is %q, want run 2", b)
	}
}

// FuzzKey: two requests whose scheme, host (any case), path or query
// parameters (in any order) differ never share a key, and two that differ
// only in host case or parameter order do.
func FuzzKey(f *testing.F) {
	f.Add("a.example", "/p", "x=1&y=2", "a.example", "/p", "y=2&x=1")
	f.Add("a", "/b/c", "", "a/b", "/c", "")
	f.Add("h", "/p", "a=1&a=2", "h", "/p", "a=2&a=1")
	f.Add("h", "/p%3Fq", "", "h", "/p", "q")
	f.Add("\xff.example", "/p", "", "\xfe.example", "/p", "")
	f.Add("İ.example", "/p", "", "i.example", "/p", "")
	f.Add("h", "/p", "a=1=2", "h", "/p", "a=1%3D2")
	f.Fuzz(func(t *testing.T, host1, path1, q1, host2, path2, q2 string) {
		r1, r2 := request(host1, path1, q1), request(host2, path2, q2)
		if r1 == nil || r2 == nil {
			return
		}
		same := asciiFold(r1.Host) == asciiFold(r2.Host) && r1.URL.EscapedPath() == r2.URL.EscapedPath() && sameQuery(r1.URL.RawQuery, r2.URL.RawQuery)
		if k1, k2 := httpcache.Key(r1), httpcache.Key(r2); (k1 == k2) != same {
			t.Fatalf("requests %s%s?%s and %s%s?%s: keys equal %v, want %v\n%q\n%q",
				r1.Host, r1.URL.EscapedPath(), r1.URL.RawQuery, r2.Host, r2.URL.EscapedPath(), r2.URL.RawQuery, k1 == k2, same, k1, k2)
		}
	})
}

// asciiFold lower-cases ASCII letters only: hosts that differ in any other
// byte are different hosts (strings.EqualFold would take "\xff" and "\xfe"
// for one).
func asciiFold(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func request(host, path, query string) *http.Request {
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	r, err := http.NewRequest("GET", "http://placeholder"+path, nil)
	if err != nil || r.URL.Host != "placeholder" {
		return nil
	}
	r.Host = host
	r.URL.RawQuery = query
	return r
}

// sameQuery reports whether two queries hold the same parameters, each
// name's values in the same order, or are the same text when either does
// not parse.
func sameQuery(a, b string) bool {
	va, ea := parse(a)
	vb, eb := parse(b)
	if ea != nil || eb != nil {
		return ea != nil && eb != nil && a == b
	}
	if len(va) != len(vb) {
		return false
	}
	for k, xs := range va {
		ys := vb[k]
		if len(xs) != len(ys) {
			return false
		}
		for i := range xs {
			if xs[i] != ys[i] {
				return false
			}
		}
	}
	return true
}

func parse(q string) (url.Values, error) { return url.ParseQuery(q) }

// TestStaleIfError: with the cache's stale_ttl, a page past its ttl whose
// handler now fails (5xx) is served from the cache, X-Cache: STALE; without
// a stored page, the request gets the handler's own 5xx.
func TestStaleIfError(t *testing.T) {
	c, err := cache.Open(t.Context(), cache.Config{Enabled: true}, cache.WithLogger(nil),
		cache.WithGetOrSetDefaults(cache.StaleFor(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var failing atomic.Bool
	p := &page{set: func(w http.ResponseWriter, _ *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusBadGateway)
		}
	}}
	h := httpcache.Middleware(c, httpcache.Options{TTL: 50 * time.Millisecond})(p)
	if b := body(t, do(t, h, httptest.NewRequest("GET", "/p", nil))); b != "run 1" {
		t.Fatal(b)
	}
	time.Sleep(80 * time.Millisecond)
	failing.Store(true)
	resp := do(t, h, httptest.NewRequest("GET", "/p", nil))
	if b := body(t, resp); resp.StatusCode != 200 || b != "run 1" || resp.Header.Get("X-Cache") != "STALE" {
		t.Fatalf("a failing handler past the ttl: %d %q X-Cache %q; want the last good page, STALE", resp.StatusCode, b, resp.Header.Get("X-Cache"))
	}
	resp = do(t, h, httptest.NewRequest("GET", "/other", nil))
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("a failing handler with nothing stored: %d, want its own 502", resp.StatusCode)
	}
}
