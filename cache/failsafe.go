package cache

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/ushka-go/ushka/internal/memstore"
)

// Fail-safe (stale_ttl, [StaleFor]): an entry written by GetOrSet is kept
// stale_ttl past its ttl, and served when a fresh value cannot be had: the
// load fails, panics or passes its soft timeout, or the store cannot be
// read. Then the stale value is stored again marked as such ("s" in its
// header) and fresh for fail_safe_throttle, so that for that long every
// process serves it without trying the load: a failing database is asked
// once per throttle, not once per request.
//
// When the store itself is down, the value comes from a copy in process
// memory: a bounded store (stale_max_bytes) of the entries this process
// wrote or read through GetOrSet with fail-safe on. A copy still fresh is
// served as a hit; a stale one as fail-safe serves any stale value. Delete, Set and
// Clear remove this process's copies; other processes keep theirs until
// they read the store again.

// staleValue is an entry that fail-safe may serve, when ok.
type staleValue struct {
	e  Entry
	ok bool
}

// errSoftTimeout ends a wait for a load that passed its soft timeout.
var errSoftTimeout = errors.New("load timed out (soft)")

// serveStale decodes the stale value and counts and logs that it is served
// because of cause (nil: the throttle). It reports false when the value
// does not decode.
func (c *Cache) serveStale(ctx context.Context, key string, s staleValue, decode func([]byte) (any, error), cause error) (any, bool) {
	v, err := decode(s.e.Value)
	if err != nil {
		return nil, false
	}
	c.stats.stale.add()
	if cause != nil {
		c.log.WarnContext(ctx, "cache serving a stale value", event(EventStaleServed), "key", key, "reason", cause)
	}
	return v, true
}

// holdStale stores a failed job's stale value again, marked stale and
// fresh for the throttle, so that no process tries the load again before
// the throttle has passed, and releases the job's lease. Its value is kept
// until stale_ttl after it first went stale.
func (c *Cache) holdStale(ctx context.Context, f *flight, j *loadJob) {
	e := j.stale.e
	now := time.Now()
	if !e.Stale {
		e.Created = e.Fresh // a stale entry's Created is when it went stale
	}
	if e.Created.IsZero() {
		e.Created = now
	}
	keep := e.Created.Add(j.p.staleTTL).Sub(now)
	if keep <= 0 {
		if f.token != "" {
			c.unlock(ctx, f)
		}
		return
	}
	e.Stale, e.Placeholder = true, false
	e.Fresh = now.Add(j.p.throttle)
	e.Lock, e.LockUntil = "", time.Time{}
	e.header = true
	ctx, done, ok := c.beginWrite(ctx, f)
	defer done()
	if !ok {
		return
	}
	if !j.storeOK && f.token == "" {
		// The store is down: hold the value in the local copy only.
		c.keepStaleBytes(f.key, e.Append(nil), keep)
		return
	}
	c.write(ctx, f, e, keep, j.p.staleTTL, "cache store of a stale value failed")
}

// staleCopies returns the store of local copies, making it on first use.
func (c *Cache) staleCopies() *memstore.Store {
	c.staleOnce.Do(func() {
		s, err := memstore.New(memstore.Options{MaxBytes: c.staleMaxBytes})
		if err == nil {
			c.staleStore.Store(s)
		}
	})
	return c.staleStore.Load()
}

// localStale returns this process's copy of key, if any.
func (c *Cache) localStale(key string) staleValue {
	s := c.staleStore.Load()
	if s == nil {
		return staleValue{}
	}
	b, found, err := s.Borrow(context.Background(), key)
	if err != nil || !found {
		return staleValue{}
	}
	e, err := ParseEntry(b)
	if err != nil || e.Placeholder {
		return staleValue{}
	}
	return staleValue{e, true}
}

// keepStale keeps a copy of e, an entry read from the store, unless the
// copy kept already is the same.
func (c *Cache) keepStale(key string, e Entry, staleTTL time.Duration, epoch uint64) {
	if len(e.Tags) > 0 {
		// Not kept: while the store is down this process could not tell
		// that another process invalidated a tag.
		return
	}
	// Compare the headers' first fields, written the same way, rather than
	// parse the copy: this runs on every hit.
	var buf [64]byte
	same := e.appendIdentity(buf[:0])
	if s := c.staleStore.Load(); s != nil {
		if have, found, err := s.Borrow(context.Background(), key); err == nil && found && bytes.HasPrefix(have, same) {
			return
		}
	}
	var keep time.Duration
	switch {
	case e.Stale:
		keep = time.Until(e.Created.Add(staleTTL)) // a stale entry's Created is when it went stale
	case e.Fresh.IsZero():
		keep = staleTTL // no expiry: kept while read, refreshed on each hit
	default:
		keep = time.Until(e.Fresh.Add(staleTTL))
	}
	e.Lock, e.LockUntil = "", time.Time{}
	c.keepCopy(key, e.Append(nil), keep, &epoch)
}

// keepStaleBytes keeps data, an entry with a header, for keep. Its caller
// holds the flight's write lock, which orders it before any invalidation.
func (c *Cache) keepStaleBytes(key string, data []byte, keep time.Duration) {
	c.keepCopy(key, data, keep, nil)
}

// keepCopy keeps data for keep, unless epoch is set and an invalidation
// (Delete, Set, Clear) came since it was read: a hit that read a value
// before a Delete must not bring back the copy the Delete dropped.
func (c *Cache) keepCopy(key string, data []byte, keep time.Duration, epoch *uint64) {
	s := c.staleCopies()
	if s == nil || keep <= 0 {
		return
	}
	c.staleMu.Lock()
	defer c.staleMu.Unlock()
	if epoch != nil && c.invalidations.Of(key) != *epoch {
		return
	}
	_ = s.Set(context.Background(), key, data, keep)
}

// changedElsewhere drops this process's copy of key, which a client of the
// shared store changed (or of every key, for ""): a Delete in another
// process must not be undone by this one serving its copy during an
// outage. A [NearCacher] store calls it, for every change it hears of, this
// process's own included. While a load of this process holds the key's
// lease, a change is taken for the load's own lock write, and the copy is
// kept for fail-safe: another process's change takes the lease with it,
// which the load finds when it stores (the Fill is refused) or gives up
// (unlock), and then drops the copy.
func (c *Cache) changedElsewhere(key string) {
	if key != "" && c.heldHere(key) {
		return
	}
	c.dropStale(key, key == "")
}

// dropStale removes this process's copy of key, or all copies, and counts
// an invalidation.
func (c *Cache) dropStale(key string, all bool) {
	if c.local {
		return // an in-process store never has copies: nothing to order
	}
	// Counted before the copies are looked at: a copy written after this
	// sees the count changed; one written before is deleted below, under
	// the lock that keepCopy writes under.
	if all {
		c.invalidations.ChangedAll()
	} else {
		c.invalidations.Changed(key)
	}
	s := c.staleStore.Load()
	if s == nil {
		return // no copies (an in-process store never keeps any)
	}
	c.staleMu.Lock()
	defer c.staleMu.Unlock()
	if all {
		_ = s.Clear(context.Background())
	} else {
		_ = s.Delete(context.Background(), key)
	}
}
