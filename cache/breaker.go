package cache

import (
	"context"
	"errors"
	"fmt"
	"go.opentelemetry.io/otel/trace"
	"sync"
	"sync/atomic"
	"time"
)

// The outage contract (DESIGN.md §7): a remote store that is down or hung
// costs a request nothing once the cache knows it, and no invalidation is
// lost.
//
// A circuit breaker stands in front of every store that is not in the
// process (see guard.go). It opens after breaker_failures calls in a row
// fail for want of an answer (an error other than a refusal, or the
// timeout), or at once when the store has answered nothing for
// breaker_hang_after while calls waited on it: a hung server is found
// without waiting out every call's timeout. While it is open every call
// fails at once with [ErrUnavailable], and one probe at a time (a Ping, on
// its own goroutine, every breaker_retry) asks the store whether it is back.
// When a probe is answered the breaker is half-open: the invalidations that
// failed meanwhile are replayed, and only then does it close.
//
// A Delete, Clear or Set that fails for want of an answer, or that the
// breaker refuses, is still an error to its caller, and is queued too (see
// queue.go): the queue is replayed before the breaker lets reads through,
// and until then this process reads a queued key as missing.

// Defaults of the breaker's [Config] fields.
const (
	// DefaultBreakerFailures is how many calls in a row that fail for want
	// of an answer open the breaker.
	DefaultBreakerFailures = 3
	// DefaultBreakerRetry is how often an open breaker probes the store.
	DefaultBreakerRetry = 250 * time.Millisecond
	// DefaultInvalidationQueue bounds the invalidations queued while the
	// store is unavailable; past it, the cache is cleared on recovery.
	DefaultInvalidationQueue = 10000
)

// BreakerState is the state of a cache's circuit breaker.
type BreakerState uint32

const (
	// BreakerClosed: calls go to the store.
	BreakerClosed BreakerState = iota
	// BreakerOpen: the store failed or stopped answering; calls fail at
	// once with [ErrUnavailable] while a probe asks it every breaker_retry.
	BreakerOpen
	// BreakerHalfOpen: a probe was answered, and the invalidations queued
	// meanwhile are being replayed; calls still fail at once until they are.
	BreakerHalfOpen
)

func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerOpen:
		return "open"
	case BreakerHalfOpen:
		return "half_open"
	}
	return fmt.Sprintf("BreakerState(%d)", uint32(s))
}

