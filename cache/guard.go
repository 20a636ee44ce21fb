package cache

import (
	"context"
	"reflect"
	"time"
)

// guard is the breaker's side of a remote store: [New] puts it between the
// front end and every store that is not in the process, as the store, its
// Locker and its NearCacher, so that every call goes through the breaker
// and every invalidation that fails is queued. A third-party store gets it
// as the built-in ones do.
type guard struct {
	b *breaker
	s Store
}

// backendName names a store for its breaker's errors and events: its type,
// until [Open] names its backend.
func backendName(s Store) string {
	t := reflect.TypeOf(s)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.String()
}

func (g *guard) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if g.b.q.holds(key) {
		return nil, false, ctx.Err() // its Delete waits to be replayed: it is gone for this process
	}
	cl, err := g.b.begin(ctx, "get", key, true)
	if err != nil {
		return nil, false, err
	}
	v, found, err := g.s.Get(ctx, key)
	g.b.end(ctx, cl, err)
	return v, found, err
}

func (g *guard) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return g.write(ctx, "set", key, false, func() error { return g.s.Set(ctx, key, value, ttl) })
}

func (g *guard) Delete(ctx context.Context, key string) error {
	return g.write(ctx, "delete", key, false, func() error { return g.s.Delete(ctx, key) })
}

func (g *guard) Clear(ctx context.Context) error {
	return g.write(ctx, "clear", "", true, func() error { return g.s.Clear(ctx) })
}

// write runs an invalidation (a Set, Delete or Clear of key, or of every
// key for all) through the breaker. One that is refused, or that fails
// leaving it unknown whether it was done, is queued to be replayed, and
// still returned as an error.
func (g *guard) write(ctx context.Context, op, key string, all bool, do func() error) error {
	mark := g.b.q.mark()
	cl, err := g.b.begin(ctx, op, key, !all) // a Clear takes many round trips: no hang is measured on it
	if err == nil {
		err = do()
		g.b.end(ctx, cl, err)
	}
	return g.b.settleWrite(ctx, key, all, mark, err)
}

// enqueue queues an invalidation and makes sure the prober runs to replay
// it, saying so loudly when the queue overflows.
func (b *breaker) enqueue(key string, all bool) {
	b.c.stats.queued.add()
	if all {
		b.q.addAll()
	} else if dropped, first := b.q.add(key); dropped > 0 {
		b.c.stats.dropped.n.Add(uint64(dropped))
		if first {
			b.c.log.Error("cache invalidation queue full: its keys are dropped, and the whole cache is cleared when the backend answers again", event(EventInvalidationQueueFull),
				"backend", b.backend, "invalidation_queue_max", b.set.queueMax, "dropped", dropped)
		}
	}
	b.mu.Lock()
	b.startProber()
	b.mu.Unlock()
}

func (g *guard) Close() error { return g.s.Close() }

// setLoaded stores a value that a GetOrSet load computed, through the
// breaker when there is one. Unlike Set it queues nothing when it fails:
// it invalidates nothing (a load that an invalidation overtook is never
// stored), so the store holds nothing this process has to remove.
func (c *Cache) setLoaded(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return c.pastBreaker(ctx, "set", key, func() error { return c.inner.Set(ctx, key, value, ttl) })
}

// Ping implements [Pinger] through the breaker: an open breaker answers at
// once. A store that cannot ping is reachable as far as anyone can tell.
func (g *guard) Ping(ctx context.Context) error {
	p, ok := g.s.(Pinger)
	if !ok {
		if BreakerState(g.b.state.Load()) != BreakerClosed {
			return g.b.refuse()
		}
		return nil
	}
	cl, err := g.b.begin(ctx, "ping", "", true)
	if err != nil {
		return err
	}
	err = p.Ping(ctx)
	g.b.end(ctx, cl, err)
	return err
}

// guardLocker is the breaker's side of a store's [Locker].
type guardLocker struct {
	*guard
	l Locker
}

