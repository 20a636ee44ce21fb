package httpcache

import (
	"bytes"
	"hash/maphash"
	"math/bits"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ushka-go/ushka/cache"
)

// page is a response ready to be written: the values of its header
// fields in one list, each field's values side by side, its validators
// found once.
type page struct {
	status       int
	created      time.Time
	values       []string
	fields       []field // the header fields, each over its run of values
	body         []byte
	etag         string
	lastModified string
	length       bool // a Content-Length field is among fields
}

// field is one header field: its key canonical, as the recorder made it,
// and its values, values[from:to] of its page.
type field struct {
	k        string
	from, to int
}

// newPage returns s ready to be written. The strings of a page read from
// the cache are views of the entry's bytes, which nothing changes.
func newPage(s *stored) *page {
	p := &page{status: s.status, created: s.created, body: s.body}
	add := func(k, v string) {
		if n := len(p.fields); n > 0 && p.fields[n-1].k == k {
			p.fields[n-1].to++ // the next value of the field before
		} else {
			p.fields = append(p.fields, field{k, len(p.values), len(p.values) + 1})
		}
		p.values = append(p.values, v)
	}
	if s.header != nil {
		for k, vs := range s.header {
			for _, v := range vs {
				add(k, v)
			}
		}
	} else {
		// Header.Write wrote each field's lines together, in order of key.
		for rest := s.rawHeader; len(rest) > 0; {
			line := rest
			if i := bytes.Index(rest, []byte("\r\n")); i >= 0 {
				line, rest = rest[:i], rest[i+2:]
			} else {
				rest = nil
			}
			if k, v, ok := bytes.Cut(line, []byte(": ")); ok {
				add(view(k), view(v))
			}
		}
	}
	for _, f := range p.fields {
		switch v := p.values[f.from]; f.k {
		case "Etag":
			p.etag = v
		case "Last-Modified":
			p.lastModified = v
		case "Content-Length":
			p.length = v != ""
		}
	}
	return p
}

