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
	load func(context.Context) (T, error)) (T, error) {
	var zero T
	if err := checkTTL(key, ttl); err != nil {
		return zero, err
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
	f, leader := c.joinFlight(key, reflect.TypeFor[T]())
	if leader {
		go c.runFlight(ctx, f, ttl, func(lctx context.Context) (any, bool, error) {
			// Another flight may have stored the value between our miss and
			// this flight's start; read once more before paying for a load.
			if recheck {
				var v T
				if found, err := c.read(lctx, key, &v, true); err == nil && found {
					return v, true, nil
				}
			}
			c.stats.loads.add()
			v, err := load(lctx)
			return v, false, err
		})
	}
	if err := c.wait(ctx, f); err != nil {
		return zero, err
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

// runFlight runs load on its own goroutine and releases f's waiters with its
// outcome as soon as it returns. A value that load computed (rather than
// found in the store) is then stored, unless an invalidation of its key came
// after the load began. f stays joinable until then, so that callers
// arriving meanwhile get the value instead of loading it again.
func (c *Cache) runFlight(ctx context.Context, f *flight, ttl time.Duration,
	load func(context.Context) (v any, fromStore bool, err error)) {
	defer c.idle.Done()
	lctx := context.WithoutCancel(ctx)
	v, fromStore, panicked, err := callLoad(lctx, load)
	if panicked != nil || err != nil {
		c.stats.errors.add()
		if err != nil {
			err = fmt.Errorf("cache: load %q: %w", f.key, err)
		}
		if unreceived := c.finishFlight(f, err, panicked); unreceived && panicked != nil {
			c.log.ErrorContext(lctx, "cache load panicked and no caller was left to receive the panic",
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
			c.storeLoaded(lctx, f, v, ttl)
		}
		c.finishFlight(f, nil, nil)
		return
	}
	close(f.done) // the waiters go now; a remote store is not theirs to wait for
	c.storeLoaded(lctx, f, v, ttl)
	c.flightMu.Lock()
	c.dropFlight(f)
	c.flightMu.Unlock()
}

// callLoad calls load, turning a panic into a *LoadPanicError.
func callLoad(ctx context.Context, load func(context.Context) (any, bool, error)) (v any, fromStore bool, panicked *LoadPanicError, err error) {
	defer func() {
		if r := recover(); r != nil {
			panicked = &LoadPanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	v, fromStore, err = load(ctx)
	return v, fromStore, nil, err
}

// storeLoaded writes a loaded value under f's key, bounded by the cache's
// timeout, unless f was invalidated. It holds f.write throughout, so that an
// invalidation either stops it or waits for it to land and then removes it.
func (c *Cache) storeLoaded(ctx context.Context, f *flight, v any, ttl time.Duration) {
	f.write.Lock()
	defer f.write.Unlock()
	if f.invalidated {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	b, err := c.encode(v)
	if err != nil {
		c.stats.errors.add()
		err = fmt.Errorf("cache: set %q: encode %T: %w", f.key, v, err)
	} else {
		err = c.setBytes(ctx, f.key, b, ttl)
	}
	if err != nil && !errors.Is(err, ErrClosed) {
		c.log.WarnContext(ctx, "cache store of loaded value failed", "key", f.key, "err", err)
	}
}
