package cache

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// GetOrSet returns the value cached under key, or calls load, caches its
// result for ttl and returns it: the check, compute, store-with-TTL steps of
// cache-aside, done safely under concurrency.
//
//   - Within one process, load runs at most once per key at a time: callers
//     that miss while a load of the same key is running wait for its result
//     instead of running their own.
//   - The callers that shared a load all receive the same T value: when T is
//     a pointer, slice or map, they share what it points to, so treat it as
//     read-only (the cached copy is encoded and cannot be changed through it).
//   - With a remote store (Redis), callers get the loaded value as soon as
//     load returns; storing it goes on in the background, bounded by the
//     cache's timeout, so that a slow store does not make them wait a second
//     time. Callers that ask meanwhile get the same value without a load.
//     An in-process store (in_memory) takes the value before the callers get
//     it, so a Get right after GetOrSet finds it.
//   - Invalidation is final: once [Cache.Delete] of key, [Cache.Clear] or
//     [Cache.Set] of key has returned, no caller that asks afterwards receives
//     a value whose load began before it, and such a value is never stored.
//     Callers that were already waiting may receive it: they asked first.
//   - A caller whose ctx ends while it waits returns ctx's error; the load
//     goes on for the others. load receives a context that carries ctx's
//     values but not its cancellation, since no one waiter owns the load; a
//     load that must not run forever sets its own deadline.
//   - An error from load is returned to every waiter and nothing is cached.
//   - If the store cannot be read (Redis down, a timeout, an entry that no
//     longer decodes into T), the failure is logged and counted and load's
//     value is served: GetOrSet never returns a store error when load
//     succeeded. A failure to store the loaded value is logged and counted
//     the same way.
//   - A panic in load is not swallowed: it is raised again in every waiting
//     caller's goroutine as a *[LoadPanicError], with the load's stack. It is
//     counted in [Stats].Errors, and when no caller is left to receive it
//     (they all gave up) it is logged at error level with its stack.
//
// Invalid keys and TTLs and a closed cache are errors, as for [Cache.Get]
// and [Cache.Set], and load is not called.
func GetOrSet[T any](ctx context.Context, c *Cache, key string, ttl time.Duration,
	load func(context.Context) (T, error), opts ...GetOrSetOption) (T, error) {
	var zero T
	if err := checkTTL(key, ttl); err != nil {
		return zero, err
	}
	if load == nil {
		return zero, fmt.Errorf("cache: get or set %q: nil load function", key)
	}
	if err := c.check("get", key); err != nil {
		return zero, err
	}
	p := c.policy
	if len(opts) > 0 {
		p = p.with(opts) // apart, so that p stays on the stack without options
		if len(p.tags) > 0 {
			if err := checkTags("get or set", key, p.tags); err != nil {
				return zero, err
			}
		}
	}
	var epoch uint64 // a copy of what is read is kept only if no invalidation of key came since
	if p.staleTTL > 0 && !c.local {
		epoch = c.invalidations.Of(key)
	}
	e, found, near, err := c.readEntry(ctx, key)
	var now time.Time // read only where a header or fail-safe needs it
	if err != nil || e.header {
		now = time.Now()
	}
	if err == nil && found && e.knownMissing(now) {
		c.stats.hits.add()
		return zero, errKnownMissing(key)
	}
	if err == nil && found && e.freshAt(now) {
		// The hit path, kept apart from the rest so that its frame stays
		// small.
		var v T
		derr := c.decode(e.Value, &v, true)
		if derr == nil {
			c.stats.hits.add()
			if near {
				c.stats.nearHits.add()
			}
			if e.header {
				hitWithHeader(ctx, c, key, ttl, &p, &e, now, epoch, load)
			}
			p.report(OutcomeHit)
			return v, nil
		}
		c.stats.errors.add()
		c.log.WarnContext(ctx, "cache entry does not decode; loading instead", event(EventEntryUndecodable), "key", key, "err", derr)
		e, found = Entry{}, false // reload and overwrite it
	}
	v, o, err := getOrSetSlow(ctx, c, key, ttl, load, &p, &e, found, err, now)
	p.report(o)
	return v, err
}

