package httpcache

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
	_ "github.com/ushka-go/ushka/cache/redis"
	"github.com/ushka-go/ushka/internal/redistest"
)

// counted answers "run N", N its run count, and counts the calls of the
// route's Tags function, which only a request that reads the cache makes.
type counted struct {
	runs, tags atomic.Int32
	set        func(w http.ResponseWriter, r *http.Request)
}

func (p *counted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := p.runs.Add(1)
	if p.set != nil {
		p.set(w, r)
	}
	fmt.Fprintf(w, "run %d", n)
}

func (p *counted) handler(t *testing.T, c *cache.Cache, o Options) *handler {
	t.Helper()
	o.Tags = func(*http.Request) []string { p.tags.Add(1); return []string{"t"} }
	return Middleware(c, o)(p).(*handler)
}

func openMemory(t *testing.T) *cache.Cache {
	t.Helper()
	return openConfig(t, cache.Config{Enabled: true})
}

// openConfig opens the cache cfg describes, closed when the test ends.
func openConfig(t *testing.T, cfg cache.Config) *cache.Cache {
	t.Helper()
	c, err := cache.Open(context.Background(), cfg, cache.WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func serve(t *testing.T, h http.Handler, r *http.Request) (*http.Response, string) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	resp := w.Result()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// warm makes the page of target ready: a MISS, a HIT that keeps it, and a
// HIT served from the table without reading the cache.
func warm(t *testing.T, h *handler, p *counted, target string) {
	t.Helper()
	for i, want := range []string{"MISS", "HIT", "HIT"} {
		tags := p.tags.Load()
		resp, b := serve(t, h, httptest.NewRequest("GET", target, nil))
		if resp.Header.Get("X-Cache") != want || b != "run 1" {
			t.Fatalf("request %d: X-Cache %q, %q; want %s, run 1", i+1, resp.Header.Get("X-Cache"), b, want)
		}
		if i == 2 && p.tags.Load() != tags {
			t.Fatal("the third request read the cache: the page was not kept ready")
		}
	}
	if h.ready.find(httptest.NewRequest("GET", target, nil)) == nil {
		t.Fatal("no ready page after a HIT")
	}
}

// TestReadyPageFollowsTheCache: a page kept ready is never served once the
// cache's entry is gone or replaced, however that happened; the next
// request runs the handler.
func TestReadyPageFollowsTheCache(t *testing.T) {
	key := Key(httptest.NewRequest("GET", "/p?a=1", nil))
	for _, tc := range []struct {
		name string
		do   func(ctx context.Context, c *cache.Cache) error
	}{
		{"Delete of its key", func(ctx context.Context, c *cache.Cache) error { return c.Delete(ctx, key) }},
		{"Clear", func(ctx context.Context, c *cache.Cache) error { return c.Clear(ctx) }},
		{"InvalidateTags", func(ctx context.Context, c *cache.Cache) error { return c.InvalidateTags(ctx, "t") }},
		{"Delete in the store itself", func(ctx context.Context, c *cache.Cache) error { return c.Store().Delete(ctx, key) }},
		{"Set of its key", func(ctx context.Context, c *cache.Cache) error {
			return c.Set(ctx, key, "not a page", time.Minute)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := openMemory(t)
			p := &counted{}
			h := p.handler(t, c, Options{})
			warm(t, h, p, "/p?a=1")
			if err := tc.do(t.Context(), c); err != nil {
				t.Fatal(err)
			}
			if resp, b := serve(t, h, httptest.NewRequest("GET", "/p?a=1", nil)); b != "run 2" {
				t.Fatalf("after %s: %q, X-Cache %q; want the handler's run 2", tc.name, b, resp.Header.Get("X-Cache"))
			}
		})
	}
	t.Run("Close", func(t *testing.T) {
		c := openMemory(t)
		p := &counted{}
		h := p.handler(t, c, Options{})
		warm(t, h, p, "/p?a=1")
		_ = c.Close()
		if resp, b := serve(t, h, httptest.NewRequest("GET", "/p?a=1", nil)); b != "run 2" || resp.Header.Get("X-Cache") != "" {
			t.Fatalf("after Close: %q, X-Cache %q; want the handler alone", b, resp.Header.Get("X-Cache"))
		}
	})
	t.Run("ttl", func(t *testing.T) {
		c := openMemory(t)
		p := &counted{}
		h := p.handler(t, c, Options{TTL: 300 * time.Millisecond})
		warm(t, h, p, "/p?a=1")
		time.Sleep(350 * time.Millisecond)
		if resp, b := serve(t, h, httptest.NewRequest("GET", "/p?a=1", nil)); b != "run 2" {
			t.Fatalf("past the ttl: %q, X-Cache %q; want the handler's run 2", b, resp.Header.Get("X-Cache"))
		}
	})
}

// TestReadyPageIsAHit: a page served ready is the HIT a read would give:
// its headers, an Age, HEAD without a body, a 304 for a condition it
// satisfies, and a hit counted; requests with credentials still go to the
// handler.
func TestReadyPageIsAHit(t *testing.T) {
	c := openMemory(t)
	p := &counted{set: func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Content-Type", "text/plain")
	}}
	h := p.handler(t, c, Options{})
	warm(t, h, p, "/p")
	hits := c.Stats().Hits
	resp, b := serve(t, h, httptest.NewRequest("GET", "/p", nil))
	if b != "run 1" || resp.Header.Get("Content-Type") != "text/plain" || resp.Header.Get("Etag") != `"v1"` ||
		resp.Header.Get("Content-Length") != "5" || resp.Header.Get("Age") == "" || resp.Header.Get("X-Cache") != "HIT" {
		t.Errorf("ready page: %q, header %v", b, resp.Header)
	}
	if got := c.Stats().Hits - hits; got != 1 {
		t.Errorf("a ready page counted %d hits, want 1", got)
	}
	if resp, b := serve(t, h, httptest.NewRequest("HEAD", "/p", nil)); resp.StatusCode != 200 || b != "" || resp.Header.Get("Content-Length") != "5" {
		t.Errorf("HEAD: %d %q Content-Length %q; want 200, no body, 5", resp.StatusCode, b, resp.Header.Get("Content-Length"))
	}
	r := httptest.NewRequest("GET", "/p", nil)
	r.Header.Set("If-None-Match", `"v1"`)
	if resp, b := serve(t, h, r); resp.StatusCode != 304 || b != "" || resp.Header.Get("Content-Type") != "" {
		t.Errorf("If-None-Match: %d %q Content-Type %q; want 304 without body or type", resp.StatusCode, b, resp.Header.Get("Content-Type"))
	}
	r = httptest.NewRequest("GET", "/p", nil)
	r.AddCookie(&http.Cookie{Name: "session", Value: "s"})
	if _, b := serve(t, h, r); b != "run 2" {
		t.Errorf("a request with a cookie got %q, want the handler's run 2", b)
	}
	r = httptest.NewRequest("GET", "/p", nil)
	r.SetBasicAuth("u", "p")
	if _, b := serve(t, h, r); b != "run 3" {
		t.Errorf("a request with Authorization got %q, want the handler's run 3", b)
	}
	for i, set := range []func(r *http.Request){
		func(r *http.Request) { r.Header["cookie"] = []string{"session=s"} },
		func(r *http.Request) { r.Header["authorization"] = []string{"Bearer t"} },
		func(r *http.Request) { r.Header.Set("Range", "bytes=0-1") },
		func(r *http.Request) { r.Header.Set("Upgrade", "websocket") },
		func(r *http.Request) { r.Header.Set("Accept", "text/event-stream") },
	} {
		r := httptest.NewRequest("GET", "/p", nil)
		r.Header.Set("Accept-Language", "en") // a header of many fields
		set(r)
		if _, b := serve(t, h, r); b != fmt.Sprintf("run %d", 4+i) {
			t.Errorf("request %d (%v) got %q, want the handler's run %d", i, r.Header, b, 4+i)
		}
	}
	if p.runs.Load() != 8 {
		t.Errorf("handler ran %d times, want 8", p.runs.Load())
	}
}

// TestReadyPageHeaderIsEachResponsesOwn: a handler outside the cache that
// changes a header value in place changes its own response only.
func TestReadyPageHeaderIsEachResponsesOwn(t *testing.T) {
	c := openMemory(t)
	p := &counted{set: func(w http.ResponseWriter, _ *http.Request) { w.Header().Set("Content-Type", "text/plain") }}
	h := p.handler(t, c, Options{})
	warm(t, h, p, "/p")
	outer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		for _, k := range []string{"Content-Type", "X-Cache", "Age", "Content-Length"} {
			if v := w.Header()[k]; len(v) > 0 {
				v[0] = "changed"
			}
		}
	})
	serve(t, outer, httptest.NewRequest("GET", "/p", nil))
	resp, _ := serve(t, h, httptest.NewRequest("GET", "/p", nil))
	for _, k := range []string{"Content-Type", "X-Cache", "Age", "Content-Length"} {
		if resp.Header.Get(k) == "changed" {
			t.Errorf("%s of the next response is what another response's handler wrote in place", k)
		}
	}
}

