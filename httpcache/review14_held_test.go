package httpcache_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/ushka-go/ushka/httpcache"
)

// Odd forms that must not be stored: these hold.
func TestReview14Held(t *testing.T) {
	set := func(k string, vs ...string) func(w http.ResponseWriter, r *http.Request) {
		return func(w http.ResponseWriter, _ *http.Request) {
			for _, v := range vs {
				w.Header().Add(k, v)
			}
		}
	}
	for name, f := range map[string]func(w http.ResponseWriter, r *http.Request){
		"set-cookie via Add":    set("set-cookie", "a=1"),
		"two set-cookies":       set("Set-Cookie", "a=1", "b=2"),
		"PRIVATE":               set("Cache-Control", "PUBLIC, MAX-AGE=60, PRIVATE"),
		"private quoted":        set("Cache-Control", `private="Set-Cookie", max-age=60`),
		"no-store second line":  set("Cache-Control", "max-age=60", " No-Store "),
		"no-cache quoted":       set("Cache-Control", `no-cache="set-cookie"`),
		"max-age neg":           set("Cache-Control", "max-age=-5"),
		"max-age junk":          set("Cache-Control", "max-age=abc"),
		"max-age dup 0 last":    set("Cache-Control", "max-age=60", "max-age=0"),
		"s-maxage 0 max-age 60": set("Cache-Control", "s-maxage=0, max-age=60"),
		"vary star in list":     set("Vary", "Accept-Encoding, *"),
		"vary star second line": set("Vary", "Accept-Encoding", " * "),
		"1xx-less 302":          func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(302) },
		"206":                   func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(206) },
	} {
		t.Run(name, func(t *testing.T) {
			p := &page{set: f}
			h := httpcache.Middleware(newCache(t), httpcache.Options{})(p)
			body(t, do(t, h, httptest.NewRequest("GET", "/p", nil)))
			body(t, do(t, h, httptest.NewRequest("GET", "/p", nil)))
			if p.runs.Load() != 2 {
				t.Fatal("stored")
			}
		})
	}
	for name, r := range map[string]func(*http.Request){
		"cookie lower via Set": func(r *http.Request) { r.Header.Set("cookie", "s=1") },
		"two cookie lines":     func(r *http.Request) { r.Header.Add("Cookie", ""); r.Header.Add("Cookie", "s=1") },
		"authorization basic":  func(r *http.Request) { r.SetBasicAuth("a", "b") },
		"range":                func(r *http.Request) { r.Header.Set("Range", "bytes=0-0") },
	} {
		t.Run(name, func(t *testing.T) {
			p := &page{}
			h := httpcache.Middleware(newCache(t), httpcache.Options{})(p)
			for range 2 {
				req := httptest.NewRequest("GET", "/p", nil)
				r(req)
				body(t, do(t, h, req))
			}
			if p.runs.Load() != 2 {
				t.Fatal("served from the cache")
			}
		})
	}
}