// getOrSetSlow is GetOrSet past a fresh hit: a miss, a stale entry, a store
// that failed. It returns how the call had its value, and traces it from
// here when c traces: the read that missed is a span before it.
func getOrSetSlow[T any](ctx context.Context, c *Cache, key string, ttl time.Duration,
	load func(context.Context) (T, error), pp *policy, ep *Entry, found bool, err error, now time.Time) (_ T, o Outcome, rerr error) {
	if c.tracing != nil {
		var span trace.Span
		ctx, span = c.tracing.startGetOrSet(ctx, key)
		defer func() { c.tracing.endGetOrSet(span, key, o, rerr) }()
	}
	var zero T
	p, e := *pp, *ep
	var stale staleValue // the value fail-safe may serve, if any
	switch {
	case err != nil && (errors.Is(err, ErrClosed) || ctx.Err() != nil):
		// A closed cache, or a caller that gave up: start no load that
		// nobody would wait for, and count no cache failure.
		if ctx.Err() != nil {
			return zero, OutcomeNone, ctx.Err()
		}
		return zero, OutcomeNone, fmt.Errorf("cache: get %q: %w", key, err)
	case err != nil:
		c.failed(ctx, err)
		if p.staleTTL > 0 {
			stale = c.localStale(key)
			if stale.ok && stale.e.freshAt(now) {
				// The store is down, and this process's copy is still
				// fresh: it is as good as the store's would be.
				var v T
				if c.decode(stale.e.Value, &v, true) == nil {
					c.stats.hits.add()
					return v, OutcomeHit, nil
				}
			}
		}
		c.log.Log(ctx, logLevel(err), "cache read failed; loading instead", event(EventReadFailed), "key", key, "err", err)
		if c.tracing != nil {
			trace.SpanFromContext(ctx).AddEvent("cache read failed", trace.WithAttributes(attribute.String("error.type", errorTypes[errorType(err)])))
		}
	case found && !e.Placeholder && !e.Absent:
		c.stats.misses.add()
		if p.staleTTL > 0 {
			stale = staleValue{e, true}
		}
	default:
		c.stats.misses.add()
	}
	decode := decodeAs[T](c)
	if stale.ok && stale.e.Stale && now.Before(stale.e.Fresh) {
		// Fail-safe is throttling this key's loads: serve the stale value.
		if v, ok := c.serveStale(ctx, key, stale, decode, nil); ok {
			return v.(T), OutcomeStale, nil
		}
	}
	if ctx.Err() != nil {
		return zero, OutcomeNone, ctx.Err()
	}

	if c.loading(ctx, key, reflect.TypeFor[T]()) {
		// Waiting for our own load would wait forever, and so would every
		// later caller of the key.
		return zero, OutcomeNone, fmt.Errorf("cache: get or set %q: called from the load of that same key and type", key)
	}
	f, leader := c.joinFlight(key, reflect.TypeFor[T](), true)
	if !leader && len(p.tags) > 0 && c.tagsMovedSince(ctx, f) {
		// Another process invalidated a tag since this flight's load began:
		// its value is of before, and this caller asked after.
		c.leaveFlight(f)
		f, leader = c.joinFlight(key, reflect.TypeFor[T](), true)
	}
	if !leader {
		batchOf(ctx).settle(key) // a GetOrSetMany's key another call loads
	}
	if leader && len(p.tags) > 0 {
		c.flightMu.Lock()
		f.tags = p.tags // before its load reads the tags' tokens: see InvalidateTags
		c.flightMu.Unlock()
	}
	if leader {
		j := &loadJob{
			key: key, ttl: ttl, p: p, stale: stale, storeOK: err == nil,
			recheck: err == nil && !found,
			load:    anyLoad(load),
			decode:  decode,
			batched: batchOf(ctx) != nil,
		}
		if found && e.header && !e.Placeholder {
			j.seen = e.Created
		}
		go c.runFlight(ctx, f, j)
	}
	var soft <-chan time.Time
	if stale.ok && p.loadTimeout > 0 && decodes(decode, stale.e.Value) {
		// Only a stale value that decodes as T can be served in time;
		// otherwise the load is waited for.
		t := time.NewTimer(p.loadTimeout)
		defer t.Stop()
		soft = t.C
	}
	switch err := c.wait(ctx, f, soft); {
	case errors.Is(err, errSoftTimeout):
		if v, ok := c.serveStale(ctx, key, stale, decode, err); ok {
			return v.(T), OutcomeStale, nil
		}
		return zero, OutcomeNone, fmt.Errorf("cache: get or set %q: the stale value no longer decodes", key) // unreachable: soft is set only when it decodes
	case err != nil:
		return zero, OutcomeNone, err
	}
	if f.err != nil || f.panicked != nil {
		if stale.ok && !errors.Is(f.err, ErrNotLoaded) { // a key the batch load left out has no value
			cause := f.err
			if f.panicked != nil {
				cause = f.panicked
				if f.panicLogged.CompareAndSwap(false, true) {
					c.log.ErrorContext(ctx, "cache load panicked; serving the stale value", event(EventLoadPanicked),
						"key", key, "panic", fmt.Sprint(f.panicked.Value), "stack", string(f.panicked.Stack))
				}
			}
			if v, ok := c.serveStale(ctx, key, stale, decode, cause); ok {
				return v.(T), OutcomeStale, nil
			}
		}
		if f.panicked != nil {
			panic(f.panicked)
		}
		return zero, OutcomeNone, f.err
	}
	v, _ := f.val.(T) // a nil interface value stays the zero T
	return v, OutcomeLoaded, nil
}

