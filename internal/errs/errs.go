// Package errs holds the sentinel errors that package cache re-exports, so that
// stores living below cache (internal/memstore) can return them without an
// import cycle.
package errs

import "errors"

var (
	// ErrInvalidKey is re-exported as cache.ErrInvalidKey.
	ErrInvalidKey = errors.New("cache: invalid key")
	// ErrInvalidTTL is re-exported as cache.ErrInvalidTTL.
	ErrInvalidTTL = errors.New("cache: invalid ttl")
	// ErrClosed is re-exported as cache.ErrClosed.
	ErrClosed = errors.New("cache: closed")
	// ErrRefused is re-exported as cache.ErrRefused.
	ErrRefused = errors.New("cache: the backend refused the command")
	// ErrUnavailable is re-exported as cache.ErrUnavailable.
	ErrUnavailable = errors.New("cache: the backend is unavailable")
	// ErrNotInteger is re-exported as cache.ErrNotInteger.
	ErrNotInteger = errors.New("cache: value is not an integer or the sum would overflow")
)