func (g *guardLocker) Lock(ctx context.Context, key, token string, lease time.Duration, seen time.Time) (bool, []byte, bool, error) {
	if g.b.q.holds(key) {
		// Lock reads the entry too: the store would hand back the value
		// whose Delete waits to be replayed. Not sent; the load runs
		// without the lease, and its value is not stored.
		return false, nil, false, sentinelf(ErrUnavailable, "%s: the key's Delete waits to be replayed", g.b.backend)
	}
	cl, err := g.b.begin(ctx, "lock", key, true)
	if err != nil {
		return false, nil, false, err
	}
	acquired, entry, found, err := g.l.Lock(ctx, key, token, lease, seen)
	g.b.end(ctx, cl, err)
	return acquired, entry, found, err
}

func (g *guardLocker) Renew(ctx context.Context, key, token string, lease time.Duration) (bool, error) {
	cl, err := g.b.begin(ctx, "renew", key, true)
	if err != nil {
		return false, err
	}
	held, err := g.l.Renew(ctx, key, token, lease)
	g.b.end(ctx, cl, err)
	return held, err
}

func (g *guardLocker) Fill(ctx context.Context, key, token string, entry []byte, ttl time.Duration) (bool, error) {
	mark := g.b.q.mark()
	cl, err := g.b.begin(ctx, "fill", key, true)
	if err != nil {
		return false, err
	}
	stored, err := g.l.Fill(ctx, key, token, entry, ttl)
	g.b.end(ctx, cl, err)
	if err == nil && stored {
		g.b.q.written(key, false, mark) // a value loaded after the failed Delete
	}
	return stored, err
}

func (g *guardLocker) Unlock(ctx context.Context, key, token string) error {
	cl, err := g.b.begin(ctx, "unlock", key, true)
	if err != nil {
		return err
	}
	err = g.l.Unlock(ctx, key, token)
	g.b.end(ctx, cl, err)
	return err
}

func (g *guardLocker) Watch(key string) (<-chan struct{}, func()) { return g.l.Watch(key) }

// guardNear is the breaker's side of a store's [NearCacher]. The near
// cache's answers are process memory: they are served without the
// breaker, even while it is open (a hung server changes nothing; a lost
// connection empties the near cache), but never for a key whose Delete
// waits to be replayed.
type guardNear struct {
	*guard
	n NearCacher
}

func (g *guardNear) GetNear(ctx context.Context, key string) ([]byte, bool, bool, error) {
	if g.b.q.holds(key) {
		return nil, false, false, ctx.Err()
	}
	if v, found, held := g.n.NearPeek(key); held {
		return v, found, true, nil
	}
	cl, err := g.b.begin(ctx, "get", key, true)
	if err != nil {
		return nil, false, false, err
	}
	v, found, near, err := g.n.GetNear(ctx, key)
	g.b.end(ctx, cl, err)
	return v, found, near, err
}

func (g *guardNear) NearPeek(key string) ([]byte, bool, bool) { return g.n.NearPeek(key) }
func (g *guardNear) NearUsage() (int, int64)                  { return g.n.NearUsage() }
func (g *guardNear) NearEnabled() bool                        { return g.n.NearEnabled() }
func (g *guardNear) OnChange(fn func(key string))             { g.n.OnChange(fn) }

var (
	_ Store      = (*guard)(nil)
	_ Pinger     = (*guard)(nil)
	_ Locker     = (*guardLocker)(nil)
	_ NearCacher = (*guardNear)(nil)
)

// guard puts a circuit breaker named backend in front of c's store, its
// Locker and its NearCacher.
func (c *Cache) guard(backend string) {
	c.brk = newBreaker(c, backend)
	g := &guard{c.brk, c.inner}
	c.store = g
	if c.locker != nil {
		c.locker = &guardLocker{g, c.locker}
	}
	if c.near != nil {
		c.near = &guardNear{g, c.near}
	}
}

// Breaker returns the state of the circuit breaker in front of c's store,
// for a health check. An in-process store has none: it is reported closed,
// with the Backend empty.
func (c *Cache) Breaker() BreakerStatus {
	if c.brk == nil {
		return BreakerStatus{}
	}
	return c.brk.status()
}
