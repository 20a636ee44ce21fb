package bench

import (
	"bytes"
	"context"
	"html/template"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/httpcache"
)

// pageSize is the body every peer of BenchmarkHTTPCache writes.
const pageSize = 4096

// pageTemplate is a small product-list page. html/template escapes every
// field, as a real page's would be.
var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body><h1>{{.Title}}</h1>
<table>{{range .Items}}
<tr><td>{{.ID}}</td><td><a href="/items/{{.ID}}">{{.Name}}</a></td><td>{{printf "%.2f" .Price}}</td><td>{{if .InStock}}in stock{{else}}sold out{{end}}</td></tr>{{end}}
</table>
<p class="filler">{{.Filler}}</p>
</body></html>
`))

type pageItem struct {
	ID      int
	Name    string
	Price   float64
	InStock bool
}

type pageData struct {
	Title  string
	Items  []pageItem
	Filler string
}

// newPageData returns the data the page is rendered from: 30 items, and
// filler text that brings the rendered body to exactly pageSize bytes.
func newPageData(tb testing.TB) pageData {
	d := pageData{Title: "Catalogue & prices"}
	for i := range 30 {
		d.Items = append(d.Items, pageItem{ID: 1000 + i, Name: "Item <" + strconv.Itoa(i) + "> of the catalogue", Price: float64(i)*3.25 + 0.99, InStock: i%3 != 0})
	}
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, d); err != nil {
		tb.Fatal(err)
	}
	if buf.Len() > pageSize {
		tb.Fatalf("page renders to %d bytes without filler, over %d", buf.Len(), pageSize)
	}
	d.Filler = strings.Repeat("x", pageSize-buf.Len())
	return d
}

// renderHandler is the uncached handler: on every request it renders the
// page from its data with html/template into a fresh buffer, then writes
// it with Content-Type and Content-Length, as a typical server-rendered
// page does.
func renderHandler(d pageData) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var buf bytes.Buffer
		buf.Grow(pageSize)
		if err := pageTemplate.Execute(&buf, d); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Length", strconv.Itoa(buf.Len()))
		_, _ = w.Write(buf.Bytes())
	})
}

// staticHandler writes the same page, rendered once beforehand, with the
// same headers: the floor of serving 4 KiB through net/http's interfaces.
func staticHandler(page []byte) http.Handler {
	size := strconv.Itoa(len(page))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Length", size)
		_, _ = w.Write(page)
	})
}

// discardWriter is the ResponseWriter of BenchmarkHTTPCache: it keeps the
// status and the number of body bytes and drops the body, and reuses one
// header map, cleared before each request. httptest.ResponseRecorder is
// not used because it allocates a header map and a body buffer per
// request and copies the body into it, a cost of the recorder, not of the
// handler, that would be of the order of the static handler itself; the
// discardWriter's cost is small and the same for every peer.
type discardWriter struct {
	header http.Header
	status int
	n      int
}

func newDiscardWriter() *discardWriter { return &discardWriter{header: http.Header{}} }

func (w *discardWriter) reset() {
	clear(w.header)
	w.status, w.n = 0, 0
}

func (w *discardWriter) Header() http.Header { return w.header }

func (w *discardWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *discardWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.n += len(p)
	return len(p), nil
}

// browserHeaders are the request header fields a browser sends with a
// page request, as Chromium sends them (no cookie: a cookie makes the
// request uncacheable by default).
var browserHeaders = map[string]string{
	"Accept":                    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
	"Accept-Encoding":           "gzip, deflate, br, zstd",
	"Accept-Language":           "en-GB,en;q=0.9",
	"Cache-Control":             "max-age=0",
	"Connection":                "keep-alive",
	"Sec-Ch-Ua":                 `"Chromium";v="131", "Not_A Brand";v="24"`,
	"Sec-Ch-Ua-Mobile":          "?0",
	"Sec-Fetch-Dest":            "document",
	"Sec-Fetch-Mode":            "navigate",
	"Sec-Fetch-Site":            "none",
	"Upgrade-Insecure-Requests": "1",
	"User-Agent":                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
}

// BenchmarkHTTPCache measures a cached page served by httpcache's
// middleware beside the handler it wraps and a static handler, each
// called directly (ServeHTTP, no network) with the same GET request:
//
//   - peer=httpcache-hit: renderHandler wrapped by httpcache.Middleware over
//     an in_memory cache, warmed so that every request is a HIT (checked
//     before the timer starts);
//   - peer=uncached: renderHandler alone (html/template, 30 rows, 4 KiB);
//   - peer=static: staticHandler, the same 4 KiB and headers, precomputed.
//
// req=bare is a request without header fields (httptest.NewRequest's);
// req=browser carries the twelve a browser sends (browserHeaders), which
// the middleware looks through for credentials and the static handler does
// not read. Each goroutine of b.RunParallel has its own request and
// discardWriter; run with -cpu 1,2 for one and two goroutines. Every
// response is checked to be 200 with a 4 KiB body.
func BenchmarkHTTPCache(b *testing.B) {
	d := newPageData(b)
	var page bytes.Buffer
	if err := pageTemplate.Execute(&page, d); err != nil {
		b.Fatal(err)
	}
	if page.Len() != pageSize {
		b.Fatalf("page is %d bytes, want %d", page.Len(), pageSize)
	}
	const url = "http://example.com/catalogue?page=2&sort=price"
	for _, shape := range []string{"bare", "browser"} {
		newReq := func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, url, nil)
			if shape == "browser" {
				for k, v := range browserHeaders {
					r.Header.Set(k, v)
				}
			}
			return r
		}
		b.Run("req="+shape+"/peer=httpcache-hit", func(b *testing.B) {
			c, err := cache.Open(context.Background(), cache.Config{Enabled: true}, cache.WithLogger(nil))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			h := httpcache.Middleware(c, httpcache.Options{TTL: time.Hour})(renderHandler(d))
			w := newDiscardWriter()
			for range 3 { // the MISS that stores the page, the HIT that keeps it ready, a HIT from it
				w.reset()
				h.ServeHTTP(w, newReq())
			}
			if got := w.header.Get("X-Cache"); got != "HIT" || w.status != http.StatusOK || w.n != pageSize {
				b.Fatalf("warm request: X-Cache %q, status %d, %d bytes; want HIT, 200, %d", got, w.status, w.n, pageSize)
			}
			runHTTP(b, h, newReq)
		})
		b.Run("req="+shape+"/peer=uncached", func(b *testing.B) { runHTTP(b, renderHandler(d), newReq) })
		b.Run("req="+shape+"/peer=static", func(b *testing.B) { runHTTP(b, staticHandler(page.Bytes()), newReq) })
	}
}

func runHTTP(b *testing.B, h http.Handler, newReq func() *http.Request) {
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := newReq()
		w := newDiscardWriter()
		for pb.Next() {
			w.reset()
			h.ServeHTTP(w, r)
			if w.status != http.StatusOK || w.n != pageSize {
				b.Errorf("status %d, %d bytes; want 200, %d", w.status, w.n, pageSize)
				return
			}
		}
	})
}