// TestReadyPagesHoldBoundedBytes: many large pages do not make the table
// hold more than readyBytes of entries.
func TestReadyPagesHoldBoundedBytes(t *testing.T) {
	c := openMemory(t)
	big := strings.Repeat("x", 900<<10)
	p := &counted{set: func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, big) }}
	h := p.handler(t, c, Options{})
	kept := 0
	for i := range 40 {
		target := "/big?n=" + strconv.Itoa(i)
		serve(t, h, httptest.NewRequest("GET", target, nil))
		serve(t, h, httptest.NewRequest("GET", target, nil))
		if h.ready.find(httptest.NewRequest("GET", target, nil)) != nil {
			kept++
		}
		if held := h.ready.held.Load(); held > readyBytes {
			t.Fatalf("after %d pages the table holds %d bytes, over %d", i+1, held, readyBytes)
		}
	}
	if kept < 30 {
		t.Errorf("only %d of 40 pages were kept ready as they were read", kept)
	}
}

// TestReadyPageNeverOutlivesAnInvalidation races requests with a writer
// that bumps the page's version and deletes its key: a request that began
// after a Delete returned gets a page rendered at or after that version,
// never one kept ready from before. Run with -race.
func TestReadyPageNeverOutlivesAnInvalidation(t *testing.T) {
	c := openMemory(t)
	var version, deleted atomic.Int64
	h := Middleware(c, Options{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%d", version.Load())
	}))
	key := Key(httptest.NewRequest("GET", "/p", nil))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var bad atomic.Int64
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				d := deleted.Load()
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest("GET", "/p", nil))
				if n, _ := strconv.ParseInt(w.Body.String(), 10, 64); n < d {
					bad.Add(1)
				}
			}
		})
	}
	for i := int64(1); i <= 2000; i++ {
		version.Store(i)
		if err := c.Delete(t.Context(), key); err != nil {
			t.Fatal(err)
		}
		deleted.Store(i)
		if i%50 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	close(stop)
	wg.Wait()
	if n := bad.Load(); n > 0 {
		t.Errorf("%d responses were rendered before a Delete that returned before their request began", n)
	}
}