// hitWithHeader does what a hit on an entry with a header may ask for:
// keep this process's copy for outages, start an early refresh. Its
// closures are made only when used.
func hitWithHeader[T any](ctx context.Context, c *Cache, key string, ttl time.Duration, p *policy, e *Entry, now time.Time,
	epoch uint64, load func(context.Context) (T, error)) {
	if p.staleTTL > 0 && !c.local {
		c.keepStale(key, *e, p.staleTTL, epoch)
	}
	if e.refreshDue(now, p.refreshAhead) && !c.refreshBackoff(key, now) {
		c.refresh(ctx, key, reflect.TypeFor[T](), ttl, *p, *e, anyLoad(load), decodeAs[T](c))
	}
}

// decodeAs returns a function that decodes an entry's value as a T.
func decodeAs[T any](c *Cache) func([]byte) (any, error) {
	return func(b []byte) (any, error) {
		var v T
		err := c.decode(b, &v, true)
		return v, err
	}
}

// decodes reports whether b decodes with decode.
func decodes(decode func([]byte) (any, error), b []byte) bool {
	_, err := decode(b)
	return err == nil
}

// anyLoad returns load with its result as an any.
func anyLoad[T any](load func(context.Context) (T, error)) func(context.Context) (any, error) {
	return func(ctx context.Context) (any, error) { return load(ctx) }
}

// loadJob is what a flight needs to load a key and store the value.
type loadJob struct {
	key     string
	ttl     time.Duration
	p       policy
	seen    time.Time  // Created of the entry the leader read (zero: missing)
	stale   staleValue // what fail-safe may serve, and hold for the throttle
	storeOK bool       // the leader could read the store: a lock may be taken
	recheck bool       // read once more before loading
	refresh bool       // an early refresh of a fresh entry
	batched bool       // a GetOrSetMany's: load is its batch's (counted and traced there)
	tokens  []TagToken // the tokens of p.tags when the load began
	noStore bool       // the tags' tokens could not be read: the value is not stored
	load    func(context.Context) (any, error)
	decode  func([]byte) (any, error)
}

// readEntry reads key's entry, without counting; near reports that it came
// from the store's near cache. An entry of an unknown layout is a miss.
func (c *Cache) readEntry(ctx context.Context, key string) (e Entry, found, near bool, err error) {
	b, found, near, err := c.raw(ctx, key)
	if err != nil || !found {
		return Entry{}, false, near, err
	}
	e, perr := ParseEntry(b)
	if perr != nil {
		return Entry{}, false, near, nil
	}
	if len(e.Tags) > 0 && !e.Placeholder {
		// A tag invalidated since the entry's write makes it missing, and
		// no stale value either.
		if ok, err := c.tagsHold(ctx, e); err != nil || !ok {
			return Entry{}, false, near, err
		}
	}
	return e, true, near, nil
}

