package cache

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"time"
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
//   - A caller whose ctx ends while it waits returns ctx's error; the load
//     goes on for the others. load receives a context that carries ctx's
//     values but not its cancellation, since no one waiter owns the load; a
//     load that must not run forever sets its own deadline.
//   - An error from load is returned to every waiter and nothing is cached.
//   - If the store cannot be read (Redis down, a timeout, an entry that no
//     longer decodes into T), the failure is logged and counted and load's
//     value is served: GetOrSet never returns a store error when load
//     succeeded. A failure to store the loaded value is handled the same way.
//   - A panic in load is not swallowed: it is raised again in every waiting
//     caller's goroutine, with the load's stack in its message.
//
// Invalid keys, negative TTLs and a closed cache are errors, as for
// [Cache.Get] and [Cache.Set], and load is not called.
func GetOrSet[T any](ctx context.Context, c *Cache, key string, ttl time.Duration,
	load func(context.Context) (T, error)) (T, error) {
	var zero T
	if ttl < 0 {
		return zero, sentinelf(ErrInvalidTTL, "cache: set %q: invalid ttl %s", key, ttl)
	}
	if load == nil {
		return zero, fmt.Errorf("cache: get or set %q: nil load function", key)
	}
	v, found, err := Get[T](ctx, c, key)
	switch {
	case err == nil && found:
		return v, nil
	case err != nil && (errors.Is(err, ErrInvalidKey) || errors.Is(err, ErrClosed)):
		return zero, err
	case ctx.Err() != nil:
		// The caller gave up: start no load that nobody would wait for, and
		// do not report the caller's own cancellation as a cache failure.
		return zero, ctx.Err()
	case err != nil:
		c.log.WarnContext(ctx, "cache read failed; loading instead", "key", key, "err", err)
	}

	recheck := err == nil // a store that just failed is not asked twice
	f, leader := c.joinFlight(flightKey{key, reflect.TypeFor[T]()})
	if leader {
		go c.runFlight(ctx, f, key, ttl, func(lctx context.Context) (any, error) {
			// Another flight may have stored the value between our miss and
			// this flight's start; read once more before paying for a load.
			if recheck {
				var v T
				if found, err := c.read(lctx, key, &v); err == nil && found {
					return v, nil
				}
			}
			c.stats.loads.add()
			return load(lctx)
		})
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		return zero, ctx.Err()
	}
	if f.panicked != nil {
		panic(f.panicked)
	}
	if f.err != nil {
		return zero, f.err
	}
	v, _ = f.val.(T) // a nil interface value stays the zero T
	return v, nil
}

// flightKey tells flights apart by key and by the type they load, so that
// two callers asking for the same key as different types never share one.
type flightKey struct {
	key string
	typ reflect.Type
}

// flight is one running load and its outcome, shared by all its waiters.
type flight struct {
	key      flightKey
	done     chan struct{} // closed when the fields below are final
	val      any
	err      error
	panicked *LoadPanicError
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

func (c *Cache) joinFlight(k flightKey) (f *flight, leader bool) {
	c.flightMu.Lock()
	defer c.flightMu.Unlock()
	if f, ok := c.flights[k]; ok {
		return f, false
	}
	if c.flights == nil {
		c.flights = make(map[flightKey]*flight)
	}
	f = &flight{key: k, done: make(chan struct{})}
	c.flights[k] = f
	return f, true
}

// runFlight runs load on its own goroutine, stores a successful result and
// releases the waiters. It removes the flight before releasing them, so a
// caller arriving afterwards reads the stored value or starts a new load.
func (c *Cache) runFlight(ctx context.Context, f *flight, key string, ttl time.Duration,
	load func(context.Context) (any, error)) {
	lctx := context.WithoutCancel(ctx)
	defer func() {
		if r := recover(); r != nil {
			f.panicked = &LoadPanicError{Value: r, Stack: debug.Stack()}
		}
		c.flightMu.Lock()
		delete(c.flights, f.key)
		c.flightMu.Unlock()
		close(f.done)
	}()
	v, err := load(lctx)
	if err != nil {
		c.stats.errors.add()
		f.err = fmt.Errorf("cache: load %q: %w", key, err)
		return
	}
	f.val = v
	if err := c.Set(lctx, key, v, ttl); err != nil && !errors.Is(err, ErrClosed) {
		c.log.WarnContext(lctx, "cache store of loaded value failed", "key", key, "err", err)
	}
}
