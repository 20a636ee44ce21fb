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
	"sync"
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
//
// On a cache whose store is in this process (in_memory), each handler it
// returns keeps the pages it has read ready to write, per request target,
// while c vouches that they are still the stored ones ([cache.Stamp]): a
// HIT then costs neither a key nor a read of the cache, and any write of
// the page's key, its expiry or a due early refresh ends it.
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
	c     *cache.Cache
	o     Options
	next  http.Handler
	ready readyTable // pages ready to write, while the cache vouches for them
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rd := h.ready.find(r); rd != nil && h.readyApplies(r) {
		if elapsed, ok := rd.stamp.Current(); ok && rd.age+elapsed < rd.maxAge {
			rd.write(w, r, "HIT", rd.age+elapsed)
			return
		}
		h.ready.drop(r, rd)
	}
	if !h.applies(r) {
		h.pass(w, r)
		return
	}
	key := Key(r)
	var variant []string // the Vary marker's names, once key is a variant's
	for {
		s, ran, own, err := h.lookup(w, r, key, variant)
		switch {
		case errors.Is(err, errStreamed):
			return // a page over MaxBody, sent to this client as the handler wrote it
		case err != nil && r.Context().Err() != nil:
			return // the client went away; the page's load goes on for the others
		case err != nil:
			h.pass(w, r) // the cache failed, or a HEAD found nothing: the handler answers
			return
		case own != nil:
			newPage(own).write(w, r, "MISS", 0) // this request's own run, not stored
			return
		}
		switch {
		case s.kind == kindResponse:
			now := time.Now()
			state := "HIT"
			switch {
			case ran:
				state = "MISS"
			case now.After(s.fresh):
				state = "STALE" // past its ttl: fail-safe served it
			}
			p := newPage(&s)
			if state == "HIT" && variant == nil {
				h.ready.keep(h.c, r, key, s.raw, p, s.fresh)
			}
			p.write(w, r, state, now.Sub(s.created))
			return
		case s.kind == kindVary && variant == nil:
			key, variant = variantKey(key, s.gen, r, s.vary), s.vary
			continue
		}
		h.pass(w, r) // a pass marker: the page is not stored
		return
	}
}

// applies reports whether r may be served from the cache, and its response
// stored: readyApplies, and no field it bars under any other spelling.
func (h *handler) applies(r *http.Request) bool {
	if !h.readyApplies(r) {
		return false
	}
	// One pass over the fields, whatever their spelling (a request built
	// by hand may not have canonical keys).
	for k, vs := range r.Header {
		var bar bool
		switch len(k) {
		case 5:
			bar = strings.EqualFold(k, "Range")
		case 7:
			bar = strings.EqualFold(k, "Upgrade")
		case 6:
			bar = !h.o.CacheCookieRequests && strings.EqualFold(k, "Cookie")
		case 13:
			bar = !h.o.CacheAuthorized && strings.EqualFold(k, "Authorization")
		}
		if bar && nonEmpty(vs) {
			return false
		}
	}
	return true
}

// readyApplies reports whether r may be served a ready page: a GET or
// HEAD, not for an event stream (nothing to store, and it must not be
// buffered), without a Range, an Upgrade, or credentials the route does not
// take. It reads the fields by key rather than going through them all: under
// their canonical keys, as Go's HTTP servers write them, and the
// credentials under their lower-case ones too. A field under another
// spelling is not seen here, and the ready page is served: the page is one
// the cache holds for requests without credentials, and a handler reading
// the request through net/http (r.Cookie, Header.Get) would not see such a
// field either. What is stored is decided by applies, which sees every
// spelling.
func (h *handler) readyApplies(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	hd := r.Header
	if len(hd) == 0 {
		return true
	}
	if nonEmpty(hd["Range"]) || nonEmpty(hd["Upgrade"]) {
		return false
	}
	//lint:ignore SA1008 the lower-case spelling is looked up on purpose: a request built by hand may hold it
	if !h.o.CacheCookieRequests && (nonEmpty(hd["Cookie"]) || nonEmpty(hd["cookie"])) {
		return false
	}
	//lint:ignore SA1008 as above
	if !h.o.CacheAuthorized && (nonEmpty(hd["Authorization"]) || nonEmpty(hd["authorization"])) {
		return false
	}
	return !slices.ContainsFunc(hd["Accept"], func(v string) bool { return strings.Contains(v, "text/event-stream") })
}

// nonEmpty reports whether vs holds a value other than "".
func nonEmpty(vs []string) bool {
	return slices.ContainsFunc(vs, func(v string) bool { return v != "" })
}