// MarshalText implements [encoding.TextMarshaler] with the state's name.
func (s BreakerState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// BreakerStatus is the state of a cache's circuit breaker, for a health
// check ([Cache.Breaker]).
type BreakerStatus struct {
	// Backend names the store: the backend of [Config], or the store's type.
	Backend string `json:"backend"`
	// State is closed while calls go to the store.
	State BreakerState `json:"state"`
	// Since is when the breaker entered State (zero: closed from the start).
	Since time.Time `json:"since,omitzero"`
	// Reason is why the store is thought down: the failure that opened the
	// breaker, or the last failed probe. Empty while closed.
	Reason string `json:"reason,omitempty"`
	// Queued is how many invalidations wait to be replayed (a queued Clear
	// counts as one).
	Queued int `json:"queued"`
}

// BreakerConfig sets the thresholds of the circuit breaker a [Cache] puts
// in front of a remote store ([WithBreaker]); [Open] takes them from the
// breaker_* keys of [Config]. A zero field keeps its default.
type BreakerConfig struct {
	// Failures is how many calls in a row that fail for want of an answer
	// open the breaker. Default 3.
	Failures int
	// HangAfter opens the breaker when the store has answered nothing for
	// this long while calls waited. Default half the timeout.
	HangAfter time.Duration
	// Retry is how often an open breaker probes the store. Default 250ms.
	Retry time.Duration
	// QueueMax bounds the invalidations queued for replay. Default 10000.
	QueueMax int
}

// WithBreaker sets the thresholds of the circuit breaker in front of a
// remote store. An in-process store has no breaker and ignores it.
func WithBreaker(bc BreakerConfig) Option {
	return optionFunc{fmt.Sprintf("WithBreaker(%+v)", bc), func(c *Cache) {
		if c.brk == nil {
			return
		}
		s := &c.brk.set
		if bc.Failures > 0 {
			s.failures = bc.Failures
		}
		if bc.HangAfter > 0 {
			s.hangAfter = bc.HangAfter
		}
		if bc.Retry > 0 {
			s.retry = bc.Retry
		}
		if bc.QueueMax > 0 {
			s.queueMax = bc.QueueMax
			c.brk.q.max = bc.QueueMax
		}
	}}
}

// breakerSettings are the thresholds of a breaker.
type breakerSettings struct {
	failures  int           // calls in a row that fail open it
	hangAfter time.Duration // no answer for this long while calls wait opens it
	retry     time.Duration // probe interval while open
	queueMax  int           // bound of the invalidation queue
}

// breaker is the circuit breaker of one Cache (see above). Its hot path is
// atomics only: a state, a count of calls in flight, the time of the last
// answer.
type breaker struct {
	c       *Cache // for its logger, timeout and counters
	backend string
	set     breakerSettings
	base    time.Time // the clock's origin: now() is monotonic nanoseconds since

	state      atomic.Uint32                 // a BreakerState
	failed     atomic.Int64                  // calls in a row that failed for want of an answer
	slot       atomic.Uint64                 // the generation (high 32 bits: closings so far) and its calls waiting (low 32; Clear aside)
	answered   atomic.Int64                  // now() of the last answer, or of the start of a busy spell
	watching   atomic.Bool                   // the watchdog is armed
	unanswered atomic.Bool                   // owed is not zero
	watchdog   *time.Timer                   // fires hangAfter into a busy spell without an answer
	refusal    atomic.Pointer[sentinelError] // what a refused call returns, made when the reason changes

	q queue

	mu      sync.Mutex
	owed    int64 // how long the busy spells that ended unanswered, one after the other, waited
	owedAt  int64 // now() when the last of them ended
	since   time.Time
	reason  error
	probing bool // the prober runs
	stopped bool
	wg      sync.WaitGroup

	ctx    context.Context // the prober's, ended by shutdown
	cancel context.CancelFunc
}

func newBreaker(c *Cache, backend string) *breaker {
	b := &breaker{
		c: c, backend: backend, base: time.Now(),
		set: breakerSettings{failures: DefaultBreakerFailures, retry: DefaultBreakerRetry, queueMax: DefaultInvalidationQueue},
	}
	b.q.max = b.set.queueMax
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.watchdog = time.AfterFunc(time.Hour, b.watch)
	b.watchdog.Stop()
	return b
}

// now is monotonic nanoseconds since the breaker was made.
func (b *breaker) now() int64 { return int64(time.Since(b.base)) }

// hangAfter is the configured threshold, or half the timeout.
func (b *breaker) hangAfter() int64 {
	if b.set.hangAfter > 0 {
		return int64(b.set.hangAfter)
	}
	return int64(max(b.c.timeout/2, time.Millisecond))
}

// call is one call on the store, from begin to end.
type call struct {
	gen     uint32
	tracked bool       // counted among the calls waiting
	op      string     // its operation, for the metrics
	began   int64      // when it began (now()), with metrics on
	span    trace.Span // its span, with traces on
	key     string     // its key, with traces on
}

// slot's halves: a generation starts at each closing of the breaker, so
// that a call left over from an outage that is over counts for nothing,
// and is kept in one word with its count of calls waiting, so that a call
// is counted in the generation it reads and nothing can come between.
const waitingMask = 1<<32 - 1

func (b *breaker) gen() uint32     { return uint32(b.slot.Load() >> 32) }
func (b *breaker) waiting() uint32 { return uint32(b.slot.Load() & waitingMask) }

// begin admits a call, or returns the error that refuses it when the
// breaker is not closed. A tracked call counts as waiting for an answer
// (see watch); Clear, which takes many round trips, is not tracked.
func (b *breaker) begin(ctx context.Context, op, key string, tracked bool) (call, error) {
	if BreakerState(b.state.Load()) != BreakerClosed {
		return call{}, b.refuse()
	}
	cl := call{op: op}
	var now int64 // read once, if at all
	if b.c.metrics != nil {
		now = b.now() // one read of the monotonic clock, where time.Now makes two
		cl.began = max(now, 1)
	}
	if b.c.tracing != nil {
		cl.span, cl.key = b.c.tracing.startCall(ctx, op, key), key
	}
	if !tracked {
		cl.gen = b.gen()
		return cl, nil
	}
	v := b.slot.Add(1)
	if v&waitingMask == 1 {
		if now == 0 {
			now = b.now()
		}
		b.answered.Store(now) // a busy spell starts: the store owes an answer from now
		b.arm(b.hangAfter())
	}
	cl.gen, cl.tracked = uint32(v>>32), true
	return cl, nil
}

// arm starts the watchdog to fire after d, unless it is armed.
func (b *breaker) arm(d int64) {
	if !b.watching.Load() && b.watching.CompareAndSwap(false, true) {
		b.watchdog.Reset(time.Duration(d))
	}
}

// watch is the watchdog: it opens the breaker when calls have waited
// hangAfter without any answer, so that a hung server is found while the
// calls on it wait, not only after three of them time out. While calls
// wait and answers come, it looks again hangAfter after the last answer;
// it stops when no call waits, and the next busy spell arms it again.
func (b *breaker) watch() {
	b.watching.Store(false)
	if b.waiting() == 0 {
		return
	}
	hang := b.hangAfter()
	waited := b.now() - b.answered.Load()
	if waited < hang {
		b.arm(hang - waited)
		return
	}
	if v := b.slot.Load(); v&waitingMask > 0 && BreakerState(b.state.Load()) == BreakerClosed {
		b.trip(uint32(v>>32), fmt.Errorf("no answer for %v while calls waited (breaker_hang_after)", time.Duration(waited).Round(time.Millisecond)))
	}
}

// end records the outcome of a call that begin admitted.
func (b *breaker) end(ctx context.Context, cl call, err error) {
	if cl.began != 0 {
		b.c.recordCall(ctx, cl.op, time.Duration(b.now()-cl.began), err)
	}
	if cl.span != nil {
		b.c.tracing.end(cl.span, cl.key, err)
	}
	waiting := -1 // not tracked
	if cl.tracked {
		for {
			v := b.slot.Load()
			if uint32(v>>32) != cl.gen {
				// Begun before the breaker last closed: left over from an
				// outage that is over, it proves nothing either way, and
				// the count of calls waiting started again without it.
				return
			}
			if b.slot.CompareAndSwap(v, v-1) {
				waiting = int((v - 1) & waitingMask)
				break
			}
		}
	} else if b.gen() != cl.gen {
		return
	}
	if err == nil || errors.Is(err, ErrRefused) { // a refusal is an answer: the server is there
		// The time of the last answer matters only while others wait (a
		// spell that starts sets it), and each write is shared by every
		// core: they are written only when needed.
		if waiting > 0 {
			b.answered.Store(b.now())
		}
		if b.failed.Load() != 0 {
			b.failed.Store(0)
		}
		if b.unanswered.Load() {
			b.paid()
		}
		return
	}
	if waiting == 0 {
		b.owe(cl.gen)
	}
	if ctx.Err() != nil || errors.Is(err, ErrClosed) || errors.Is(err, ErrUnavailable) {
		return // the caller gave up, or the cache is closing: not a failure of the store
	}
	if b.failed.Add(1) >= int64(b.set.failures) {
		b.trip(cl.gen, err)
	}
}

// owe records a busy spell that ended without an answer: its callers gave
// up (their deadlines were shorter than breaker_hang_after) or failed.
// Spells that end unanswered one after the other add up, and once they
// have waited breaker_hang_after in all the store is taken for hung, as
// the watchdog takes it within one spell: callers with short deadlines
// must not hide a hung store. Spells more than breaker_hang_after apart do
// not add up, and any answer pays what is owed.
func (b *breaker) owe(gen uint32) {
	now := b.now()
	start := b.answered.Load() // the last answer, or the spell's start if none came in it
	hang := b.hangAfter()
	b.mu.Lock()
	if b.owed == 0 || start-b.owedAt > hang {
		b.owed = 0
	}
	b.owed += now - start
	b.owedAt = now
	owed := b.owed
	b.mu.Unlock()
	b.unanswered.Store(true)
	if owed >= hang {
		b.trip(gen, fmt.Errorf("no answer for %v in all while calls, whose callers gave up, waited (breaker_hang_after)", time.Duration(owed).Round(time.Millisecond)))
	}
}

// paid forgets the spells that ended unanswered: an answer came.
func (b *breaker) paid() {
	b.mu.Lock()
	b.owed = 0
	b.mu.Unlock()
	b.unanswered.Store(false)
}

// pastBreaker runs do, one call of the store (op, on key or "" for many),
// through c's circuit breaker when it has one: refused at once while the
// breaker is open, and counted for it otherwise.
func (c *Cache) pastBreaker(ctx context.Context, op, key string, do func() error) error {
	if c.brk == nil {
		return do()
	}
	cl, err := c.brk.begin(ctx, op, key, true)
	if err != nil {
		return err
	}
	err = do()
	c.brk.end(ctx, cl, err)
	return err
}

// settleWrite records the outcome err of an invalidation of key (of every key
// for all) begun at mark: a success supersedes what was queued for it
// before; one whose outcome is unknown is queued to be replayed, and its
// error says so.
func (b *breaker) settleWrite(ctx context.Context, key string, all bool, mark uint64, err error) error {
	switch {
	case err == nil:
		b.q.written(key, all, mark)
	case unknown(ctx, err):
		b.enqueue(key, all)
		return fmt.Errorf("%w; queued, to be replayed when the backend answers", err)
	}
	return err
}

// unknown reports whether err, from a call on ctx, leaves it unknown
// whether the store did what was asked: no answer came (an outage, the
// timeout, a refusal by the breaker), or the caller stopped waiting.
func unknown(ctx context.Context, err error) bool {
	switch {
	case err == nil || errors.Is(err, ErrClosed):
		return false
	case ctx.Err() != nil:
		return true
	}
	return !errors.Is(err, ErrRefused)
}

// refuse counts and returns the error of a call the breaker refused.
func (b *breaker) refuse() error {
	b.c.stats.refused.add()
	if e := b.refusal.Load(); e != nil {
		return e
	}
	return sentinelf(ErrUnavailable, "%s unavailable: circuit breaker open", b.backend)
}

// setReason records why the store is thought down, and the error refused
// calls return from now on. The caller holds b.mu.
func (b *breaker) setReason(err error) {
	b.reason = err
	msg := fmt.Sprintf("%s unavailable: circuit breaker open since %s", b.backend, b.since.Format("15:04:05.000"))
	if err != nil {
		msg += fmt.Sprintf(" (%v)", err)
	}
	b.refusal.Store(&sentinelError{msg: msg, is: ErrUnavailable})
}

// trip opens the breaker, unless it closed since the failing call began
// (gen): a call left over from an outage that is over proves nothing.
func (b *breaker) trip(gen uint32, cause error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gen() != gen || b.stopped || !b.state.CompareAndSwap(uint32(BreakerClosed), uint32(BreakerOpen)) {
		return
	}
	b.since = time.Now()
	b.setReason(cause)
	b.c.stats.opened.add()
	b.c.log.Warn("cache breaker open: calls fail at once until the backend answers again", event(EventBreakerOpen),
		"backend", b.backend, "reason", cause, "retry", b.set.retry)
	b.startProber()
}

// startProber starts the prober unless it runs. The caller holds b.mu.
func (b *breaker) startProber() {
	if b.probing || b.stopped {
		return
	}
	b.probing = true
	b.wg.Go(b.probe)
}

// probe runs while the breaker is not closed or invalidations wait: it
// asks the store whether it answers, every retry, one probe at a time;
// once it does, it replays the queue and closes the breaker. What was
// queued meanwhile, and Deletes the store refused (a read-only replica
// answers READONLY until an operator acts), stay queued, and are tried
// again every retry: until then this process reads those keys as missing,
// but the others go to the store again.
func (b *breaker) probe() {
	t := time.NewTimer(0) // an invalidation queued while closed is replayed at once
	if BreakerState(b.state.Load()) != BreakerClosed {
		t.Reset(b.set.retry)
	}
	defer t.Stop()
	ctx := b.ctx
	warned := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := b.ping(ctx)
		if err == nil {
			b.state.CompareAndSwap(uint32(BreakerOpen), uint32(BreakerHalfOpen))
			err = b.replay(ctx)
		}
		if ctx.Err() != nil {
			return
		}
		if err == nil || errors.Is(err, ErrRefused) {
			if errors.Is(err, ErrRefused) && !warned {
				warned = true
				b.c.log.Warn("cache invalidation refused by the backend; this process reads the key as missing until it is accepted", event(EventInvalidationRefused),
					"backend", b.backend, "err", err)
			}
			if b.settle() {
				return
			}
		} else {
			b.mu.Lock()
			if BreakerState(b.state.Load()) != BreakerClosed {
				b.setReason(err)
			}
			b.mu.Unlock()
			b.state.CompareAndSwap(uint32(BreakerHalfOpen), uint32(BreakerOpen))
		}
		t.Reset(b.set.retry)
	}
}

