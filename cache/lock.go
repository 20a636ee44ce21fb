package cache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"time"
)

// Locker is implemented by a [Store] that several processes share (Redis),
// so that a [GetOrSet] load of a key runs once across all of them, not once
// per process, and so that an invalidation in any process stops a load that
// began before it from storing its value.
//
// The lease of a key lives in the key's own entry (see [Entry]): a missing
// key is locked with a placeholder entry, an existing one by writing the
// lock into its header. So a lock needs no key of its own, is under the
// store's key prefix, is removed by Delete and Clear with the entry, and is
// in the same Cluster slot as its value. Every method is atomic with respect
// to every other call on the same key, in every process.
//
// The front end finds the capability with a type assertion, as database/sql
// finds driver.Pinger; a Store without it keeps the in-process single-flight.
// cachetest.TestLocker checks a Store that claims it.
type Locker interface {
	// Lock takes the lease of key for token until lease has passed, if no
	// lease stands on it (token's own included) and the entry is the one the
	// caller last saw: missing when seen is zero, or an entry with a header
	// whose Created is seen. A missing key is locked by storing a
	// placeholder that expires with the lease; a locked entry lives at least
	// until the lease ends, so that the holder's Fill finds it. A lease whose
	// time has passed does not stand: its holder died or hung, and the key is
	// taken over. A token is 1 to 64 printable ASCII bytes other than "-";
	// lease is > 0.
	//
	// It returns whether it took the lease, and the entry as it was before
	// the call (found == false when missing), so that a caller who did not
	// get the lease can see whether the value it waits for has landed.
	Lock(ctx context.Context, key, token string, lease time.Duration, seen time.Time) (acquired bool, entry []byte, found bool, err error)

	// Renew extends token's lease on key to lease from now. Token holds the
	// lease while the key's entry names token and the lease has not passed.
	// Renew reports false when token no longer holds it: the entry was
	// deleted, replaced, taken over, or the lease passed.
	Renew(ctx context.Context, key, token string, lease time.Duration) (bool, error)

	// Fill stores entry under key for ttl (0: no expiry) if token still
	// holds key's lease (as for Renew), which the write releases, and then
	// wakes the key's watchers in every process. It reports whether it stored: false when
	// the lease was lost (a Delete, Clear or Set came, or it was taken over).
	// Fill takes ownership of entry.
	Fill(ctx context.Context, key, token string, entry []byte, ttl time.Duration) (bool, error)

	// Unlock releases token's lease on key without storing a value: a
	// placeholder is removed, an entry keeps its value and ttl. Releasing a
	// lease that token does not hold does nothing. When it released one, it
	// wakes the key's watchers.
	Unlock(ctx context.Context, key, token string) error

	// Watch returns a channel that receives when key is filled or unlocked,
	// in any process, and a function that stops the watch. Call it before
	// Lock, so that a Fill between a failed Lock and the wait is not missed.
	// Notifications may be lost (a reconnect; the first Watch of a process,
	// until its subscription is up); callers also re-check at an interval.
	// After Close the channel receives once, so that a waiter looks again and
	// finds the store closed.
	Watch(key string) (filled <-chan struct{}, stop func())
}

// lockPoll is the longest a load waits for another process's lease before
// it looks at the key again, in case a notification was lost.
const lockPoll = 50 * time.Millisecond

// errNoLease stops the store of a value loaded without the key's lease on a
// Locker store.
var errNoLease = errors.New("no lease")

// errThrottled fails a load that another process's failed load made wait:
// fail-safe serves the stale value until the throttle passes.
var errThrottled = errors.New("another process's load failed; fail-safe holds the stale value for the throttle")

