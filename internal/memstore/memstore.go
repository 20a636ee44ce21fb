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
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/ushka-go/ushka/internal/counter"
	"github.com/ushka-go/ushka/internal/errs"
	"github.com/ushka-go/ushka/internal/keycount"
)

// entryOverhead is the heap otter holds per entry besides the arrays of its
// key and value, with the options New uses (weigher and expiry):
//
//   - a node of 112 bytes: the links of the eviction and expiry queues, the
//     deadline and weight, the key's string header and the entry inline;
//   - 17 to 34 bytes of hash table: 64-byte buckets of 5 slots, at most 3/4
//     full, whose number doubles as the table grows, plus a few overflow
//     buckets;
//   - 8 to 16 bytes of frequency sketch: one word per entry, rounded up to a
//     power of two.
//
// That is 137 to 162 bytes, plus the overflow buckets; TestMaxBytesBoundsHeap
// measures 144 to 161 with 100-byte values, depending on where the number of
// entries falls between two powers of two. With 165, the top of that range,
// the heap it measures is 0.93 to 0.99 times MaxBytes with 100-byte values,
// 0.87 to 0.96 with 1-byte ones (whose keys and values may share the
// allocator's 16-byte blocks) and 1.00 with 4 KiB ones.
const entryOverhead = 165

// noExpiry is the lifetime given to entries stored with ttl == 0: otter
// wants a duration, and this one (about 146 years) cannot overflow when
// added to the current time.
const noExpiry = time.Duration(1 << 62)

// Options bound a Store. Zero values mean no bound of that kind; at most one
// of MaxBytes and MaxEntries may be set. When both are zero the store is
// unbounded.
type Options struct {
	// MaxBytes bounds the Go heap the entries hold: the memory blocks of
	// their keys and values, as the allocator rounds them up, plus what
	// otter spends on each (entryOverhead). otter's fixed cost, about 20 KiB
	// whatever the bound, comes on top.
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
	c        *otter.Cache[string, entry]
	closed   atomic.Bool
	versions keycount.Counts // the writes, for Version
}

// BookkeepingPrefix starts the keys that the front end keeps for itself
// (cache.TagKeyPrefix, the tags' tokens): a write to one may change what
// any other key reads as, so it counts as a write to every key.
const BookkeepingPrefix = "__ushka_"

// wrote counts a write to key, after it is done: a reader that read the
// counters before the write finds them changed.
func (s *Store) wrote(key string) {
	if strings.HasPrefix(key, BookkeepingPrefix) {
		s.versions.ChangedAll()
		return
	}
	s.versions.Changed(key)
}

// Version returns the two counters whose sum changes with every write to
// key that completes after they are read: one shared by key's shard of
// keys, one by every key (Clear, Close, and writes to the keys under
// BookkeepingPrefix). A reader reads them, then the entry; if the sum is
// the same later, the entry it read is still the stored one (unless it
// expired). They must only be read.
func (s *Store) Version(key string) (shard, all *atomic.Uint64) {
	return s.versions.Shard(key), s.versions.All()
}