// ping asks the store whether it answers: its Ping when it has one, else
// a Get of a key nobody writes. A refusal is an answer.
func (b *breaker) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, b.c.timeout)
	defer cancel()
	var err error
	if p, ok := b.c.inner.(Pinger); ok {
		err = p.Ping(ctx)
	} else {
		_, _, err = b.c.inner.Get(ctx, "ushka-breaker-probe")
	}
	if err != nil && !errors.Is(err, ErrRefused) {
		return fmt.Errorf("probe: %w", err)
	}
	return nil
}

// settle closes the breaker, the store having answered and taken the
// queue's Deletes as they were when the replay began, and reports whether
// the prober can stop: nothing is left to replay.
func (b *breaker) settle() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	stop := b.q.len() == 0
	if stop {
		b.probing = false
	}
	if BreakerState(b.state.Load()) == BreakerClosed {
		return stop // a queue replayed while closed
	}
	// A new generation: calls still hung from the outage neither count
	// nor keep the watchdog from starting with the next call.
	b.slot.Store(uint64(b.gen()+1) << 32) // calls counted in the old generation end ignored
	b.failed.Store(0)
	b.owed = 0
	b.unanswered.Store(false)
	b.answered.Store(b.now())
	b.state.Store(uint32(BreakerClosed))
	down := time.Since(b.since).Round(time.Millisecond)
	b.since, b.reason = time.Now(), nil
	b.refusal.Store(nil)
	b.c.log.Info("cache breaker closed: the backend answers again", event(EventBreakerClosed),
		"backend", b.backend, "down_for", down)
	return stop
}

// status returns the breaker's state for a health check.
func (b *breaker) status() BreakerStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := BreakerStatus{Backend: b.backend, State: BreakerState(b.state.Load()), Since: b.since, Queued: b.q.len()}
	if b.reason != nil && st.State != BreakerClosed {
		st.Reason = b.reason.Error()
	}
	return st
}

// shutdown stops the prober for Close, after one last attempt to replay
// what is queued, bounded by the timeout: a process that exits loses its
// queue. It reports how many invalidations were lost.
func (b *breaker) shutdown() int {
	if b.q.len() > 0 && b.ping(context.Background()) == nil {
		ctx, cancel := context.WithTimeout(context.Background(), b.c.timeout)
		_ = b.replay(ctx)
		cancel()
	}
	b.mu.Lock()
	b.stopped = true
	b.mu.Unlock()
	b.cancel()
	b.watchdog.Stop()
	b.wg.Wait()
	return b.q.len()
}