// lockOrWait takes the job's key's lease for f, or waits for the process
// that holds it to store the value. It returns the value when one was
// stored meanwhile (ok), errThrottled when the holder's load failed and
// fail-safe holds the stale value, and otherwise returns with f.token set
// when f holds the lease, or unset when the load should run without one
// (the store failed, or its entry cannot be locked).
func (c *Cache) lockOrWait(ctx context.Context, f *flight, j *loadJob) (v any, ok bool, err error) {
	token := newToken()
	seen := j.seen
	cleared := false // an entry this load cannot use was deleted once
	for {
		filled, stop := c.locker.Watch(j.key)
		// Held from before the Lock: the store's report of the Lock's own
		// write may come before the Lock returns.
		c.setHeld(f, true)
		acquired, cur, found, err := c.locker.Lock(ctx, j.key, token, c.lease, seen)
		if err != nil {
			stop()
			if errors.Is(err, ErrClosed) {
				return nil, false, err // no load after Close
			}
			if errors.Is(err, ErrUnavailable) {
				c.setHeld(f, false)
				return nil, false, nil // never sent: load without the lease
			}
			// Load anyway, keeping the token: a Lock that timed out here may
			// still have run on a busy server. Then the Fill with this token
			// stores the value and releases the lease; otherwise it is
			// refused and nothing is stored. Either way no lease is left
			// that nobody holds (an Unlock with it follows a failed load).
			c.log.WarnContext(ctx, "cache lock failed; loading without knowing whether it holds the lease", event(EventLockFailed), "key", j.key, "err", err)
			f.token = token
			return nil, false, nil
		}
		e, perr := ParseEntry(cur)
		if !acquired {
			c.setHeld(f, false)
			if c.nearOn() && (!found || perr != nil || !e.Created.Equal(seen)) {
				// Changed since this process saw it, maybe while a report
				// of the change was taken for this Lock's.
				c.dropStale(j.key, false)
			}
		}
		if acquired {
			stop()
			f.token = token
			if throttled(j, e, perr) {
				// It became free because the holder's load failed and
				// fail-safe stored the stale value back: let it be.
				c.unlock(ctx, f)
				f.token = ""
				return nil, false, errThrottled
			}
			f.renewStop = c.startRenew(f, token)
			return nil, false, nil
		}
		switch {
		case !found:
			// The entry we saw is gone (deleted): take the missing key.
			stop()
			seen = time.Time{}
			continue
		case perr == nil && e.knownMissing(time.Now()):
			// Another process's batch load left the key out (CacheMisses).
			stop()
			return nil, false, errKnownMissing(j.key)
		case perr != nil || e.freshAt(time.Now()):
			stop()
			if perr == nil && (len(e.Tags) == 0 || c.tagsStillHold(ctx, e)) {
				if v, err := j.decode(e.Value); err == nil {
					return v, true, nil // stored by another process, or fresh already
				}
			}
			// An entry of another layout, one that does not decode as this
			// type (a struct changed by a deploy), or one with a tag
			// invalidated since (gone as far as any reader can tell): it
			// cannot be locked. Delete it, which never makes anything stale,
			// and take the missing key; only once, so that a writer of such
			// entries in another process cannot keep this load waiting.
			if cleared {
				return nil, false, nil // load; without the lease, nothing is stored
			}
			cleared = true
			if err := c.store.Delete(ctx, j.key); err != nil {
				return nil, false, nil
			}
			seen = time.Time{}
			continue
		case !e.header:
			stop()
			return nil, false, nil
		case throttled(j, e, perr):
			// The holder's load failed, and fail-safe holds the stale
			// value for the throttle: do not try again before it passes.
			stop()
			return nil, false, errThrottled
		case !e.Placeholder && e.Lock == "" && !e.Created.Equal(seen):
			// Changed since we saw it, and free: try again at once.
			stop()
			seen = e.Created
			continue
		}
		if !e.Placeholder {
			seen = e.Created
		}
		batchOf(ctx).settle(j.key) // a GetOrSetMany's key waits for another process: its batch goes on without it
		t := time.NewTimer(min(lockPoll, c.lease/4))
		select {
		case <-filled:
		case <-t.C:
		}
		t.Stop()
		stop()
	}
}

// throttled reports whether e, a key's entry read for j, is a stale value
// that fail-safe holds for the throttle, so that j, which would serve it
// too, must not try the load before the throttle passes.
func throttled(j *loadJob, e Entry, perr error) bool {
	return perr == nil && j.stale.ok && e.Stale && time.Now().Before(e.Fresh)
}

// startRenew renews f's lease every third of it until the returned
// function is called, or until the lease is found lost: then another
// process deleted, replaced or took over the key, and f is made
// unjoinable, so that callers arriving from then on do not get a value
// loaded before that. (Callers that joined between the other process's
// Delete and this discovery may still get it; it is never stored.)
func (c *Cache) startRenew(f *flight, token string) (stop func()) {
	key := f.key
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(c.lease / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
			held, err := c.locker.Renew(ctx, key, token, c.lease)
			cancel()
			if err == nil && !held {
				c.flightMu.Lock()
				f.unjoined = true
				c.flightMu.Unlock()
				return // deleted or taken over: the Fill will be refused
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// unlock releases f's lease, logging a failure: the lease ends by itself.
//
// With a near cache, the store's reports of changes to the key are taken
// for f's own lock writes while f holds the lease (changedElsewhere). So
// before it unlocks, a lease found lost means another process changed the
// key during the load (a foreign change always takes the lease with it),
// and this process's fail-safe copy goes. After it unlocks, the copy is
// kept only if the key still holds its value (stillHolds).
func (c *Cache) unlock(ctx context.Context, f *flight) {
	near := c.nearOn()
	if near {
		if held, err := c.locker.Renew(ctx, f.key, f.token, c.lease); err == nil && !held {
			c.dropStale(f.key, false)
		}
	}
	if err := c.locker.Unlock(ctx, f.key, f.token); err != nil && !errors.Is(err, ErrClosed) {
		c.log.Log(ctx, logLevel(err), "cache unlock failed; the lease will lapse", event(EventUnlockFailed), "key", f.key, "err", err)
	}
	if have := c.localStale(f.key); near && have.ok {
		holds, err := c.stillHolds(ctx, f, func(b []byte) bool {
			e, perr := ParseEntry(b)
			return perr == nil && e.Created.Equal(have.e.Created) // Unlock keeps the value
		})
		if err == nil && !holds {
			c.dropStale(f.key, false)
		}
		return
	}
	c.setHeld(f, false)
}

// setHeld records whether f holds, or may hold, its key's lease: while it
// does, the store's reports of changes to the key are taken for f's own
// lock writes (see changedElsewhere).
func (c *Cache) setHeld(f *flight, held bool) {
	c.flightMu.Lock()
	f.held = held
	c.flightMu.Unlock()
}

// heldHere reports whether a flight of this process holds key's lease.
func (c *Cache) heldHere(key string) bool {
	c.flightMu.Lock()
	defer c.flightMu.Unlock()
	for _, f := range c.flights[key] {
		if f.held {
			return true
		}
	}
	return false
}

// newToken returns a random lease token: 128 bits in hex.
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
