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

// NearCacher is implemented by a shared [Store] that keeps a copy of the
// entries this process reads in process memory, a near cache, and keeps it
// exact: a write to the shared store, by any process, removes the copy (the
// redis store with near_cache on, through Redis's client tracking). [Cache]
// reads through it and counts the reads it served as [Stats].NearHits.
//
// A Store implementing it must keep, besides Get's contract, these rules:
// once its own Set, Delete or Clear of a key has returned, the process
// never reads the key's earlier value from the near cache; a value
// changed by another process is read from the near cache no longer than
// until the store learns of the change; an entry whose ttl has elapsed is
// never read; and when the store may have missed a change (a connection
// lost, a failover), it drops what it holds.
type NearCacher interface {
	// GetNear is Get, served from process memory when it can: near reports
	// that the answer came from there, without a round trip. The returned
	// slice may be shared: the caller must not modify it.
	GetNear(ctx context.Context, key string) (value []byte, found, near bool, err error)
	// NearUsage returns how many entries the near cache holds and the
	// memory it accounts for them, in bytes.
	NearUsage() (entries int, bytes int64)
	// NearPeek returns the near cache's answer for key, without a round
	// trip: held reports that it holds one (value and found are then what
	// GetNear would return), and that no change to the key has been
	// reported since it was read. It must be as cheap as a near hit: the
	// front end calls it before every read that may go to the store, so
	// that a near hit needs nothing more. The returned slice is shared: the
	// caller must not modify it.
	NearPeek(key string) (value []byte, found, held bool)
	// NearEnabled reports whether the near cache is in use: a store may
	// have one that is off (by configuration, or because its server
	// refused what it needs). While it is off, GetNear is Get, and OnChange's
	// function is not called.
	NearEnabled() bool
	// OnChange sets the function the store calls when it learns that a
	// key changed in the shared store, by any client: key is "" when every
	// key may have changed (the database was flushed). [New] sets it, so
	// that the copies fail-safe keeps for outages follow other processes'
	// Deletes. It is not called when the store only lost its connection.
	// fn must be quick: it runs on the store's connection.
	OnChange(fn func(key string))
}