// LoadPanicError is the value GetOrSet panics with when load panicked: the
// load's own panic value and the stack of the goroutine it ran on.
type LoadPanicError struct {
	Value any
	Stack []byte
}

func (e *LoadPanicError) Error() string {
	return fmt.Sprintf("cache: GetOrSet load panicked: %v\n\n%s", e.Value, e.Stack)
}

// Unwrap returns the panic value if it is an error.
func (e *LoadPanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// runFlight runs a job's load on its own goroutine and releases f's waiters
// with its outcome as soon as it returns. A value that the load computed
// (rather than found in the store) is then stored, unless an invalidation of
// its key came after the load began. f stays joinable until then, so that
// callers arriving meanwhile get the value instead of loading it again.
func (c *Cache) runFlight(ctx context.Context, f *flight, j *loadJob) {
	defer c.idle.Done()
	lctx := context.WithValue(context.WithoutCancel(ctx), loadingKey{}, &loadingFlight{c, f, ctx.Value(loadingKey{}), j.refresh})
	v, fromStore, panicked, err := callLoad(lctx, func(ctx context.Context) (any, bool, error) { return c.fetch(ctx, f, j) })
	f.stopRenew()
	if errors.Is(err, ErrNotLoaded) {
		// The batch load left the key out: a miss, not a failure, kept
		// known for a while with CacheMisses.
		if j.p.missTTL > 0 && c.writing() {
			c.storeAbsent(lctx, f, j)
			c.writes.Done()
		} else if f.token != "" {
			c.unlock(lctx, f)
		}
		c.finishFlight(f, fmt.Errorf("cache: load %q: %w", f.key, err), nil)
		return
	}
	if errors.Is(err, errThrottled) {
		// Another process's load failed and its stale value is held: the
		// callers serve it; there is nothing to count, store or release.
		c.finishFlight(f, fmt.Errorf("cache: load %q: %w", f.key, err), nil)
		return
	}
	if panicked != nil || err != nil {
		c.stats.errors.add()
		if err != nil {
			err = fmt.Errorf("cache: load %q: %w", f.key, err)
		}
		if j.refresh {
			c.refreshFailed(f.key, time.Now().Add(j.p.throttle))
			c.log.WarnContext(lctx, "cache early refresh failed; the entry stays until its ttl", event(EventRefreshFailed), "key", f.key, "err", cmp.Or[any](err, panicked))
		}
		if j.stale.ok {
			c.holdStale(lctx, f, j)
		} else if f.token != "" {
			c.unlock(lctx, f)
		}
		if unreceived := c.finishFlight(f, err, panicked); unreceived && panicked != nil && !j.stale.ok {
			c.log.ErrorContext(lctx, "cache load panicked and no caller was left to receive the panic", event(EventLoadPanicked),
				"key", f.key, "panic", fmt.Sprint(panicked.Value), "stack", string(panicked.Stack))
		}
		return
	}
	f.val = v
	if fromStore || c.local {
		// An in-process store takes the value at once: store it before the
		// callers get it, so that a Get right after GetOrSet finds it, and
		// end the flight with their release, so that a later caller of a
		// disabled cache loads again.
		if !fromStore {
			c.storeLoaded(lctx, f, v, j)
		}
		c.finishFlight(f, nil, nil)
		return
	}
	close(f.done) // the waiters go now; a remote store is not theirs to wait for
	if c.writing() {
		c.storeLoaded(lctx, f, v, j)
		c.writes.Done()
	} else if f.token != "" {
		c.unlock(lctx, f) // closed: release the key for the other processes
	}
	c.flightMu.Lock()
	c.dropFlight(f)
	c.flightMu.Unlock()
}

// fetch gets a job's value: from the store when another process stored it
// meanwhile, otherwise from the load, run under the key's cross-process
// lease when the store has a [Locker].
func (c *Cache) fetch(ctx context.Context, f *flight, j *loadJob) (any, bool, error) {
	if j.batched {
		// However it ends, the key is settled for the batch: with a load,
		// or without one.
		defer batchOf(ctx).settle(j.key)
	}
	switch {
	case c.locker != nil && j.storeOK:
		v, ok, err := c.lockOrWait(ctx, f, j)
		if ok || err != nil {
			return v, ok, err
		}
	case j.recheck:
		// Another flight may have stored the value between our miss and
		// this flight's start; read once more before paying for a load.
		if e, found, _, err := c.readEntry(ctx, j.key); err == nil && found {
			if e.knownMissing(time.Now()) {
				return nil, false, errKnownMissing(j.key)
			}
			if e.freshAt(time.Now()) {
				if v, err := j.decode(e.Value); err == nil {
					return v, true, nil
				}
			}
		}
	}
	if len(j.p.tags) > 0 {
		// Before the load: an InvalidateTags from now on changes a token,
		// and the value, stored with these, reads as missing.
		var err error
		if j.tokens, err = c.writeTokens(ctx, j.p.tags); err != nil {
			j.noStore = true
		} else {
			c.flightMu.Lock()
			f.tokens = j.tokens // for callers who join later: see tagsMovedSince
			c.flightMu.Unlock()
		}
	}
	if !j.batched { // a GetOrSetMany key's load is its batch's: counted and traced there
		c.stats.loads.add()
		if j.refresh {
			c.stats.refreshes.add()
		}
	}
	if j.p.hardTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, j.p.hardTimeout)
		defer cancel()
	}
	if j.batched {
		v, err := j.load(ctx) // gathered by its batch into one call of loadMany
		return v, false, err
	}
	v, err := c.runLoad(ctx, j)
	return v, false, err
}

