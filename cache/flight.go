package cache

import (
	"context"
	"reflect"
	"sync"
	"sync/atomic"
	"time"
)

// A flight is one running [GetOrSet] load of a key as a type, and its
// outcome, shared by every caller that asked for it while it ran.
//
// The flights of a Cache are in Cache.flights, by key, from the load's start
// until its value is stored. An invalidation of the key (Delete, Set, Clear)
// makes them unjoinable, so that later callers start a load of their own,
// and marks them invalidated, so that their value is not stored (see
// [Cache.stopLoads]).
type flight struct {
	key string
	typ reflect.Type

	done     chan struct{} // closed when val, err and panicked are final
	val      any
	err      error
	panicked *LoadPanicError

	waiters  int  // callers waiting for done; guarded by Cache.flightMu
	unjoined bool // no caller may join any more; guarded by Cache.flightMu

	write       sync.Mutex // held while the loaded value is being stored
	invalidated bool       // guarded by write: the value must not be stored

	// held: this process holds (or may hold) the key's lease, so that the
	// store's reports of changes to the key are taken for its own lock
	// writes (see Cache.changedElsewhere); guarded by Cache.flightMu.
	held bool

	tags   []string   // the tags its value is written with; set before its load starts
	tokens []TagToken // the tags' tokens when its load began; guarded by Cache.flightMu

	ttl atomic.Int64 // SetLoadTTL's, when its load set one (nanoseconds + 1)

	// Set by the flight's own goroutine only:
	token     string // the key's cross-process lease, when held (or maybe held: see lockOrWait)
	renewStop func() // stops the lease's renewal

	panicLogged atomic.Bool // a caller that served a stale value logged the panic
}

// stopRenew stops the renewal of f's lease, if any.
func (f *flight) stopRenew() {
	if f.renewStop != nil {
		f.renewStop()
		f.renewStop = nil
	}
}

// joinFlight returns the flight loading key as typ, starting one (leader ==
// true: the caller runs it) when there is none. When wait is set the caller
// is counted as a waiter until [Cache.wait] returns; an early refresh
// starts a flight without waiting for it.
func (c *Cache) joinFlight(key string, typ reflect.Type, wait bool) (f *flight, leader bool) {
	c.flightMu.Lock()
	defer c.flightMu.Unlock()
	for _, f := range c.flights[key] {
		if f.typ == typ && !f.unjoined {
			if wait {
				f.waiters++
			}
			return f, false
		}
	}
	if c.flights == nil {
		c.flights = make(map[string][]*flight)
	}
	f = &flight{key: key, typ: typ, done: make(chan struct{})}
	if wait {
		f.waiters = 1
	}
	c.flights[key] = append(c.flights[key], f)
	c.nflights.Add(1)
	c.idle.Add(1)
	return f, true
}

// dropFlight removes f from c.flights if it is still there. The caller holds
// c.flightMu.
func (c *Cache) dropFlight(f *flight) {
	fs := c.flights[f.key]
	for i, g := range fs {
		if g == f {
			fs = append(fs[:i], fs[i+1:]...)
			if len(fs) == 0 {
				delete(c.flights, f.key)
			} else {
				c.flights[f.key] = fs
			}
			c.nflights.Add(-1)
			return
		}
	}
}

// finishFlight ends a flight with its outcome (f.val, or err or panicked):
// it is dropped and its waiters are released. It reports whether no caller
// was waiting, in which case nobody receives the outcome.
func (c *Cache) finishFlight(f *flight, err error, panicked *LoadPanicError) (unreceived bool) {
	c.flightMu.Lock()
	defer c.flightMu.Unlock()
	c.dropFlight(f)
	f.err, f.panicked = err, panicked
	close(f.done)
	return f.waiters == 0
}

// wait waits for f's outcome, for ctx to end or for soft to fire (then it
// returns errSoftTimeout). A caller that gives up stops being f's waiter,
// unless the outcome came at the same moment: then it takes the outcome, so
// that a panic is never lost between the two.
func (c *Cache) wait(ctx context.Context, f *flight, soft <-chan time.Time) error {
	var err error
	select {
	case <-f.done:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-soft:
		err = errSoftTimeout
	}
	c.flightMu.Lock()
	defer c.flightMu.Unlock()
	select {
	case <-f.done:
		return nil
	default:
	}
	f.waiters--
	return err
}

// An invalidation (a Delete, Set or Clear of the store) must not be undone
// by a load that began before it. So it calls stopLoads before it changes
// the store and endInvalidation after:
//
//   - stopLoads makes the flights of key (of every key when all is set)
//     unjoinable and stops them from storing their values, waiting for a
//     store already on its way, which the invalidation then overwrites or
//     removes;
//   - endInvalidation makes unjoinable the flights that started while the
//     store was being changed, which may have read what it replaced (their
//     loads began after the invalidation was asked for, so their values may
//     be stored), and drops this process's fail-safe copies of what was
//     invalidated, after the change, so that a hit that read the old value
//     before it cannot keep a copy (see dropStale).
func (c *Cache) stopLoads(key string, all bool) {
	for _, f := range c.unjoin(key, all) {
		f.write.Lock()
		f.invalidated = true
		f.write.Unlock()
	}
}

// endInvalidation ends an invalidation of key, or of all keys, that
// stopLoads began.
func (c *Cache) endInvalidation(key string, all bool) {
	c.unjoin(key, all)
	c.dropStale(key, all)
}

// unjoin marks the flights of key, or all flights, unjoinable, and returns
// them.
func (c *Cache) unjoin(key string, all bool) []*flight {
	if c.nflights.Load() == 0 {
		return nil // the common case costs no lock
	}
	c.flightMu.Lock()
	defer c.flightMu.Unlock()
	var fs []*flight
	if all {
		for _, l := range c.flights {
			fs = append(fs, l...)
		}
	} else {
		fs = append(fs, c.flights[key]...)
	}
	for _, f := range fs {
		f.unjoined = true
	}
	return fs
}

// waitIdle waits until every flight has ended, stores included, or ctx ends.
func (c *Cache) waitIdle(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		c.idle.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
