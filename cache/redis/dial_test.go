package redis

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/internal/redistest"
	"github.com/ushka-go/ushka/internal/testutil"
)

// waitConnectAttempt waits until the connect attempt in progress, if any,
// has ended.
func waitConnectAttempt(s *Store) {
	s.mu.Lock()
	done := s.dialing
	s.mu.Unlock()
	if done != nil {
		<-done
	}
}

// Regression (issue 8, item 8): a server that accepted the connection and
// never answered was reported as "still connecting", then as a bare
// "context deadline exceeded". The error names the step the server did not
// answer, while connecting and after the dial timeout.
func TestHandshakeNeverAnsweredIsNamed(t *testing.T) {
	silent := testutil.SilentListener(t)
	plain := redistest.Start(t) // a plain port, addressed with rediss://
	for _, tc := range []struct {
		name, url, addr string
		during, after   string
	}{
		{
			name: "silent server", url: "redis://" + silent + "?dial_timeout=500ms", addr: silent,
			during: "connected to " + silent + " but the server has not answered the handshake yet (dial_timeout 500ms)",
			after:  "not connected: connected to " + silent + " but the server did not answer the handshake within dial_timeout 500ms",
		},
		{
			name: "rediss to a plain port", url: "rediss://" + plain.Addr + "?dial_timeout=500ms", addr: plain.Addr,
			during: "connected to " + plain.Addr + " but the server has not answered the TLS handshake yet (dial_timeout 500ms)",
			after:  "not connected: connected to " + plain.Addr + " but the server did not answer the TLS handshake within dial_timeout 500ms (is it a TLS port?)",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(t.Context(), cache.Config{RedisURL: cache.SecretURL(tc.url), Timeout: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Ping(t.Context()); err == nil || !strings.Contains(err.Error(), tc.during) {
				t.Errorf("Ping while the handshake is unanswered = %v, want it to say %q", err, tc.during)
			}
			waitConnectAttempt(s)
			err = s.Ping(t.Context())
			if err == nil || !strings.Contains(err.Error(), tc.after) {
				t.Errorf("Ping after the dial timeout = %v, want it to say %q", err, tc.after)
			}
			if strings.Contains(err.Error(), "timed out (timeout") {
				t.Errorf("Ping after the dial timeout = %v: the call did not time out, the dial did", err)
			}
		})
	}
}

func TestEscapeGlob(t *testing.T) {
	for _, tc := range []struct{ prefix, want string }{
		{"ushka:", "ushka:"},
		{"app*[1]?:", `app\*\[1\]\?:`},
		{`we\ird^-:`, `we\\ird\^\-:`},
		// Regression (issue 8, item 6): bytes that are not UTF-8 stay as
		// they are; ranging over runes made \xff into U+FFFD (EF BF BD).
		{"\xff:", "\xff:"},
		{"a\xc3*\x80:", "a\xc3\\*\x80:"},
		{"ключ:", "ключ:"},
	} {
		if got := escapeGlob(tc.prefix); got != tc.want {
			t.Errorf("escapeGlob(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
	}
}

// Regression (issue 8, item 11): the rounding overflowed near
// math.MaxInt64 and sent a negative PX.
func TestPxMillis(t *testing.T) {
	for _, tc := range []struct {
		ttl  time.Duration
		want int64
	}{
		{time.Nanosecond, 1},
		{time.Millisecond, 1},
		{time.Millisecond + time.Nanosecond, 2},
		{time.Minute, 60000},
		{math.MaxInt64 - 1e6 + 1, math.MaxInt64 / int64(time.Millisecond)},
		{math.MaxInt64, math.MaxInt64/int64(time.Millisecond) + 1},
	} {
		if got := pxMillis(tc.ttl); got != tc.want {
			t.Errorf("pxMillis(%d) = %d, want %d", int64(tc.ttl), got, tc.want)
		}
	}
}
