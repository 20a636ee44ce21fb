// Package memory is the in_memory backend: a process-local, bounded store
// with per-entry expiry, built on github.com/maypok86/otter/v2.
//
// It is fast, but it lives and dies with the process: every process has its
// own, and a restart empties it. Use it on a laptop and for single-process
// deployments; use the redis backend when several processes must share one
// cache.
//
// The backend is registered with package cache as "in_memory" without any
// import; this package gives it a constructor for use with [cache.New]:
//
//	store, err := memory.New(memory.Options{MaxEntries: 10_000})
//	c := cache.New(store)
package memory

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/internal/memstore"
)

// Options bound a [Store]. At most one of MaxBytes and MaxEntries may be
// set; when neither is, the store holds at most [cache.DefaultMaxBytes].
type Options struct {
	// MaxBytes bounds the Go heap the entries hold: their keys and values,
	// as the allocator rounds them up to its size classes, plus about 165
	// bytes per entry for the cache's own structures, so that many small
	// entries are bounded as well as a few large ones. The store's fixed
	// cost, about 20 KiB, comes on top. Entries the eviction policy judges
	// least likely to be read again are evicted first.
	MaxBytes int64
	// MaxEntries bounds the number of entries instead.
	MaxEntries int
}

// Store is an in-process [cache.Store]. Values are kept encoded, as a remote
// store keeps them, so a value read back is always a copy: changing it never
// changes the cache.
type Store struct {
	s *memstore.Store
}

var (
	_ cache.Store   = (*Store)(nil)
	_ cache.Adder   = (*Store)(nil)
	_ cache.Counter = (*Store)(nil)
)

// New returns an empty Store bounded by o.
func New(o Options) (*Store, error) {
	if o.MaxBytes == 0 && o.MaxEntries == 0 {
		o.MaxBytes = cache.DefaultMaxBytes
	}
	s, err := memstore.New(memstore.Options{MaxBytes: o.MaxBytes, MaxEntries: o.MaxEntries})
	if err != nil {
		return nil, err
	}
	return &Store{s: s}, nil
}

// Get implements [cache.Store].
func (s *Store) Get(ctx context.Context, key string) ([]byte, bool, error) {
	return s.s.Get(ctx, key)
}

// Borrow returns the stored bytes of key without copying them; the caller
// must not modify them. [cache.Cache] uses it to decode without a copy.
func (s *Store) Borrow(ctx context.Context, key string) ([]byte, bool, error) {
	return s.s.Borrow(ctx, key)
}

// BorrowEntry is Borrow, with how long the entry has left before it
// expires (0 when it never does). [cache.Cache.Vouch] uses it.
func (s *Store) BorrowEntry(ctx context.Context, key string) ([]byte, time.Duration, bool, error) {
	return s.s.BorrowEntry(ctx, key)
}

// Version returns the two counters whose sum changes with every write to
// key (or to every key: Clear, Close), and with its eviction, after they
// are read, so
// that [cache.Cache.Vouch] can tell that a value read is still the stored
// one without reading it again. They must only be read.
func (s *Store) Version(key string) (shard, all *atomic.Uint64) { return s.s.Version(key) }

// Set implements [cache.Store].
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return s.s.Set(ctx, key, value, ttl)
}

// Add implements [cache.Adder], atomically.
func (s *Store) Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	return s.s.Add(ctx, key, value, ttl)
}

// Increment implements [cache.Counter], atomically.
func (s *Store) Increment(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	return s.s.Increment(ctx, key, delta, ttl)
}

// Delete implements [cache.Store].
func (s *Store) Delete(ctx context.Context, key string) error { return s.s.Delete(ctx, key) }

// Clear implements [cache.Store]: it empties the store.
func (s *Store) Clear(ctx context.Context) error { return s.s.Clear(ctx) }

// Close implements [cache.Store]: it empties the store and stops its
// clean-up goroutine.
func (s *Store) Close() error { return s.s.Close() }

// Len runs pending evictions and expirations and returns the number of
// entries.
func (s *Store) Len() int { return s.s.Len() }
