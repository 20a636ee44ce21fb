package redis

import (
	"context"
	"sync/atomic"
	"time"
)

// timeouts bounds calls by the store's timeout more cheaply than a
// context.WithTimeout per call, which costs a runtime timer, a context and a
// channel each time: at 64 goroutines on loopback that alone made a Get cost
// 1.5x plain rueidis (bench/README.md).
//
// Calls whose context cannot be canceled (context.Background, the context a
// GetOrSet load runs on) share one deadline context per slice of time: the
// first call of each slice makes one, with one timer, and the others reuse
// it. A call thus times out after between timeout and timeout+grain. Calls
// with a cancelable context get their own context.WithTimeout, unless their
// deadline is already sooner than the timeout, in which case their context
// is used as it is.
type timeouts struct {
	timeout, grain time.Duration
	cur            atomic.Pointer[sharedDeadline]
}

func newTimeouts(timeout time.Duration) *timeouts {
	return &timeouts{timeout: timeout, grain: max(timeout/16, time.Millisecond)}
}

// bound returns ctx bounded by the timeout, and the function that releases it.
func (t *timeouts) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	now := time.Now()
	want := now.Add(t.timeout)
	if dl, ok := ctx.Deadline(); ok && !dl.After(want) {
		return ctx, noop
	}
	if ctx.Done() != nil {
		return context.WithDeadline(ctx, want)
	}
	d := t.cur.Load()
	if d == nil || d.deadline.Before(want) {
		d = newSharedDeadline(want.Add(t.grain))
		t.cur.Store(d) // a racing call may replace it; both stay valid
	}
	if ctx == context.Background() || ctx == context.TODO() {
		return d, noop // they carry no values: nothing to delegate
	}
	return withValues{d, ctx}, noop
}

func noop() {}

// sharedDeadline is a context that ends at its deadline, shared by the calls
// of one slice of time.
type sharedDeadline struct {
	deadline time.Time
	done     chan struct{}
}

func newSharedDeadline(deadline time.Time) *sharedDeadline {
	d := &sharedDeadline{deadline: deadline, done: make(chan struct{})}
	time.AfterFunc(time.Until(deadline), func() { close(d.done) })
	return d
}

func (d *sharedDeadline) Deadline() (time.Time, bool) { return d.deadline, true }
func (d *sharedDeadline) Done() <-chan struct{}       { return d.done }
func (d *sharedDeadline) Value(any) any               { return nil }

func (d *sharedDeadline) Err() error {
	select {
	case <-d.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

// withValues is a shared deadline that keeps the values of the caller's
// (uncancelable) context, such as a trace ID.
type withValues struct {
	*sharedDeadline
	values context.Context
}

func (w withValues) Value(key any) any { return w.values.Value(key) }