// has reports whether h holds a non-empty field k (canonical), under its
// canonical key or, in a request built by hand, any other spelling of it.
func has(h http.Header, k string) bool {
	for _, v := range h[k] {
		if v != "" {
			return true
		}
	}
	for hk, vs := range h {
		if len(hk) == len(k) && hk != k && strings.EqualFold(hk, k) {
			for _, v := range vs {
				if v != "" {
					return true
				}
			}
		}
	}
	return false
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
func (h *handler) lookup(w http.ResponseWriter, r *http.Request, key string, variant []string) (s stored, ran bool, own *stored, err error) {
	if r.Method == http.MethodHead {
		b, found, err := cache.Get[cache.SharedBytes](r.Context(), h.c, key)
		if err != nil || !found {
			return stored{}, false, nil, errNotCached
		}
		s, err = decode(b)
		return s, false, nil, err
	}
	var opts []cache.GetOrSetOption
	if h.o.Tags != nil {
		if tags := h.o.Tags(r); len(tags) > 0 {
			opts = append(opts, cache.WithTags(tags...))
		}
	}
	run := &loadRun{h: h, w: w, r: r, key: key, variant: variant, opts: opts} // one allocation for what the load sets
	b, err := cache.GetOrSet(r.Context(), h.c, key, h.o.TTL, run.load, opts...)
	// What this request's own load found out, if it ran for it. From now
	// on run is not this request's: a load that still runs with it (the
	// client went away, or fail-safe answered first) neither writes to w
	// nor tells. Unless it has begun to send the page to w: then the page
	// is this request's answer, whatever GetOrSet returned, and the
	// request waits for the rest of it.
	run.mu.Lock()
	res, streamed, sent := run.res, run.streamed, run.sent
	if !streamed {
		run.gone = true
	}
	run.mu.Unlock()
	if streamed {
		select {
		case <-sent:
		case <-r.Context().Done():
		}
		run.mu.Lock()
		run.gone = true
		whole := run.whole
		run.mu.Unlock()
		if !whole && r.Context().Err() == nil {
			// The handler did not finish its page (it panicked): end the
			// response as broken, as net/http would, not as a short page.
			panic(http.ErrAbortHandler)
		}
		return stored{}, true, nil, errStreamed
	}
	if err != nil && r.Context().Err() != nil {
		return stored{}, false, nil, err // this request gave up waiting; the load goes on for the others
	}
	switch {
	case err == nil && res.stale:
		// Fail-safe served what it kept: the last good page wins over this
		// run's 5xx; a marker does not, and this run's answer is sent.
		if s, err = decode(b); err != nil || s.kind != kindResponse {
			return stored{}, true, res.own, nil
		}
		return s, false, nil, nil
	case res.own != nil:
		return stored{}, res.ran, res.own, nil
	case err != nil:
		return stored{}, res.ran, nil, err
	}
	ran = res.ran && !res.stale
	s, err = decode(b)
	return s, ran, nil, err
}

// loadRun is one request's load of a page: what it found out, for the
// request whose load it was.
type loadRun struct {
	h       *handler
	r       *http.Request
	w       http.ResponseWriter // the client of the request whose load it is
	key     string
	variant []string // the Vary marker's names, when key is a variant's
	opts    []cache.GetOrSetOption

	mu         sync.Mutex    // orders the load's writes to w and res with the request's reading them
	gone       bool          // the request has its answer, or left: w and res are no longer its
	streamed   bool          // the page went past MaxBody and is being sent to w as written
	sent       chan struct{} // made when streaming begins; closed when the handler is done with it
	whole      bool          // the handler returned (did not panic) before sent was closed
	sentClosed bool          // sent is closed
	res        loadResult    // what the load found out, told while the request waits for it
}

// loadResult is what a load found out for the request whose load it was.
type loadResult struct {
	ran   bool    // the load ran (this request made the page)
	own   *stored // a response of this run not stored under key
	stale bool    // the handler failed: what comes back is the last good page
}

// load runs the handler for the page, as GetOrSet's load. It may run after
// the request that made l has its answer (an early refresh in the
// background, a load fail-safe stopped waiting for): then it tells
// nothing, and writes nothing to the request's client.
func (l *loadRun) load(ctx context.Context) (cache.SharedBytes, error) {
	if cache.IsRefresh(ctx) {
		// An early refresh that a hit of this request started: the request
		// has its answer. The page is made for the cache alone.
		l = &loadRun{h: l.h, r: l.r, key: l.key, variant: l.variant, opts: l.opts, gone: true}
	}
	res := loadResult{ran: true}
	returned := false
	defer func() {
		l.mu.Lock()
		if !l.gone {
			l.res = res
		}
		if l.sent != nil && !l.sentClosed {
			l.whole, l.sentClosed = returned, true
			close(l.sent)
		}
		l.mu.Unlock()
	}()
	h, r := l.h, l.r
	resp, ttl, keep, overflow := h.record(unconditional(r.WithContext(ctx)), l)
	returned = true
	if resp.status >= 500 {
		// A failure, not a page: with the cache's stale_ttl the last good
		// page is served instead (stale-if-error); without, this request
		// answers with it and the others run the handler. One too large
		// to keep was sent to this request's client as it came, and is
		// its answer; the others still get the last good page.
		if !overflow {
			res.own = resp
		}
		res.stale = true
		return nil, errServerError
	}
	if overflow {
		return passEntry, nil // too large to store: the next requests go straight to the handler
	}
	if !keep {
		res.own = resp
		return passEntry, nil // the next requests go straight to the handler, for the route's ttl
	}
	vary := varyOn(resp.header)
	if l.variant != nil && !slices.Equal(vary, l.variant) {
		// Stored under a key that holds only the marker's headers' values,
		// a response that varies on others would reach requests it was
		// not made for. Not stored; this key passes, until the marker
		// expires and the page is made again.
		res.own = resp
		return passEntry, nil
	}
	cache.SetLoadTTL(ctx, ttl)
	enc := cache.SharedBytes(encodeResponse(resp.status, resp.created, ttl, resp.header, resp.body))
	if len(vary) > 0 && l.variant == nil {
		res.own = resp
		var setOpts []cache.SetOption
		if len(l.opts) > 0 {
			setOpts = append(setOpts, l.opts[0].(cache.TagsOption))
		}
		gen := newGeneration()
		_ = h.c.Set(ctx, variantKey(l.key, gen, r, vary), enc, ttl, setOpts...) // a failure only costs the next request a run
		return encodeVary(vary, gen), nil
	}
	return enc, nil // the callers share it: it is only read
}

// canonicalHeader returns h with every key in canonical form, the values
// of two spellings of one field merged: the checks and the client see
// "set-cookie" as Set-Cookie, and so must the cache.
func canonicalHeader(h http.Header) http.Header {
	for k := range h {
		if http.CanonicalHeaderKey(k) != k {
			out := make(http.Header, len(h))
			for k, v := range h {
				ck := http.CanonicalHeaderKey(k)
				out[ck] = append(out[ck], v...)
			}
			return out
		}
	}
	return h
}

// unconditional returns r without its conditional headers: the handler
// makes the full page, which is stored, and the cache answers the
// condition (a 304 from the handler would not be storable).
func unconditional(r *http.Request) *http.Request {
	conds := []string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range"}
	if !slices.ContainsFunc(conds, func(k string) bool { return has(r.Header, k) }) {
		return r
	}
	r2 := r.Clone(r.Context())
	for k := range r2.Header {
		for _, c := range conds {
			if strings.EqualFold(k, c) {
				delete(r2.Header, k)
			}
		}
	}
	return r2
}

// errStreamed ends a request whose page went past MaxBody: its load sent
// it as the handler wrote it.
var errStreamed = errors.New("httpcache: sent as written")

// errServerError fails a load whose handler answered 5xx.
var errServerError = errors.New("httpcache: the handler answered with a server error")

// record runs the handler into a buffer and says whether its response may
// be stored, and for how long.
func (h *handler) record(r *http.Request, run *loadRun) (resp *stored, ttl time.Duration, keep, overflow bool) {
	rec := &recorder{header: http.Header{}, max: h.o.MaxBody, run: run}
	h.next.ServeHTTP(rec, r)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	rec.header = canonicalHeader(rec.header)
	resp = &stored{kind: kindResponse, status: rec.status, created: time.Now(), header: rec.header, body: rec.body.Bytes()}
	ttl, keep = h.storable(rec)
	return resp, ttl, keep, rec.overflow
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

// first returns h's first value of k, k canonical, without canonicalising
// k again as Get does on every call. A condition under another spelling (a
// request built by hand) is not seen: the whole page is sent.
func first(h http.Header, k string) string {
	if v := h[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// recorder is the ResponseWriter a handler writes a page into: it keeps
// the body up to max bytes. Past them the page is not stored: what was
// kept, and the rest as it comes, go to the client of the request whose
// load it is, so that a large page is held once, at most max bytes of it.
type recorder struct {
	header   http.Header
	status   int
	body     bytes.Buffer
	max      int64
	overflow bool
	wrote    bool
	run      *loadRun
}

func (rec *recorder) Header() http.Header { return rec.header }

// Flush does nothing while the page is kept to be stored: it is sent
// whole once the handler returns.
func (rec *recorder) Flush() {}

func (rec *recorder) WriteHeader(status int) {
	if status >= 100 && status < 200 {
		return // informational (103 Early Hints): the final status comes later
	}
	if !rec.wrote {
		rec.status, rec.wrote = status, true
	}
}

func (rec *recorder) Write(p []byte) (int, error) {
	rec.WriteHeader(http.StatusOK)
	if !rec.overflow && int64(rec.body.Len()+len(p)) <= rec.max {
		return rec.body.Write(p)
	}
	l := rec.run
	l.mu.Lock()
	defer l.mu.Unlock()
	if !rec.overflow {
		rec.overflow = true
		if !l.gone {
			l.sent = make(chan struct{})
			rec.header = canonicalHeader(rec.header) // record does it too, then at no cost
			dst := l.w.Header()
			for k, v := range rec.header {
				dst[k] = v
			}
			dst.Del("Content-Length") // unknown to the cache; the server chunks
			dst["X-Cache"] = []string{"MISS"}
			l.w.WriteHeader(rec.status)
			_, _ = l.w.Write(rec.body.Bytes())
			l.streamed = true
		}
		rec.body = bytes.Buffer{}
	}
	if l.gone {
		return len(p), nil // its client left: nothing to keep
	}
	if _, err := l.w.Write(p); err != nil {
		return 0, err
	}
	if f, ok := l.w.(http.Flusher); ok {
		f.Flush()
	}
	return len(p), nil
}