// runLoad calls j's load, recording its duration and tracing it.
func (c *Cache) runLoad(ctx context.Context, j *loadJob) (any, error) {
	var span trace.Span
	if c.tracing != nil {
		ctx, span = c.tracing.startLoad(ctx, j.key, j.refresh)
	}
	start := time.Now()
	returned := false
	defer func() {
		if returned {
			return
		}
		// The load panicked: callLoad recovers it, with its stack intact.
		c.recordLoad(ctx, start, &LoadPanicError{})
		if span != nil {
			span.SetStatus(codes.Error, "load panicked")
			span.End()
		}
	}()
	v, err := j.load(ctx)
	returned = true
	c.recordLoad(ctx, start, err)
	if span != nil {
		c.tracing.end(span, j.key, err)
	}
	return v, err
}

// SetLoadTTL sets, from within a [GetOrSet] load, the ttl its value is
// stored with, in place of the one GetOrSet was given: the load knows best
// how long what it found stays true (an HTTP response's max-age, a token's
// expiry). It reports false, and does nothing, when ctx is not a load's
// context (a GetOrSetMany's loadMany is not: its keys have one ttl) or ttl
// is negative or longer than [MaxTTL]. A ttl of 0 means the cache's default
// TTL.
func SetLoadTTL(ctx context.Context, ttl time.Duration) bool {
	l, _ := ctx.Value(loadingKey{}).(*loadingFlight)
	if l == nil || l.f == nil || ttl < 0 || ttl > MaxTTL {
		return false
	}
	l.f.ttl.Store(int64(ttl) + 1)
	return true
}

// loadingKey is the context key under which a load's context carries the
// flights it runs within: a *loadingFlight.
type loadingKey struct{}

// loadingFlight is a flight whose load is running, and the one whose load
// started it, if any. A GetOrSetMany's loadMany runs with one whose f is
// nil: it loads many flights' keys at once.
type loadingFlight struct {
	c       *Cache
	f       *flight
	parent  any
	refresh bool // an early refresh's: no caller waits for the value
}

