package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ushka-go/ushka/cache"
)

// dialer makes rueidis's connections for a Store (its DialCtxFn). It keeps
// every connection it made that is still open, so that [Store.Close] can end
// them at once: without that, Close would wait for a handshake with a server
// that never answers until the dial timeout (5s by default). It also knows
// how far each connection got (the TCP connect, the TLS handshake, the Redis
// handshake that rueidis sends first), so that errors say which step the
// server did not answer.
type dialer struct {
	unix    bool
	timeout time.Duration // dial_timeout: TCP connect, TLS and Redis handshakes each

	ctx    context.Context // canceled by close: ends dials in progress
	cancel context.CancelFunc

	mu     sync.Mutex
	closed bool
	conns  map[*trackedConn]struct{}
	silent map[string]bool // since reset: addresses that connected and never answered
}

func newDialer(unix bool, timeout time.Duration) *dialer {
	ctx, cancel := context.WithCancel(context.Background())
	return &dialer{unix: unix, timeout: timeout, ctx: ctx, cancel: cancel, conns: map[*trackedConn]struct{}{}}
}

// The steps of a connection, in order.
const (
	stepConnect   int32 = iota // TCP (or unix socket) connect in progress
	stepTLS                    // connected; TLS handshake in progress
	stepHandshake              // connected; waiting for the first byte of the Redis handshake's reply
	stepAnswered               // the server has answered
	stepFailed                 // the dial failed, and said why
)

// trackedConn is a connection the dialer made; it records whether the
// server ever answered, and forgets itself when closed.
type trackedConn struct {
	net.Conn          // what rueidis reads and writes: raw, or TLS over raw
	raw      net.Conn // the TCP or unix connection; nil while connecting
	d        *dialer
	addr     string
	step     atomic.Int32
}

// Read implements net.Conn, noting the server's first answer.
func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.step.Load() != stepAnswered {
		c.step.Store(stepAnswered)
	}
	return n, err
}

// Close implements net.Conn.
func (c *trackedConn) Close() error {
	c.d.forget(c)
	return c.Conn.Close()
}

// dial is rueidis's DialCtxFn.
func (d *dialer) dial(ctx context.Context, addr string, nd *net.Dialer, tc *tls.Config) (net.Conn, error) {
	c := &trackedConn{d: d, addr: addr}
	if err := d.track(c); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(d.ctx, cancel) // Close ends a dial in progress
	defer stop()

	network := "tcp"
	if d.unix {
		network = "unix"
	}
	raw, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		d.forget(c)
		if d.ctx.Err() != nil {
			return nil, cache.ErrClosed
		}
		return nil, err
	}
	if err := d.connected(c, raw); err != nil {
		return nil, err
	}
	if tc != nil {
		c.step.Store(stepTLS)
		if err := d.handshakeTLS(ctx, c, tc); err != nil {
			c.step.Store(stepFailed)
			d.forget(c)
			raw.Close()
			if d.ctx.Err() != nil {
				return nil, cache.ErrClosed
			}
			return nil, err
		}
	}
	c.step.Store(stepHandshake)
	return c, nil
}

func (d *dialer) handshakeTLS(ctx context.Context, c *trackedConn, tc *tls.Config) error {
	if tc.ServerName == "" {
		host, _, _ := net.SplitHostPort(c.addr)
		tc = tc.Clone()
		tc.ServerName = host
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	conn := tls.Client(c.raw, tc)
	err := conn.HandshakeContext(ctx)
	switch {
	case err == nil:
		c.Conn = conn
		return nil
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
		// Not wrapped: the caller's deadline did not expire, the dial's did.
		return fmt.Errorf("connected to %s but the server did not answer the TLS handshake within dial_timeout %v (is it a TLS port?)", c.addr, d.timeout)
	default:
		return fmt.Errorf("connected to %s but the TLS handshake failed: %w", c.addr, err)
	}
}

func (d *dialer) track(c *trackedConn) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return cache.ErrClosed
	}
	d.conns[c] = struct{}{}
	return nil
}

// connected records c's raw connection, so that close can close it.
func (d *dialer) connected(c *trackedConn, raw net.Conn) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		delete(d.conns, c)
		raw.Close()
		return cache.ErrClosed
	}
	c.Conn, c.raw = raw, raw
	return nil
}

// forget drops c from the open connections. A connection closed before the
// server answered is remembered as silent, for explain.
func (d *dialer) forget(c *trackedConn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.conns[c]; !ok {
		return
	}
	delete(d.conns, c)
	if step := c.step.Load(); step == stepTLS || step == stepHandshake {
		if d.silent == nil {
			d.silent = map[string]bool{}
		}
		d.silent[c.addr] = true
	}
}

// reset forgets the silent connections of an earlier connect attempt.
func (d *dialer) reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.silent = nil
}

// explain turns the timeout a connect attempt failed with into what
// happened: the server accepted the connection and never answered the
// handshake. The timeout is not wrapped: it was the dial's, not a caller's
// deadline. Other errors are returned as they are.
func (d *dialer) explain(err error) error {
	var ne net.Error
	if !errors.Is(err, context.DeadlineExceeded) && !(errors.As(err, &ne) && ne.Timeout()) {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.silent) == 0 {
		return err
	}
	return fmt.Errorf("connected to %s but the server did not answer the handshake within dial_timeout %v",
		strings.Join(slices.Sorted(maps.Keys(d.silent)), ", "), d.timeout)
}

// progress says how far the connections being made have got, for an error
// when a caller stops waiting for them.
func (d *dialer) progress() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var parts []string
	for c := range d.conns {
		switch c.step.Load() {
		case stepConnect:
			parts = append(parts, "connecting to "+c.addr)
		case stepTLS:
			parts = append(parts, "connected to "+c.addr+" but the server has not answered the TLS handshake yet")
		case stepHandshake:
			parts = append(parts, "connected to "+c.addr+" but the server has not answered the handshake yet")
		}
	}
	if len(parts) == 0 {
		return "still connecting"
	}
	slices.Sort(parts)
	return strings.Join(parts, "; ") + fmt.Sprintf(" (dial_timeout %v)", d.timeout)
}

// close ends every dial in progress and closes every connection the dialer
// made; later dials fail with ErrClosed.
func (d *dialer) close() {
	d.cancel()
	d.mu.Lock()
	d.closed = true
	var raws []net.Conn
	for c := range d.conns {
		if c.raw != nil {
			raws = append(raws, c.raw)
		}
	}
	d.mu.Unlock()
	for _, raw := range raws {
		raw.Close()
	}
}
