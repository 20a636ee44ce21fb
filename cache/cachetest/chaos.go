package cachetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ushka-go/ushka/cache"
)

// Op names a Store call that [Chaos] can fault.
type Op string

// The calls Chaos can fault. Close is never faulted, so that a test can
// always clean up.
const (
	OpGet    Op = "get"    // Store.Get (and the front end's reads through it)
	OpSet    Op = "set"    // Store.Set
	OpDelete Op = "delete" // Store.Delete
	OpClear  Op = "clear"  // Store.Clear
	OpPing   Op = "ping"   // Pinger.Ping
	OpLock   Op = "lock"   // Locker.Lock, Renew, Fill and Unlock
)

// Chaos injects faults into the stores it wraps: errors, latency and hangs,
// so that a test can show what a cache does when its backend fails or
// stalls, with any [cache.Store] and without killing a server. Faults are
// switched on and off while calls run; a zero Chaos injects nothing:
//
//	var chaos cachetest.Chaos
//	c := cache.New(chaos.Wrap(store))
//	chaos.Fail(errors.New("connection refused"))  // every call fails at once
//	chaos.Hang(cachetest.OpGet)                    // reads block until their context ends
//	chaos.Heal()                                   // back to normal; hung calls go on
//
// A wrapped store keeps the capabilities the front end looks for: a
// [cache.Locker] stays one (its calls are faulted as [OpLock]), a
// [cache.NearCacher] stays one (GetNear is faulted as [OpGet], a near hit
// included), and every wrapped store is a [cache.Pinger] (asking the inner
// store, when it is one). An in-memory store's zero-copy read is not passed
// on: wrapped, it is read through Get, as a remote store is. A Chaos is
// safe for concurrent use.
type Chaos struct {
	mu       sync.Mutex
	err      error
	delay    time.Duration
	hang     bool
	release  chan struct{} // closed when the fault in force ends: hung and delayed calls go on
	ops      []Op          // the calls the fault applies to; empty: all
	injected atomic.Int64
}

// Fail makes the calls ops (every call when none is named) fail at once
// with an error wrapping err, replacing any other fault. A nil err heals.
func (c *Chaos) Fail(err error, ops ...Op) {
	c.set(func() { c.err = err }, ops)
}

// Delay makes the calls ops (every call when none is named) wait d before
// they run, or until their context ends, replacing any other fault.
func (c *Chaos) Delay(d time.Duration, ops ...Op) {
	c.set(func() { c.delay = d }, ops)
}

// Hang makes the calls ops (every call when none is named) block, as they
// do on a server that accepted the connection and stopped answering, until
// their context ends or the hang ends, replacing any other fault. A call
// released by Heal, or by another fault, then runs; calls already hung stay
// hung when Hang is called again.
func (c *Chaos) Hang(ops ...Op) {
	c.set(func() { c.hang = true }, ops)
}

// Heal ends every fault and releases the hung and delayed calls.
func (c *Chaos) Heal() { c.set(func() {}, nil) }

// Injected returns how many calls met a fault so far.
func (c *Chaos) Injected() int64 { return c.injected.Load() }

// set replaces the fault in force. The calls the old one holds (hung or
// delayed) are released, unless both are hangs: a hung call stays hung.
func (c *Chaos) set(fault func(), ops []Op) {
	c.mu.Lock()
	defer c.mu.Unlock()
	wasHang := c.hang
	c.err, c.delay, c.hang = nil, 0, false
	fault()
	c.ops = slices.Clone(ops)
	if c.release != nil && !(wasHang && c.hang) {
		close(c.release)
		c.release = nil
	}
	if c.release == nil {
		c.release = make(chan struct{})
	}
}

// enter applies the fault in force to a call of op, if any, and returns the
// error the call must fail with, or nil to let it run.
func (c *Chaos) enter(ctx context.Context, op Op) error {
	c.mu.Lock()
	err, delay, hang, release, ops := c.err, c.delay, c.hang, c.release, c.ops
	c.mu.Unlock()
	if err == nil && delay == 0 && !hang || len(ops) > 0 && !slices.Contains(ops, op) {
		return nil
	}
	c.injected.Add(1)
	if err != nil {
		return fmt.Errorf("cachetest: chaos: %s: %w", op, err)
	}
	var expired <-chan time.Time
	if !hang {
		t := time.NewTimer(delay)
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-expired:
		return nil
	case <-release:
		return nil
	case <-ctx.Done():
		if hang {
			return fmt.Errorf("cachetest: chaos: %s hung: %w", op, ctx.Err())
		}
		return fmt.Errorf("cachetest: chaos: %s delayed %v: %w", op, delay, ctx.Err())
	}
}