// IsRefresh reports whether ctx is the context of a [GetOrSet] load that
// an early refresh started ([RefreshAhead], refresh_ahead): no caller
// waits for its value, the callers having had the value it replaces. A
// load bound to the call that started it (httpcache's writes to that
// call's client) must then leave that call alone: it has its answer.
// It answers for the load whose context ctx is: a GetOrSet inside a
// refresh's load runs its own load, which is not a refresh.
func IsRefresh(ctx context.Context) bool {
	l, _ := ctx.Value(loadingKey{}).(*loadingFlight)
	return l != nil && l.refresh
}

// loading reports whether ctx is the context of a load of key as typ by c,
// or of a load that such a load started: a GetOrSet of it would wait for
// itself.
func (c *Cache) loading(ctx context.Context, key string, typ reflect.Type) bool {
	for l, _ := ctx.Value(loadingKey{}).(*loadingFlight); l != nil; l, _ = l.parent.(*loadingFlight) {
		if l.c == c && l.f != nil && l.f.key == key && l.f.typ == typ {
			return true
		}
	}
	return false
}

// callLoad calls load, turning a panic into a *LoadPanicError.
func callLoad(ctx context.Context, load func(context.Context) (any, bool, error)) (v any, fromStore bool, panicked *LoadPanicError, err error) {
	defer func() {
		if r := recover(); r != nil {
			var ok bool
			if panicked, ok = r.(*LoadPanicError); !ok { // a batch's: raised again as it was
				panicked = &LoadPanicError{Value: r, Stack: debug.Stack()}
			}
		}
	}()
	v, fromStore, err = load(ctx)
	return v, fromStore, nil, err
}

// storeLoaded writes a loaded value under f's key, bounded by the cache's
// timeout, unless f was invalidated: with a header when the job's policy
// needs one, kept past its ttl for fail-safe, through the lease when f holds
// one. It holds f.write throughout, so that an invalidation either stops it
// or waits for it to land and then removes it.
func (c *Cache) storeLoaded(ctx context.Context, f *flight, v any, j *loadJob) {
	ctx, done, ok := c.beginWrite(ctx, f)
	defer done()
	if !ok {
		return
	}
	if len(j.p.tags) > 0 && j.noStore {
		if f.token != "" {
			c.unlock(ctx, f)
		}
		return
	}
	b, err := c.encodeValue(v) // Entry.Append below adds a header if the bytes need one
	if err != nil {
		c.stats.errors.add()
		c.log.WarnContext(ctx, "cache store of loaded value failed", event(EventStoreFailed), "key", f.key, "err",
			fmt.Errorf("cache: set %q: encode %T: %w", f.key, v, err))
		if f.token != "" {
			c.unlock(ctx, f)
		}
		return
	}
	ttl := j.ttl
	if d := f.ttl.Load(); d > 0 {
		ttl = time.Duration(d - 1) // the load said how long its value lives
	}
	if ttl == 0 {
		ttl = c.defaultTTL
	}
	e := Entry{Value: b, header: bytes.HasPrefix(b, []byte(EntryMagic))}
	if len(j.p.tags) > 0 {
		e.Tags, ttl = j.tokens, taggedTTL(ttl)
	}
	keep := ttl
	if j.p.on() {
		now := time.Now()
		e.Created = now
		if ttl > 0 {
			e.Fresh = now.Add(ttl)
			keep = min(ttl+j.p.staleTTL, MaxTTL)
		}
	}
	c.write(ctx, f, e, keep, j.p.staleTTL, "cache store of loaded value failed")
}

// storeAbsent stores that f's key has no value, for the job's missTTL,
// unless f was invalidated (see storeLoaded).
func (c *Cache) storeAbsent(ctx context.Context, f *flight, j *loadJob) {
	ctx, done, ok := c.beginWrite(ctx, f)
	defer done()
	if !ok {
		return
	}
	now := time.Now()
	e := Entry{Absent: true, Created: now, Fresh: now.Add(j.p.missTTL)}
	c.write(ctx, f, e, j.p.missTTL, 0, "cache store of a missing key failed")
}

