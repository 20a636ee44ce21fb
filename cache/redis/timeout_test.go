package redis

import (
	"context"
	"testing"
	"time"
)

type ctxKey struct{}

func TestTimeoutsBound(t *testing.T) {
	tm := newTimeouts(100 * time.Millisecond)

	// Uncancelable contexts share a deadline between timeout and timeout+grain.
	start := time.Now()
	a, cancelA := tm.bound(context.Background())
	b, cancelB := tm.bound(context.Background())
	defer cancelA()
	defer cancelB()
	if a != b {
		t.Error("two calls in the same slice of time did not share a deadline")
	}
	dl, ok := a.Deadline()
	if !ok || dl.Before(start.Add(100*time.Millisecond)) || dl.After(time.Now().Add(100*time.Millisecond+tm.grain)) {
		t.Errorf("deadline %v after start, want within [100ms, 100ms+%v]", dl.Sub(start), tm.grain)
	}
	select {
	case <-a.Done():
		t.Fatal("done before its deadline")
	default:
	}
	<-a.Done()
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Errorf("done after %v, want at least the timeout", waited)
	}
	if a.Err() != context.DeadlineExceeded {
		t.Errorf("Err = %v, want DeadlineExceeded", a.Err())
	}

	// Values of an uncancelable context survive.
	v, cancel := tm.bound(context.WithoutCancel(context.WithValue(context.Background(), ctxKey{}, "trace-1")))
	defer cancel()
	if v.Value(ctxKey{}) != "trace-1" {
		t.Error("the caller's values were lost")
	}
	if _, ok := v.Deadline(); !ok {
		t.Error("no deadline on an uncancelable context")
	}

	// A sooner deadline is kept as it is.
	soon, cancelSoon := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancelSoon()
	if got, _ := tm.bound(soon); got != soon {
		t.Error("a context with a sooner deadline was wrapped")
	}

	// A cancelable context gets its own deadline and still cancels.
	parent, cancelParent := context.WithCancel(context.Background())
	c, cancelC := tm.bound(parent)
	defer cancelC()
	if _, ok := c.Deadline(); !ok {
		t.Error("no deadline on a cancelable context")
	}
	cancelParent()
	<-c.Done()
	if c.Err() != context.Canceled {
		t.Errorf("Err after the caller canceled = %v, want Canceled", c.Err())
	}
}
