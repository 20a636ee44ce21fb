// Package httpcache caches whole HTTP responses in a [cache.Cache], as
// Django's cache_page does: net/http middleware, so it fits the standard
// mux, chi, and echo's and gin's adapters, over any backend.
//
// It is safe by default: it never stores a response that sets a cookie or
// says it is private, or one to a request that carries a cookie or an
// Authorization header, unless the route opts in; and it keys each page on
// its URL and on the request headers the response says it varies on, so
// that gzip and identity, or two languages, never mix. A stampede on one
// page runs the handler once per key at a time (across processes on
// Redis), and the cache's stale_ttl and refresh_ahead serve a page while
// it is recomputed.
package httpcache

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ushka-go/ushka/cache"
)

// Options configure a route's caching. The zero value caches GET pages for
// DefaultTTL unless the handler says otherwise.
type Options struct {
	// TTL is how long a page is cached when the handler's Cache-Control
	// gives no s-maxage or max-age. Zero means DefaultTTL.
	TTL time.Duration
	// MaxBody is the largest body stored; a larger one is passed through
	// and its page is not stored. Zero means DefaultMaxBody.
	MaxBody int64
	// Tags are the cache tags of the route's pages, for
	// Cache.InvalidateTags; nil means none. It is called per request.
	Tags func(r *http.Request) []string

	// The unsafe ones, each off by default. Only a route whose responses
	// are the same for every user may turn them on.

	// CacheCookieRequests serves and stores pages for requests that carry
	// a Cookie header (the key does not include it).
	CacheCookieRequests bool
	// CacheAuthorized serves and stores pages for requests that carry an
	// Authorization header (the key does not include it).
	CacheAuthorized bool
	// StoreSetCookie stores responses that set a cookie, cookie included:
	// every client then receives it.
	StoreSetCookie bool
	// StorePrivate stores responses whose Cache-Control says private,
	// no-store or no-cache.
	StorePrivate bool
}

// DefaultTTL is a page's ttl when neither the route nor the handler sets one.
const DefaultTTL = time.Minute

// DefaultMaxBody is the largest body stored unless a route sets MaxBody.
const DefaultMaxBody = 1 << 20

// cacheable are the statuses RFC 9111 lets a cache store without explicit
// freshness (heuristically cacheable).
var cacheable = map[int]bool{200: true, 203: true, 204: true, 300: true, 301: true, 404: true, 405: true, 410: true, 414: true}

// Middleware returns middleware that caches next's GET responses in c
// (and serves HEAD requests from them), with o: wrap one route, or a whole
// mux. X-Cache says HIT, MISS or STALE; Age how old a stored page is.
func Middleware(c *cache.Cache, o Options) func(next http.Handler) http.Handler {
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	return func(next http.Handler) http.Handler {
		return &handler{c: c, o: o, next: next}
	}
}

type handler struct {
	c    *cache.Cache
	o    Options
	next http.Handler
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.applies(r) {
		h.pass(w, r)
		return
	}
	key, variant := Key(r), false
	for {
		s, how, own, err := h.lookup(r, key, variant)
		switch {
		case err != nil:
			h.pass(w, r) // the cache failed, or a HEAD found nothing: the handler answers
			return
		case own != nil:
			writeResponse(w, r, own, "MISS", 0) // this request's own run, not stored
			return
		}
		switch {
		case s.kind == kindResponse:
			state := "HIT"
			switch how {
			case cache.OutcomeLoaded:
				state = "MISS"
			case cache.OutcomeStale:
				state = "STALE"
			}
			writeResponse(w, r, &s, state, time.Since(s.created))
			return
		case s.kind == kindVary && !variant:
			key, variant = variantKey(key, r, s.vary), true
			continue
		}
		h.pass(w, r) // a pass marker: the page is not stored
		return
	}
}

// applies reports whether r may be served from the cache.
func (h *handler) applies(r *http.Request) bool {
	switch {
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		return false
	case r.Header.Get("Range") != "":
		return false
	case !h.o.CacheCookieRequests && r.Header.Get("Cookie") != "":
		return false
	case !h.o.CacheAuthorized && r.Header.Get("Authorization") != "":
		return false
	}
	return true
}