// TestNoReadyPagesOverRedis: over Redis, other workers' writes are not
// seen in this process, so no page is kept ready: a Delete by another
// worker is seen by the next request.
func TestNoReadyPagesOverRedis(t *testing.T) {
	srv := redistest.Start(t)
	open := func() *cache.Cache {
		c, err := cache.Open(t.Context(), cache.Config{Enabled: true, Backend: "redis", RedisURL: cache.SecretURL("redis://" + srv.Addr), Timeout: 2 * time.Second}, cache.WithLogger(nil))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := open(), open()
	p := &counted{}
	h := p.handler(t, a, Options{})
	hits := 0
	for deadline := time.Now().Add(5 * time.Second); hits < 3 && time.Now().Before(deadline); {
		// The MISS's page is stored after it is sent: HITs come once it lands.
		if resp, _ := serve(t, h, httptest.NewRequest("GET", "/p", nil)); resp.Header.Get("X-Cache") == "HIT" {
			hits++
		}
	}
	if hits < 3 {
		t.Fatal("no three HITs in 5s")
	}
	if h.ready.find(httptest.NewRequest("GET", "/p", nil)) != nil {
		t.Fatal("a page read from Redis was kept ready")
	}
	if err := b.Delete(t.Context(), Key(httptest.NewRequest("GET", "/p", nil))); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("run %d", p.runs.Load()+1)
	if _, body := serve(t, h, httptest.NewRequest("GET", "/p", nil)); body != want {
		t.Fatalf("after another worker's Delete: %q, want %s", body, want)
	}
}
