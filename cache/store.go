package cache

import (
	"context"
	"time"
)

// Store is the back end of a [Cache]: a key-value store of bytes with
// per-entry expiry. The built-in stores are in_memory (package cache/memory),
// redis (package cache/redis) and the discarding store of a disabled cache
// ([DiscardStore]). Third-party stores implement it and register themselves
// with [Register]; package cache/cachetest checks that a Store keeps this
// contract.
//
// The [Cache] front end validates keys and TTLs, encodes values and counts
// hits and misses before it calls a Store, so a Store never re-checks them:
// every key it sees is 1 to [MaxKeyLen] bytes long, every ttl is >= 0.
//
// All methods must be safe for concurrent use.
type Store interface {
	// Get returns the value stored under key. A key that is missing or whose
	// ttl has elapsed returns (nil, false, nil): a miss is not an error, and
	// an expired value is never returned. An error means the store could not
	// answer (a network failure, a timeout, ErrClosed).
	//
	// The caller owns the returned slice and may modify it; the store must not
	// hand out memory that a later Set or Get could change.
	Get(ctx context.Context, key string) (value []byte, found bool, err error)

	// Set stores value under key, replacing any earlier value and its ttl.
	// A ttl > 0 makes the entry expire after ttl, with at least millisecond
	// precision; a ttl == 0 means the entry does not expire (it may still be
	// evicted to free space).
	//
	// Set takes ownership of value: the caller does not modify it afterwards,
	// so the store may keep the slice without copying it.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error

	// Delete removes key. Deleting a missing key is not an error. When Delete
	// returns nil the key is gone; an error must be returned otherwise, since a
	// lost invalidation serves stale data later.
	Delete(ctx context.Context, key string) error

	// Clear removes every key of this store and only those: a store that
	// shares its storage with others (a Redis database) removes the keys under
	// its own prefix and nothing else.
	Clear(ctx context.Context) error

	// Close releases the store's resources. Every later call of Get, Set,
	// Delete or Clear returns an error matching ErrClosed. Calling Close more
	// than once is not an error.
	Close() error
}

// Pinger is implemented by a [Store] that can check whether its back end is
// reachable, as a Redis store does with PING. [Cache.Ping] uses it.
type Pinger interface {
	Ping(ctx context.Context) error
}
