package cache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// queue holds the invalidations that failed for want of an answer, to
// replay them once the store answers: one entry per key (a Delete, or the
// Delete that a failed Set owes: the old value must not come back), and a
// Clear, which covers every key queued before it. It is bounded: past max
// keys it drops them and owes a Clear instead, which removes what it can
// no longer track. Each entry carries the sequence number of its last
// queueing, so that a replay removes only what it replayed.
type queue struct {
	mu       sync.Mutex
	max      int
	seq      uint64
	all      uint64            // sequence of the Clear owed; 0: none
	keys     map[string]uint64 // key -> sequence of its last queueing
	pending  atomic.Int64      // len(keys), plus one for a Clear owed: read without mu
	overflow bool              // overflowed since it was last empty: logged once
}

// add queues a Delete of key. When the queue is full it drops its keys
// and owes a Clear instead: it reports how many it dropped, and whether
// this is the first overflow since the queue was last empty.
func (q *queue) add(key string) (dropped int, first bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.seq++
	if _, ok := q.keys[key]; !ok && len(q.keys) >= q.max {
		dropped = len(q.keys) + 1
		first = !q.overflow
		q.keys = nil
		q.all = q.seq
		q.count()
		q.overflow = true
		return dropped, first
	}
	if q.keys == nil {
		q.keys = make(map[string]uint64)
	}
	q.keys[key] = q.seq
	q.count()
	return 0, false
}

// addAll queues a Clear, which covers every key queued so far.
func (q *queue) addAll() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.seq++
	q.all = q.seq
	q.keys = nil
	q.count()
}

// count sets pending. The caller holds q.mu.
func (q *queue) count() {
	n := int64(len(q.keys))
	if q.all != 0 {
		n++
	}
	if n == 0 {
		q.overflow = false
	}
	q.pending.Store(n)
}

// len returns how many invalidations are queued (a Clear counts as one).
func (q *queue) len() int { return int(q.pending.Load()) }

// holds reports whether a read of key must miss: its Delete, or a Clear,
// waits to be replayed. It costs one atomic load while nothing is queued.
func (q *queue) holds(key string) bool {
	if q.pending.Load() == 0 {
		return false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	_, ok := q.keys[key]
	return ok || q.all != 0
}

// mark returns the sequence number of the last queueing, for a write of
// this process that starts now: if it succeeds, it supersedes what was
// queued before it (see written).
func (q *queue) mark() uint64 {
	if q.pending.Load() == 0 {
		return 0 // nothing queued: nothing to supersede
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.seq
}

// written records a write of key (of every key, for all) that succeeded
// and began at mark: the invalidations queued before it are done. A Set
// that lands after a Delete that failed leaves nothing of the old value;
// keeping the Delete queued would only make this process read its own
// write as missing.
func (q *queue) written(key string, all bool, mark uint64) {
	if mark == 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if all {
		if q.all != 0 && q.all <= mark {
			q.all = 0
		}
		for k, s := range q.keys {
			if s <= mark {
				delete(q.keys, k)
			}
		}
	} else if s, ok := q.keys[key]; ok && s <= mark {
		delete(q.keys, key)
	}
	q.count()
}

// snapshot returns what is queued: the Clear owed (its sequence, or 0) and
// the keys with theirs.
func (q *queue) snapshot() (all uint64, keys map[string]uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	keys = make(map[string]uint64, len(q.keys))
	for k, s := range q.keys {
		keys[k] = s
	}
	return q.all, keys
}

// replayWorkers is how many Deletes a replay has in flight at once.
const replayWorkers = 16

// replay applies what is queued to the inner store: the Clear first, then
// the Deletes, each bounded by the timeout. What was replayed leaves the
// queue. It stops at the first failure for want of an answer and returns
// it; a Delete the store refuses (ErrRefused) stays queued, the others go
// on, and the refusal is returned.
func (b *breaker) replay(ctx context.Context) error {
	all, keys := b.q.snapshot()
	if all != 0 {
		if err := b.c.inner.Clear(ctx); err != nil {
			return errors.Join(errors.New("replay of a queued clear"), err)
		}
		b.c.stats.replayed.add()
		b.q.written("", true, all)
	}
	type item struct {
		key string
		seq uint64
	}
	work := make(chan item)
	var (
		wg      sync.WaitGroup
		errMu   sync.Mutex
		first   error // a failure for want of an answer: stop
		refused error // a refusal: go on
	)
	for range min(replayWorkers, len(keys)) {
		wg.Go(func() {
			for it := range work {
				dctx, cancel := context.WithTimeout(ctx, b.c.timeout)
				err := b.c.inner.Delete(dctx, it.key)
				cancel()
				if err != nil {
					errMu.Lock()
					switch {
					case !errors.Is(err, ErrRefused):
						if first == nil {
							first = errors.Join(errors.New("replay of a queued delete"), err)
						}
					case refused == nil:
						refused = errors.Join(errors.New("replay of a queued delete"), err)
					}
					errMu.Unlock()
					continue
				}
				b.c.stats.replayed.add()
				b.q.written(it.key, false, it.seq)
			}
		})
	}
	for k, s := range keys {
		errMu.Lock()
		stop := first != nil
		errMu.Unlock()
		if stop || ctx.Err() != nil {
			break
		}
		work <- item{k, s}
	}
	close(work)
	wg.Wait()
	switch {
	case first != nil:
		return first
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return refused
}