// beginWrite starts a store for f, bounded by the cache's timeout, holding
// f.write until done is called. It reports false, having released f's lease,
// when f was invalidated: its value must not be stored.
func (c *Cache) beginWrite(ctx context.Context, f *flight) (_ context.Context, done func(), ok bool) {
	f.write.Lock()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	done = func() {
		cancel()
		f.write.Unlock()
	}
	if f.invalidated {
		if f.token != "" {
			c.unlock(ctx, f)
		}
		return ctx, done, false
	}
	return ctx, done, true
}

// write stores e under f's key for keep: through f's lease when it holds
// one, with a plain Set on a store without leases, and not at all on a
// Locker store without a lease. When fail-safe keeps values (staleTTL > 0)
// and the store is remote, it keeps this process's copy too. It logs a
// failure with msg.
func (c *Cache) write(ctx context.Context, f *flight, e Entry, keep, staleTTL time.Duration, msg string) {
	if len(e.Tags) > 0 {
		keep = taggedTTL(keep) // a tagged entry never outlives the tokens it can be checked against
	}
	data := e.Append(nil)
	copies := !c.local && staleTTL > 0 && e.needsHeader() && len(e.Tags) == 0 // no copies of tagged entries: see keepStale
	var err error
	switch {
	case f.token != "":
		var stored bool
		stored, err = c.locker.Fill(ctx, f.key, f.token, data, keep)
		if err == nil && stored && copies && c.nearOn() {
			c.stats.sets.add()
			c.readBack(ctx, f, data, cmp.Or(keep, staleTTL))
			return
		}
		c.setHeld(f, false)
		if err == nil && !stored {
			// Another process deleted, replaced or took over the key.
			c.log.DebugContext(ctx, "cache lease lost before the loaded value was stored", event(EventLeaseLost), "key", f.key)
			c.dropStale(f.key, false)
			return
		}
	case c.locker != nil:
		// A shared store, and no lease (taking it failed): an unconditional
		// write could undo a Delete another process made during the load.
		// The value is not stored; this process keeps its copy below.
		err = errNoLease
	default:
		err = c.setLoaded(ctx, f.key, data, keep)
	}
	if errors.Is(err, errNoLease) {
		c.log.DebugContext(ctx, "cache value loaded without the key's lease is not stored", event(EventNotStoredWithoutLease), "key", f.key)
	} else if err != nil {
		c.failed(ctx, err)
		if !errors.Is(err, ErrClosed) {
			c.log.Log(ctx, logLevel(err), msg, event(EventStoreFailed), "key", f.key, "err", fmt.Errorf("cache: set %q: %w", f.key, err))
		}
	} else {
		c.stats.sets.add()
	}
	if copies {
		c.keepStaleBytes(f.key, data, cmp.Or(keep, staleTTL))
	}
}

// readBack keeps this process's fail-safe copy of data, which f has just
// filled, if the key still holds it (see stillHolds). A write ends every
// client's tracking of the key, the writer's included, so without the read
// the store would not hear of another process's Delete until this process
// read the key again, and the copy would outlive it.
func (c *Cache) readBack(ctx context.Context, f *flight, data []byte, keep time.Duration) {
	holds, err := c.stillHolds(ctx, f, func(b []byte) bool { return bytes.Equal(b, data) })
	epoch := c.invalidations.Of(f.key)
	if err == nil && !holds {
		c.dropStale(f.key, false)
		return
	}
	c.keepCopy(f.key, data, keep, &epoch) // after an error too: unknown, kept as when the store fails
}

// stillHolds reads f's key back through the store's near cache and then
// ends f's hold on the lease. It reports whether the key was there and same
// accepts its bytes, and no change to it was reported after the read.
//
// f still counts as holding the lease during the read, so that the report
// of its own last write, which comes before the read's answer, is not taken
// for another process's change. A change before the read shows in what it
// reads; one after it removes the answer from the near cache (NearPeek),
// or, once f no longer holds, moves the invalidation count.
func (c *Cache) stillHolds(ctx context.Context, f *flight, same func([]byte) bool) (bool, error) {
	b, found, _, err := c.near.GetNear(ctx, f.key)
	c.setHeld(f, false)
	if err != nil {
		return false, err
	}
	_, _, held := c.near.NearPeek(f.key)
	return found && same(b) && held, nil
}
