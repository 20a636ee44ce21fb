package cache

import (
	"fmt"
	"time"

	"github.com/ushka-go/ushka/internal/errs"
)

// Sentinel errors. Errors returned by this package wrap them with a few words
// of context, so match them with [errors.Is]:
//
//	err := c.Set(ctx, "user:1", u, -time.Second)
//	errors.Is(err, cache.ErrInvalidTTL) // true
var (
	// ErrInvalidKey reports a key that is empty or longer than [MaxKeyLen] bytes.
	ErrInvalidKey = errs.ErrInvalidKey
	// ErrInvalidTTL reports a negative time-to-live, or one longer than
	// [MaxTTL].
	ErrInvalidTTL = errs.ErrInvalidTTL
	// ErrClosed reports a call on a [Cache] or [Store] after its Close.
	ErrClosed = errs.ErrClosed
	// ErrRefused reports a backend that answered but refused the command:
	// with Redis, an error reply such as WRONGTYPE, OOM, READONLY or NOPERM.
	// It is not an outage: the server is up and says no, and retrying the
	// same command will not help until an operator acts.
	ErrRefused = errs.ErrRefused
	// ErrUnavailable reports a call that the cache's circuit breaker
	// refused at once, without asking the backend: the backend failed or
	// stopped answering (see [BreakerStatus]), and is being probed until it
	// answers again. The error names the backend and why it is thought
	// down. An invalidation refused this way is queued and replayed.
	ErrUnavailable = errs.ErrUnavailable
)

// MaxTTL is the longest time-to-live a [Cache] accepts: 100 years (of 365
// days). A longer ttl or default_ttl is an error matching [ErrInvalidTTL],
// on every backend alike; use 0 for an entry that never expires.
const MaxTTL = 100 * 365 * 24 * time.Hour

// MaxKeyLen is the longest key, in bytes, that a [Cache] accepts.
const MaxKeyLen = 1024

// sentinelError carries its own message while matching a sentinel, so that
// errors read `cache: set "k": invalid ttl -1s` rather than repeating the
// sentinel's "cache:" prefix, and still satisfy errors.Is.
type sentinelError struct {
	msg string
	is  error
}

func (e *sentinelError) Error() string { return e.msg }
func (e *sentinelError) Unwrap() error { return e.is }

func sentinelf(is error, format string, args ...any) error {
	return &sentinelError{msg: fmt.Sprintf(format, args...), is: is}
}
