package cache

import (
	"context"
	"errors"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// ErrNotLoaded is the error of a GetOrSet of a key that a GetOrSetMany's
// batch load was loading and did not return: the key has no value.
// GetOrSetMany itself leaves such keys out of its map.
var ErrNotLoaded = errors.New("cache: the batch load did not return the key")

// GetOrSetMany returns the values cached under keys, and loads the keys
// that are missing, or stale, with one call of loadMany, caching what it
// returns for ttl: [GetOrSet] for many keys at once.
//
//   - The keys are read in one call to the store (one round trip per
//     Cluster node on Redis). loadMany receives the keys that must be
//     loaded, in the order of keys, and returns their values by key; a key
//     it leaves out is a miss and is left out of the result.
//   - Every GetOrSet rule holds per key: a key that another call (a
//     GetOrSet, another GetOrSetMany, another process holding its lease) is
//     loading is waited for, not loaded twice; invalidation is final;
//     fail-safe serves a stale value of a key whose load failed; the loaded
//     values are stored after the callers have them.
//   - A key that failed (its load, or the store with no stale value to
//     serve) is left out of the map, and the error, a *[KeysError], names
//     it; the other keys' values are in the map all the same.
//   - A panic in loadMany is raised again in the caller, as GetOrSet does.
//
// loadMany must not call GetOrSet or GetOrSetMany for the keys it is
// loading: it would wait for itself.
func GetOrSetMany[T any](ctx context.Context, c *Cache, keys []string, ttl time.Duration,
	loadMany func(ctx context.Context, missing []string) (map[string]T, error), opts ...GetOrSetOption) (map[string]T, error) {
	if loadMany == nil {
		return nil, errors.New("cache: get or set many: nil load function")
	}
	if err := c.checkKeys("get", keys); err != nil {
		return nil, err
	}
	keys = dedupe(keys)
	for _, k := range keys {
		if err := checkTTL(k, ttl); err != nil {
			return nil, err
		}
	}
	p := c.policy
	if len(opts) > 0 {
		p = p.with(opts)
		if err := checkTags("get or set many", "", p.tags); err != nil {
			return nil, err
		}
	}
	p.outcome = nil // one outcome per call does not say how each key went
	out := make(map[string]T, len(keys))
	type slow struct {
		key   string
		e     Entry
		found bool
		err   error
	}
	var rest []slow
	now := time.Now()
	loadOne := func(key string) func(context.Context) (T, error) {
		return func(ctx context.Context) (T, error) {
			m, err := loadMany(ctx, []string{key})
			v, ok := m[key]
			if err == nil && !ok {
				err = ErrNotLoaded
			}
			return v, err
		}
	}
	var epochs []uint64 // as GetOrSet: a hit keeps its outage copy only if no invalidation of its key came since
	if p.staleTTL > 0 && !c.local {
		epochs = make([]uint64, len(keys))
		for i, k := range keys {
			epochs[i] = c.invalidations.Of(k)
		}
	}
	read := make([]slow, len(keys))
	var tagged []taggedHit
	var taggedAt []int
	c.readMany(ctx, keys, func(i int, b []byte, found bool, err error) {
		r := slow{key: keys[i], err: err}
		if err == nil && found {
			e, perr := ParseEntry(b)
			if perr == nil {
				e.Value = slices.Clone(e.Value) // b is lent for the call only
				r.e, r.found = e, true
				if len(e.Tags) > 0 && !e.Placeholder {
					tagged = append(tagged, taggedHit{keys[i], e})
					taggedAt = append(taggedAt, i)
				}
			}
		}
		read[i] = r
	})
	if len(tagged) > 0 {
		// One read of every tag's token: an entry with a tag invalidated
		// since its write is missing, with no stale value either.
		hold, err := c.holdMany(ctx, tagged)
		for j, i := range taggedAt {
			switch {
			case err != nil:
				read[i] = slow{key: keys[i], err: err}
			case !hold[j]:
				read[i] = slow{key: keys[i]}
			}
		}
	}
	vals := make([]T, len(keys)) // one array for the values decoded, not one T per key
	for i, r := range read {
		key, e := r.key, r.e
		if r.err == nil && r.found && e.knownMissing(now) {
			c.stats.hits.add() // known missing (CacheMisses): left out, not loaded
			continue
		}
		if r.err == nil && r.found && e.freshAt(now) {
			derr := c.decode(e.Value, &vals[i], true)
			if derr == nil {
				c.stats.hits.add()
				out[key] = vals[i]
				if e.header {
					pk := p
					var epoch uint64
					if epochs != nil {
						epoch = epochs[i]
					}
					hitWithHeader(ctx, c, key, ttl, &pk, &e, now, epoch, loadOne(key))
				}
				continue
			}
			c.stats.errors.add()
			c.log.WarnContext(ctx, "cache entry does not decode; loading instead", event(EventEntryUndecodable), "key", key, "err", derr)
			r.e, r.found = Entry{}, false
		}
		rest = append(rest, r)
	}
	if len(rest) == 0 {
		return out, nil
	}

	want := make([]string, len(rest))
	for i, r := range rest {
		want[i] = r.key
	}
	b := newBatch(c, want, func(ctx context.Context, keys []string) (map[string]any, error) {
		m, err := loadMany(ctx, keys)
		if m == nil {
			return nil, err
		}
		out := make(map[string]any, len(m))
		for k, v := range m {
			out[k] = v
		}
		return out, err
	})
	bctx := context.WithValue(ctx, batchKey{}, b)
	type result struct {
		key      string
		v        T
		err      error
		panicked any
	}
	results := make(chan result, len(rest))
	for _, r := range rest {
		go func() {
			res := result{key: r.key}
			defer func() {
				b.settle(r.key)
				if p := recover(); p != nil {
					res.panicked = p
				}
				results <- res
			}()
			pr, er := p, r.e
			load := func(ctx context.Context) (T, error) {
				v, err := b.load(ctx, r.key)
				t, _ := v.(T)
				return t, err
			}
			res.v, _, res.err = getOrSetSlow(bctx, c, r.key, ttl, load, &pr, &er, r.found, r.err, now)
		}()
	}
	var errs map[string]error
	var panicked any
	for range rest {
		res := <-results
		switch {
		case res.panicked != nil:
			panicked = res.panicked
		case errors.Is(res.err, ErrNotLoaded):
		case res.err != nil:
			if errs == nil {
				errs = make(map[string]error)
			}
			errs[res.key] = res.err
		default:
			out[res.key] = res.v
		}
	}
	if panicked != nil {
		panic(panicked)
	}
	return out, keysError(errs)
}

// dedupe returns keys without repeats, in their first order; keys itself
// when it has none.
func dedupe(keys []string) []string {
	seen := make(map[string]struct{}, len(keys))
	out := keys[:0:0]
	for i, k := range keys {
		if _, ok := seen[k]; ok {
			if out == nil {
				out = slices.Clone(keys[:i])
			}
			continue
		}
		seen[k] = struct{}{}
		if out != nil {
			out = append(out, k)
		}
	}
	if out == nil {
		return keys
	}
	return out
}

// batchKey is the context key of the batch a GetOrSetMany's per-key calls
// belong to: a *batch.
type batchKey struct{}

// batchOf returns the batch ctx's call belongs to, or nil.
func batchOf(ctx context.Context) *batch {
	b, _ := ctx.Value(batchKey{}).(*batch)
	return b
}

// A batch gathers the loads of a GetOrSetMany's keys into calls of its
// loadMany. Each key settles once: when its flight starts its load, or
// when it goes without one (a value found in the store, a flight of another
// call joined, a wait for another process's lease). When every key has
// settled, one call loads the keys whose flights wait for it. A key whose
// load starts after it settled (its lease's holder failed) is loaded in a
// call of its own.
type batch struct {
	c        *Cache
	loadMany func(ctx context.Context, keys []string) (map[string]any, error)
	mu       sync.Mutex
	want     map[string]bool // the keys yet to settle
	current  *round          // the round gathering keys
}

// A round is one call of loadMany and its outcome.
type round struct {
	ctx      context.Context // the first key's load's
	keys     []string
	done     chan struct{}
	vals     map[string]any
	err      error
	panicked *LoadPanicError
}

func newBatch(c *Cache, keys []string, load func(context.Context, []string) (map[string]any, error)) *batch {
	want := make(map[string]bool, len(keys))
	for _, k := range keys {
		want[k] = true
	}
	return &batch{c: c, loadMany: load, want: want, current: &round{done: make(chan struct{})}}
}

// settle records that key's load is settled; the caller holds b.mu. It
// returns the round to run when key was the last to settle and the round
// has keys to load.
func (b *batch) settleLocked(key string) *round {
	if !b.want[key] {
		return nil
	}
	delete(b.want, key)
	if len(b.want) > 0 || len(b.current.keys) == 0 {
		return nil
	}
	r := b.current
	b.current = &round{done: make(chan struct{})}
	return r
}

// settle records that key goes without a load of this batch, or has one.
func (b *batch) settle(key string) {
	if b == nil {
		return
	}
	b.mu.Lock()
	r := b.settleLocked(key)
	b.mu.Unlock()
	if r != nil {
		go b.run(r)
	}
}

// load returns key's value from the round it joins, running the round when
// key is the last to settle.
func (b *batch) load(ctx context.Context, key string) (any, error) {
	b.mu.Lock()
	var r, run *round
	if b.want[key] {
		r = b.current
		r.keys = append(r.keys, key)
		if r.ctx == nil {
			r.ctx = ctx
		}
		run = b.settleLocked(key)
	} else {
		r = &round{ctx: ctx, keys: []string{key}, done: make(chan struct{})} // late: alone
		run = r
	}
	b.mu.Unlock()
	if run != nil {
		b.run(run)
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if r.panicked != nil {
		panic(r.panicked)
	}
	if r.err != nil {
		return nil, r.err
	}
	v, ok := r.vals[key]
	if !ok {
		return nil, ErrNotLoaded
	}
	return v, nil
}

// run calls loadMany for r's keys, counting, timing and tracing it as one
// load, and releases the keys' loads.
func (b *batch) run(r *round) {
	defer close(r.done)
	c := b.c
	ctx := context.WithValue(r.ctx, batchKey{}, (*batch)(nil)) // its own GetOrSets are no part of it
	ctx = context.WithValue(ctx, loadingKey{}, &loadingFlight{c: c, parent: ctx.Value(loadingKey{})})
	var span trace.Span
	if c.tracing != nil {
		ctx, span = c.tracing.tracer.Start(ctx, "cache.load")
		c.tracing.annotate(span, c.tracing.attrs, "")
		span.SetAttributes(attribute.Int("cache.batch.keys", len(r.keys)))
	}
	c.stats.loads.add()
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			r.panicked = &LoadPanicError{Value: p, Stack: debug.Stack()}
			r.err = r.panicked
		}
		c.recordLoad(ctx, start, r.err)
		if span != nil {
			if r.panicked != nil {
				span.SetStatus(codes.Error, "load panicked")
				span.End()
			} else {
				c.tracing.end(span, "", r.err)
			}
		}
	}()
	r.vals, r.err = b.loadMany(ctx, slices.Clone(r.keys))
}
