package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
)

// TestErrorType: each way a store call fails lands in its error.type.
func TestErrorType(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{ErrUnavailable, "unavailable"},
		{fmt.Errorf("get: %w", syscall.ECONNREFUSED), "unavailable"},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, "unavailable"},
		{syscall.ECONNRESET, "unavailable"},
		{syscall.EPIPE, "unavailable"},
		{fmt.Errorf("read: %w", net.ErrClosed), "unavailable"},
		{io.EOF, "unavailable"},
		{io.ErrUnexpectedEOF, "unavailable"},
		{context.DeadlineExceeded, "timeout"},
		{fmt.Errorf("read: %w", os.ErrDeadlineExceeded), "timeout"},
		{context.Canceled, "canceled"},
		{&LoadPanicError{Value: "boom"}, "panic"},
		{errors.New("something else"), "_OTHER"},
	} {
		if got := errorTypes[errorType(tc.err)]; got != tc.want {
			t.Errorf("errorType(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