// write writes p to w for r, with X-Cache (state) and, unless state is
// MISS, Age; it answers a conditional request p satisfies with 304. Every
// value it puts in w's header is in one array of its own, so that whatever
// a later handler does to the header changes nothing shared.
func (p *page) write(w http.ResponseWriter, r *http.Request, state string, age time.Duration) {
	dst := w.Header()
	n := len(p.values)
	vals := make([]string, n+2)
	copy(vals, p.values)
	if len(dst) == 0 {
		// Nothing to merge with (the usual case): each field is one store.
		for _, f := range p.fields {
			dst[f.k] = vals[f.from:f.to:f.to]
		}
	} else {
		for _, f := range p.fields {
			if old := dst[f.k]; len(old) > 0 {
				dst[f.k] = append(old, vals[f.from:f.to]...)
			} else {
				dst[f.k] = vals[f.from:f.to:f.to]
			}
		}
	}
	vals[n] = state
	dst["X-Cache"] = vals[n : n+1 : n+1]
	if state != "MISS" {
		vals[n+1] = ageString(age)
		dst["Age"] = vals[n+1 : n+2 : n+2]
	}
	if p.status == http.StatusOK && p.notModified(r) {
		for _, k := range []string{"Content-Length", "Content-Type", "Content-Encoding"} {
			delete(dst, k)
		}
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if !p.length && p.status != http.StatusNoContent && len(dst["Content-Length"]) == 0 {
		dst["Content-Length"] = []string{strconv.Itoa(len(p.body))}
	}
	w.WriteHeader(p.status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(p.body)
	}
}

// notModified reports whether r's If-None-Match (or, without it, its
// If-Modified-Since) is satisfied by p's ETag (or Last-Modified).
func (p *page) notModified(r *http.Request) bool {
	if p.etag == "" && p.lastModified == "" {
		return false // nothing to compare a condition with
	}
	if inm := first(r.Header, "If-None-Match"); inm != "" {
		if p.etag == "" {
			return false
		}
		for _, t := range strings.Split(inm, ",") {
			if t = strings.TrimSpace(t); t == "*" || strings.TrimPrefix(t, "W/") == strings.TrimPrefix(p.etag, "W/") {
				return true
			}
		}
		return false
	}
	if ims := first(r.Header, "If-Modified-Since"); ims != "" {
		lm, err1 := http.ParseTime(p.lastModified)
		since, err2 := http.ParseTime(ims)
		return err1 == nil && err2 == nil && !lm.After(since)
	}
	return false
}

// ages are the values of Age for the first ten minutes, made once.
var ages = func() []string {
	a := make([]string, 600)
	for i := range a {
		a[i] = strconv.Itoa(i)
	}
	return a
}()

// ageString is the Age of a page age old, in whole seconds.
func ageString(age time.Duration) string {
	s := int64(max(age, 0) / time.Second)
	if s < int64(len(ages)) {
		return ages[s]
	}
	return strconv.FormatInt(s, 10)
}

// The table of ready pages: per request target (as the request spells it,
// so that finding one costs no key), the page last read from the cache for
// it, decoded, with the cache's [cache.Stamp] for the entry it came from. A
// HIT whose stamp is current is written from it without reading the cache:
// the stamp ends with any write to the key (a Delete, a Set, a Clear, an
// invalidated tag, a new page), with the page's freshness, and where an
// early refresh is due, so the page served is always the one a read of the
// cache would return. Only a cache whose store is in this process can
// vouch for what it returned (in_memory); over Redis every HIT reads the
// cache.
const (
	// readySlots is how many request targets a handler keeps ready pages
	// for; two targets that fall in one slot take turns.
	readySlots = 4096
	// readyBytes bounds the bytes of the cache entries that a handler's
	// ready pages hold: mostly the cache's own (a page is kept only while
	// its entry is the stored one), but an entry the cache evicts for space
	// stays held until its slot is taken or freed.
	readyBytes = 16 << 20
)

// readyTable is a handler's table of ready pages. Its zero value is empty;
// it allocates its slots on first use.
type readyTable struct {
	slots atomic.Pointer[readySlotArray]
	init  sync.Mutex
	held  atomic.Int64  // bytes of the entries the slots hold
	hand  atomic.Uint64 // the next slot to free when the table is over readyBytes
}

type readySlotArray struct {
	seed  maphash.Seed
	slots [readySlots]atomic.Pointer[ready]
}

// ready is a page kept for one request target.
type ready struct {
	page
	tls                        bool
	host, path, rawPath, query string
	stamp                      cache.Stamp
	age                        time.Duration // the page's age when the stamp was made
	maxAge                     time.Duration // its age when it stops being fresh (the cache may keep it longer, as stale)
	size                       int64         // bytes of the entry and lists it holds
}

// slot returns the slot of r's target in a.
func (a *readySlotArray) slot(r *http.Request) *atomic.Pointer[ready] {
	// One hash of the host, path and query side by side on the stack
	// (RawPath, rarely set, is compared by find but not hashed); a target
	// too long for the buffer hashes its parts apart.
	host, path, query := r.Host, r.URL.Path, r.URL.RawQuery
	var buf [256]byte
	if len(host)+len(path)+len(query) <= len(buf) {
		n := copy(buf[:], host)
		n += copy(buf[n:], path)
		n += copy(buf[n:], query)
		return &a.slots[maphash.Bytes(a.seed, buf[:n])%readySlots]
	}
	h := maphash.String(a.seed, path)
	h = bits.RotateLeft64(h, 21) ^ maphash.String(a.seed, query)
	h = bits.RotateLeft64(h, 21) ^ maphash.String(a.seed, host)
	return &a.slots[h%readySlots]
}

// find returns the ready page kept for r's target, if any, current or not.
func (t *readyTable) find(r *http.Request) *ready {
	a := t.slots.Load()
	if a == nil {
		return nil
	}
	rd := a.slot(r).Load()
	if rd == nil || rd.tls != (r.TLS != nil) || rd.host != r.Host || rd.path != r.URL.Path ||
		rd.rawPath != r.URL.RawPath || rd.query != r.URL.RawQuery {
		return nil
	}
	return rd
}

// drop frees r's slot if it still holds rd, a page no longer current.
func (t *readyTable) drop(r *http.Request, rd *ready) {
	if a := t.slots.Load(); a != nil {
		t.free(a.slot(r), rd)
	}
}

// keep keeps p, read from c under key for r's target as raw (the very
// bytes the cache holds), if c vouches for it, for no longer than the
// page's own freshness (fresh).
func (t *readyTable) keep(c *cache.Cache, r *http.Request, key string, raw cache.SharedBytes, p *page, fresh time.Time) {
	// What the page holds: the entry's bytes, and its own header lists.
	size := int64(cap(raw)) + int64(len(p.values))*16 + int64(len(p.fields))*32 + 512
	if size > readyBytes/4 {
		return
	}
	stamp, ok := c.Vouch(key, raw)
	if !ok {
		return
	}
	age := time.Since(p.created)
	if maxAge := fresh.Sub(p.created); age >= maxAge {
		return
	}
	a := t.slots.Load()
	if a == nil {
		t.init.Lock()
		if a = t.slots.Load(); a == nil {
			a = &readySlotArray{seed: maphash.MakeSeed()}
			t.slots.Store(a)
		}
		t.init.Unlock()
	}
	if !t.reserve(a, size) {
		return
	}
	rd := &ready{page: *p, tls: r.TLS != nil, host: r.Host, path: r.URL.Path, rawPath: r.URL.RawPath,
		query: r.URL.RawQuery, stamp: stamp, age: age, maxAge: fresh.Sub(p.created), size: size}
	if old := a.slot(r).Swap(rd); old != nil {
		t.held.Add(-old.size)
	}
}

// reserve counts size more bytes held, freeing slots from the clock hand
// until they fit under readyBytes; it reports false if they do not.
func (t *readyTable) reserve(a *readySlotArray, size int64) bool {
	for scanned := 0; ; {
		h := t.held.Load()
		if h+size <= readyBytes {
			if t.held.CompareAndSwap(h, h+size) {
				return true
			}
			continue
		}
		if scanned == readySlots {
			return false
		}
		t.free(&a.slots[t.hand.Add(1)%readySlots], nil)
		scanned++
	}
}

// free empties slot if it holds old (whatever it holds, for nil).
func (t *readyTable) free(slot *atomic.Pointer[ready], old *ready) {
	cur := slot.Load()
	if cur == nil || (old != nil && cur != old) {
		return
	}
	if slot.CompareAndSwap(cur, nil) {
		t.held.Add(-cur.size)
	}
}