// Wrap returns s with c's faults injected into its calls. Close is passed
// on as it is.
func (c *Chaos) Wrap(s cache.Store) cache.Store {
	cs := &chaosStore{c: c, s: s}
	l, locker := s.(cache.Locker)
	n, near := s.(cache.NearCacher)
	switch {
	case locker && near:
		return &chaosLockerNear{&chaosLocker{cs, l}, chaosNearPart{c, n}}
	case locker:
		return &chaosLocker{cs, l}
	case near:
		return &chaosNear{cs, chaosNearPart{c, n}}
	}
	return cs
}

type chaosStore struct {
	c *Chaos
	s cache.Store
}

func (w *chaosStore) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if err := w.c.enter(ctx, OpGet); err != nil {
		return nil, false, err
	}
	return w.s.Get(ctx, key)
}

func (w *chaosStore) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := w.c.enter(ctx, OpSet); err != nil {
		return err
	}
	return w.s.Set(ctx, key, value, ttl)
}

func (w *chaosStore) Delete(ctx context.Context, key string) error {
	if err := w.c.enter(ctx, OpDelete); err != nil {
		return err
	}
	return w.s.Delete(ctx, key)
}

func (w *chaosStore) Clear(ctx context.Context) error {
	if err := w.c.enter(ctx, OpClear); err != nil {
		return err
	}
	return w.s.Clear(ctx)
}

func (w *chaosStore) Close() error { return w.s.Close() }

// Ping implements [cache.Pinger]: the fault, then the inner store's Ping
// when it has one.
func (w *chaosStore) Ping(ctx context.Context) error {
	if err := w.c.enter(ctx, OpPing); err != nil {
		return err
	}
	if p, ok := w.s.(cache.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

// chaosLocker is the wrapper of a store that is a [cache.Locker].
type chaosLocker struct {
	*chaosStore
	l cache.Locker
}

func (w *chaosLocker) Lock(ctx context.Context, key, token string, lease time.Duration, seen time.Time) (bool, []byte, bool, error) {
	if err := w.c.enter(ctx, OpLock); err != nil {
		return false, nil, false, err
	}
	return w.l.Lock(ctx, key, token, lease, seen)
}

func (w *chaosLocker) Renew(ctx context.Context, key, token string, lease time.Duration) (bool, error) {
	if err := w.c.enter(ctx, OpLock); err != nil {
		return false, err
	}
	return w.l.Renew(ctx, key, token, lease)
}

func (w *chaosLocker) Fill(ctx context.Context, key, token string, entry []byte, ttl time.Duration) (bool, error) {
	if err := w.c.enter(ctx, OpLock); err != nil {
		return false, err
	}
	return w.l.Fill(ctx, key, token, entry, ttl)
}

func (w *chaosLocker) Unlock(ctx context.Context, key, token string) error {
	if err := w.c.enter(ctx, OpLock); err != nil {
		return err
	}
	return w.l.Unlock(ctx, key, token)
}

// Watch is passed on: it makes no call that could fail.
func (w *chaosLocker) Watch(key string) (<-chan struct{}, func()) { return w.l.Watch(key) }

// chaosNearPart is the [cache.NearCacher] side of a wrapper.
type chaosNearPart struct {
	c *Chaos
	n cache.NearCacher
}

func (w chaosNearPart) GetNear(ctx context.Context, key string) ([]byte, bool, bool, error) {
	if err := w.c.enter(ctx, OpGet); err != nil {
		return nil, false, false, err
	}
	return w.n.GetNear(ctx, key)
}

func (w chaosNearPart) NearUsage() (int, int64)                  { return w.n.NearUsage() }
func (w chaosNearPart) NearPeek(key string) ([]byte, bool, bool) { return w.n.NearPeek(key) }
func (w chaosNearPart) NearEnabled() bool                        { return w.n.NearEnabled() }
func (w chaosNearPart) OnChange(fn func(key string))             { w.n.OnChange(fn) }

// chaosNear is the wrapper of a store with a near cache.
type chaosNear struct {
	*chaosStore
	chaosNearPart
}

// chaosLockerNear is the wrapper of a Locker with a near cache.
type chaosLockerNear struct {
	*chaosLocker
	chaosNearPart
}

var (
	_ cache.Store      = (*chaosStore)(nil)
	_ cache.Pinger     = (*chaosStore)(nil)
	_ cache.Locker     = (*chaosLocker)(nil)
	_ cache.NearCacher = (*chaosNear)(nil)
	_ cache.Locker     = (*chaosLockerNear)(nil)
	_ cache.NearCacher = (*chaosLockerNear)(nil)
)