// pass serves r with the handler alone.
func (h *handler) pass(w http.ResponseWriter, r *http.Request) { h.next.ServeHTTP(w, r) }

// errNotCached is a HEAD request's miss: a HEAD is served from a GET's
// page but does not make one.
var errNotCached = errors.New("httpcache: not cached")

// lookup gets key's entry, running the handler to make it on a miss, once
// per key at a time (a HEAD only reads). own is this request's response
// when its run made one that is not stored under key: a page not to be
// stored, or one that varies (stored under its variant's key, with a Vary
// marker under key, unless variant says key is a variant's already).
func (h *handler) lookup(r *http.Request, key string, variant bool) (s stored, how cache.Outcome, own *stored, err error) {
	if r.Method == http.MethodHead {
		b, found, err := cache.Get[[]byte](r.Context(), h.c, key)
		if err != nil || !found {
			return stored{}, how, nil, errNotCached
		}
		s, err = decode(b)
		return s, cache.OutcomeHit, nil, err
	}
	opts := []cache.GetOrSetOption{cache.ReportOutcome(&how)}
	if h.o.Tags != nil {
		if tags := h.o.Tags(r); len(tags) > 0 {
			opts = append(opts, cache.WithTags(tags...))
		}
	}
	b, err := cache.GetOrSet(r.Context(), h.c, key, h.o.TTL, func(ctx context.Context) ([]byte, error) {
		resp, ttl, keep := h.record(r.WithContext(ctx))
		if resp.status >= 500 {
			// A failure, not a page: with the cache's stale_ttl the last
			// good page is served instead (stale-if-error); without, this
			// request answers with it and the others run the handler.
			own = resp
			return nil, errServerError
		}
		if !keep {
			own = resp
			return passEntry, nil // the next requests go straight to the handler, for the route's ttl
		}
		cache.SetLoadTTL(ctx, ttl)
		enc := encodeResponse(resp.status, resp.created, resp.header, resp.body)
		if vary := varyOn(resp.header); len(vary) > 0 && !variant {
			own = resp
			var setOpts []cache.SetOption
			if h.o.Tags != nil {
				if tags := h.o.Tags(r); len(tags) > 0 {
					setOpts = append(setOpts, cache.WithTags(tags...))
				}
			}
			_ = h.c.Set(ctx, variantKey(key, r, vary), enc, ttl, setOpts...) // a failure only costs the next request a run
			return encodeVary(vary), nil
		}
		return enc, nil
	}, opts...)
	switch {
	case err == nil && how == cache.OutcomeStale:
		// Fail-safe served the last good page: it wins over this run's 5xx.
	case own != nil:
		return stored{}, how, own, nil
	case err != nil:
		return stored{}, how, nil, err
	}
	s, err = decode(b)
	return s, how, nil, err
}

// errServerError fails a load whose handler answered 5xx.
var errServerError = errors.New("httpcache: the handler answered with a server error")

// record runs the handler into a buffer and says whether its response may
// be stored, and for how long.
func (h *handler) record(r *http.Request) (resp *stored, ttl time.Duration, keep bool) {
	rec := &recorder{header: http.Header{}, max: h.o.MaxBody}
	h.next.ServeHTTP(rec, r)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	resp = &stored{kind: kindResponse, status: rec.status, created: time.Now(), header: rec.header, body: rec.body.Bytes()}
	ttl, keep = h.storable(rec)
	return resp, ttl, keep
}

