// Package memstore is the core of the in_memory backend: a bounded,
// concurrent map of encoded values with per-entry expiry, built on otter.
//
// It lives below package cache so that cache can register in_memory without
// an import cycle; package cache/memory is its public face.
package memstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/ushka-go/ushka/internal/errs"
)

// entryOverhead approximates the bytes otter spends on an entry besides its
// key and value (node, hash table slot, policy metadata), so that a byte bound
// also bounds many tiny entries.
const entryOverhead = 96

// noExpiry is the lifetime given to entries stored with ttl == 0: otter
// wants a duration, and this one (about 146 years) cannot overflow when
// added to the current time.
const noExpiry = time.Duration(1 << 62)

// Options bound a Store. Zero values mean no bound of that kind; at most one
// of MaxBytes and MaxEntries may be set. When both are zero the store is
// unbounded.
type Options struct {
	// MaxBytes bounds the bytes of keys plus values plus a per-entry overhead.
	MaxBytes int64
	// MaxEntries bounds the number of entries.
	MaxEntries int
	// Clock, when set, replaces the wall clock (for tests).
	Clock otter.Clock
}

type entry struct {
	data []byte
	ttl  time.Duration
}

// Store is an in-process Store. Its zero value is not usable; call New.
type Store struct {
	c      *otter.Cache[string, entry]
	closed atomic.Bool
}

// New returns an empty Store bounded by o.
func New(o Options) (*Store, error) {
	if o.MaxBytes < 0 || o.MaxEntries < 0 {
		return nil, errors.New("memstore: negative bound")
	}
	if o.MaxBytes > 0 && o.MaxEntries > 0 {
		return nil, errors.New("memstore: set either MaxBytes or MaxEntries, not both")
	}
	opts := &otter.Options[string, entry]{
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, entry]) time.Duration {
			if e.Value.ttl <= 0 {
				return noExpiry
			}
			return e.Value.ttl
		}),
		Clock: o.Clock,
	}
	switch {
	case o.MaxBytes > 0:
		opts.MaximumWeight = uint64(o.MaxBytes)
		opts.Weigher = weigh
	case o.MaxEntries > 0:
		opts.MaximumSize = o.MaxEntries
	}
	c, err := otter.New(opts)
	if err != nil {
		return nil, fmt.Errorf("memstore: %w", err)
	}
	return &Store{c: c}, nil
}

func weigh(key string, e entry) uint32 {
	w := uint64(len(key)) + uint64(len(e.data)) + entryOverhead
	if w > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(w)
}

// Get returns a copy of the value under key.
func (s *Store) Get(_ context.Context, key string) ([]byte, bool, error) {
	if s.closed.Load() {
		return nil, false, errs.ErrClosed
	}
	e, ok := s.c.GetIfPresent(key)
	if !ok {
		return nil, false, nil
	}
	out := make([]byte, len(e.data))
	copy(out, e.data)
	return out, true, nil
}

// Borrow returns the stored bytes of key without copying them. The caller
// must not modify them; it may keep them, since a stored slice is never
// changed (Set replaces it). The front end decodes straight from them,
// saving a copy per read.
func (s *Store) Borrow(_ context.Context, key string) ([]byte, bool, error) {
	if s.closed.Load() {
		return nil, false, errs.ErrClosed
	}
	e, ok := s.c.GetIfPresent(key)
	if !ok {
		return nil, false, nil
	}
	return e.data, true, nil
}

// Set stores value under key; the store keeps value without copying it.
func (s *Store) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	if s.closed.Load() {
		return errs.ErrClosed
	}
	s.c.Set(key, entry{data: value, ttl: ttl})
	return nil
}

// Delete removes key.
func (s *Store) Delete(_ context.Context, key string) error {
	if s.closed.Load() {
		return errs.ErrClosed
	}
	s.c.Invalidate(key)
	return nil
}

// Clear removes every entry.
func (s *Store) Clear(context.Context) error {
	if s.closed.Load() {
		return errs.ErrClosed
	}
	s.c.InvalidateAll()
	return nil
}

// Close empties the store and stops otter's clean-up goroutine.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.c.StopAllGoroutines()
	s.c.InvalidateAll()
	return nil
}

// Len runs pending maintenance (evictions, expirations) and returns the
// number of entries.
func (s *Store) Len() int {
	s.c.CleanUp()
	return s.c.EstimatedSize()
}