// BorrowEntry is Borrow, with how long the entry has left before it
// expires (0 when it never does), measured on the store's own clock, so
// that a step of the wall clock does not change it.
func (s *Store) BorrowEntry(_ context.Context, key string) ([]byte, time.Duration, bool, error) {
	if s.closed.Load() {
		return nil, 0, false, errs.ErrClosed
	}
	e, ok := s.c.GetEntry(key)
	if !ok {
		return nil, 0, false, nil
	}
	if e.Value.ttl <= 0 {
		return e.Value.data, 0, true, nil
	}
	return e.Value.data, max(e.ExpiresAfter(), time.Nanosecond), true, nil
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
	st := &Store{}
	// An entry evicted for space or expired is gone as a Delete makes it
	// gone: a reader that read it must find its key's version changed.
	// otter reports it just before the entry leaves the table, so a reader
	// that reads the counters and then the entry at that very moment may
	// still find it; cache.Stamp checks its entry now and then for that.
	opts.OnAtomicDeletion = func(e otter.DeletionEvent[string, entry]) {
		if e.WasEvicted() {
			st.wrote(e.Key)
		}
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
	st.c = c
	return st, nil
}

// weigh is the heap an entry holds: its overhead in otter plus the memory
// blocks of its key and value, which the allocator rounds up to a size class
// (a 1-byte value takes 8 bytes, a 100-byte one 112). A value is weighed by
// its capacity, which the store keeps alive with its length.
func weigh(key string, e entry) uint32 {
	w := AllocSize(len(key)) + AllocSize(cap(e.data)) + entryOverhead
	if w > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(w)
}

// sizeClasses are the Go allocator's size classes for small objects
// (runtime/sizeclasses.go): an allocation of n bytes, n <= 32 KiB, takes the
// first class that holds it.
var sizeClasses = [...]uint16{8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192,
	208, 224, 240, 256, 288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024,
	1152, 1280, 1408, 1536, 1792, 2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144,
	6528, 6784, 6912, 8192, 9472, 9728, 10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072,
	20480, 21760, 24576, 27264, 28672, 32768}

// largeObject is the size above which the allocator gives an object whole
// pages of pageSize bytes instead of a size class (for objects without
// pointers, such as the bytes of a key or a value).
const (
	largeObject = 32768 - 8
	pageSize    = 8192
)

// AllocSize returns the bytes the Go allocator takes for an array of n
// bytes. Arrays under 16 bytes may share a 16-byte block with others (the
// tiny allocator); they are weighed by their size class all the same. Sizes
// up to 1 KiB, the common case, are computed without a search: their
// classes are multiples of 8 up to 32, of 16 up to 256, of 32 up to 512, of
// 64 up to 768, then 896 and 1024.
func AllocSize(n int) uint64 {
	u := uint64(n)
	switch {
	case n <= 0:
		return 0
	case n <= 32:
		return (u + 7) &^ 7
	case n <= 256:
		return (u + 15) &^ 15
	case n <= 512:
		return (u + 31) &^ 31
	case n <= 768:
		return (u + 63) &^ 63
	case n <= 896:
		return 896
	case n <= 1024:
		return 1024
	case n <= largeObject:
		i, _ := slices.BinarySearch(sizeClasses[:], uint16(n))
		return uint64(sizeClasses[i])
	}
	return (u + pageSize - 1) &^ (pageSize - 1)
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
	s.wrote(key)
	return nil
}

// Add stores value under key for ttl unless the key is there, and
// reports whether it did, atomically.
func (s *Store) Add(_ context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if s.closed.Load() {
		return false, errs.ErrClosed
	}
	_, added := s.c.SetIfAbsent(key, entry{data: value, ttl: ttl})
	if added {
		s.wrote(key)
	}
	return added, nil
}

// Increment adds delta to the decimal integer stored under key, atomically,
// and returns the sum. A missing key counts as 0 and is created with ttl;
// an existing one keeps the time it has left.
func (s *Store) Increment(_ context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	if s.closed.Load() {
		return 0, errs.ErrClosed
	}
	var n int64
	var err error
	s.c.Compute(key, func(old entry, found bool) (entry, otter.ComputeOp) {
		var cur int64
		if found {
			if cur, err = counter.Parse(old.data); err != nil {
				return old, otter.CancelOp
			}
			ttl = old.ttl
			if ttl > 0 {
				// Written again, the entry would get its full ttl back
				// (expiry is computed at each write): give it what it has
				// left.
				if e, ok := s.c.GetEntryQuietly(key); ok {
					ttl = max(e.ExpiresAfter(), time.Millisecond)
				}
			}
		}
		if n, err = counter.Add(cur, delta); err != nil {
			return old, otter.CancelOp
		}
		return entry{data: strconv.AppendInt(nil, n, 10), ttl: ttl}, otter.WriteOp
	})
	if err == nil {
		s.wrote(key)
	}
	return n, err
}

// Delete removes key.
func (s *Store) Delete(_ context.Context, key string) error {
	if s.closed.Load() {
		return errs.ErrClosed
	}
	s.c.Invalidate(key)
	s.wrote(key)
	return nil
}

// Clear removes every entry.
func (s *Store) Clear(context.Context) error {
	if s.closed.Load() {
		return errs.ErrClosed
	}
	s.c.InvalidateAll()
	s.versions.ChangedAll()
	return nil
}

// Close empties the store and stops otter's clean-up goroutine.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.c.StopAllGoroutines()
	s.c.InvalidateAll()
	s.versions.ChangedAll()
	return nil
}

// Len runs pending maintenance (evictions, expirations) and returns the
// number of entries.
func (s *Store) Len() int {
	s.c.CleanUp()
	return s.c.EstimatedSize()
}