// storable reports whether a recorded response may be stored, and its ttl.
func (h *handler) storable(rec *recorder) (time.Duration, bool) {
	if rec.overflow || !cacheable[rec.status] {
		return 0, false
	}
	hd := rec.header
	if !h.o.StoreSetCookie && len(hd.Values("Set-Cookie")) > 0 {
		return 0, false
	}
	if slices.Contains(varyOn(hd), "*") {
		return 0, false
	}
	cc := parseCacheControl(hd.Values("Cache-Control"))
	if !h.o.StorePrivate {
		if _, ok := cc["private"]; ok {
			return 0, false
		}
		if _, ok := cc["no-store"]; ok {
			return 0, false
		}
		if _, ok := cc["no-cache"]; ok {
			return 0, false
		}
	}
	for _, d := range []string{"s-maxage", "max-age"} {
		if v, ok := cc[d]; ok {
			secs, err := strconv.ParseInt(v, 10, 64)
			if err != nil || secs <= 0 {
				return 0, false
			}
			return time.Duration(min(secs, int64(cache.MaxTTL/time.Second))) * time.Second, true
		}
	}
	return h.o.TTL, true
}

// parseCacheControl reads Cache-Control directives, lower-cased, with
// their values (unquoted).
func parseCacheControl(values []string) map[string]string {
	cc := map[string]string{}
	for _, v := range values {
		for _, d := range strings.Split(v, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
			if name != "" {
				cc[strings.ToLower(name)] = strings.Trim(val, `"`)
			}
		}
	}
	return cc
}

// varyOn returns the header names a response's Vary lists, canonical and
// sorted ("*" as it is).
func varyOn(h http.Header) []string {
	var names []string
	for _, v := range h.Values("Vary") {
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				if n != "*" {
					n = http.CanonicalHeaderKey(n)
				}
				if !slices.Contains(names, n) {
					names = append(names, n)
				}
			}
		}
	}
	slices.Sort(names)
	return names
}

// writeResponse writes a stored response to w for r, with X-Cache and Age,
// answering a conditional request it satisfies with 304.
func writeResponse(w http.ResponseWriter, r *http.Request, s *stored, state string, age time.Duration) {
	dst := w.Header()
	for k, v := range s.header {
		dst[k] = slices.Clone(v)
	}
	dst.Set("X-Cache", state)
	if state != "MISS" {
		dst.Set("Age", strconv.FormatInt(int64(max(age, 0)/time.Second), 10))
	}
	if s.status == http.StatusOK && notModified(r, s.header) {
		for _, k := range []string{"Content-Length", "Content-Type", "Content-Encoding"} {
			dst.Del(k)
		}
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if dst.Get("Content-Length") == "" && s.status != http.StatusNoContent {
		dst.Set("Content-Length", strconv.Itoa(len(s.body)))
	}
	w.WriteHeader(s.status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(s.body)
	}
}

// notModified reports whether r's If-None-Match (or, without it, its
// If-Modified-Since) is satisfied by the stored response's ETag (or
// Last-Modified).
func notModified(r *http.Request, h http.Header) bool {
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		etag := h.Get("ETag")
		if etag == "" {
			return false
		}
		for _, t := range strings.Split(inm, ",") {
			if t = strings.TrimSpace(t); t == "*" || strings.TrimPrefix(t, "W/") == strings.TrimPrefix(etag, "W/") {
				return true
			}
		}
		return false
	}
	if ims := r.Header.Get("If-Modified-Since"); ims != "" {
		lm, err1 := http.ParseTime(h.Get("Last-Modified"))
		since, err2 := http.ParseTime(ims)
		return err1 == nil && err2 == nil && !lm.After(since)
	}
	return false
}

// recorder is the ResponseWriter a handler writes a page into: it keeps
// the body up to max bytes, and notes when it went past.
type recorder struct {
	header   http.Header
	status   int
	body     bytes.Buffer
	max      int64
	overflow bool
	wrote    bool
}

func (rec *recorder) Header() http.Header { return rec.header }

func (rec *recorder) WriteHeader(status int) {
	if !rec.wrote {
		rec.status, rec.wrote = status, true
	}
}

func (rec *recorder) Write(p []byte) (int, error) {
	rec.WriteHeader(http.StatusOK)
	if int64(rec.body.Len()+len(p)) > rec.max {
		rec.overflow = true
	}
	return rec.body.Write(p)
}
