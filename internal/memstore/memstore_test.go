package memstore

import (
	"runtime"
	"strconv"
	"testing"

	"github.com/ushka-go/ushka/internal/testutil"
)

// TestAllocSize checks AllocSize against the runtime itself: append to a nil
// slice rounds its capacity up exactly as the allocator rounds the block. It
// tries every size up to the computed range's end and beyond, and both sides
// of every larger class and of the page-rounded range.
func TestAllocSize(t *testing.T) {
	sizes := []int{largeObject, largeObject + 1, 32768, 32769, 40000, 1 << 20, 1<<20 + 1}
	for n := range 1200 {
		sizes = append(sizes, n)
	}
	for _, c := range sizeClasses {
		sizes = append(sizes, int(c)-1, int(c), int(c)+1)
	}
	for _, n := range sizes {
		want := uint64(cap(append([]byte(nil), make([]byte, n)...)))
		if got := AllocSize(n); got != want {
			t.Errorf("AllocSize(%d) = %d, want %d (the runtime's capacity)", n, got, want)
		}
	}
}

// TestMaxBytesBoundsHeap is the regression test of issue 8 item 9: with small
// values, a store bounded to MaxBytes held 1.4 to 1.8 times MaxBytes of heap,
// its weigher counting len(key)+len(value)+96 bytes per entry where the heap
// holds the size classes of both plus 145 to 165 bytes of otter's.
//
// It offers a store three times its bound in entries, then measures the live
// heap against a baseline taken before New, otter's fixed cost (about 20 KiB)
// included. The heap must not exceed MaxBytes by more than 10%, nor fall
// short of it by more than 15%. Some shortfall is by design: entryOverhead
// is otter's cost where its hash table and sketch have just doubled, about
// 25 bytes above its cost where they are about to, and keys and values under
// 16 bytes may share the allocator's 16-byte blocks, which the weigher
// cannot see: together 13% of a small entry (0.87 in the entries=121000
// row). A store that held less than 85% of its bound would waste the memory
// given to it.
//
// No child process is needed: no other test of this package runs beside it,
// and 16 MiB dwarfs the few kilobytes of noise. The race detector pads
// allocations under 16 bytes to 16, which raises the 1-byte rows by up to 7%
// (to 1.023 at most) but keeps them within bounds; it also slows writes
// tenfold, so under -race only the max=16MiB rows run, with 4 MiB.
func TestMaxBytesBoundsHeap(t *testing.T) {
	const lo, hi = 0.85, 1.10
	max16MiB := uint64(16 << 20)
	if raceEnabled {
		max16MiB = 4 << 20 // a quarter of the writes, each ten times slower
	}
	// weight is that of an entry of the test's: a key of 10 bytes and a
	// value of n bytes.
	weight := func(n int) uint64 { return uint64(weigh("key:123456", entry{data: make([]byte, n)})) }
	tests := []struct {
		name     string
		maxBytes uint64
		value    int
		slow     bool // skipped under -race, where it would take a minute
	}{
		{"max=16MiB/value=1B", max16MiB, 1, false},
		{"max=16MiB/value=100B", max16MiB, 100, false},
		{"max=16MiB/value=4KiB", max16MiB, 4 << 10, false},
		// otter's hash table and sketch have just doubled (at 61,440 and
		// 65,536 entries): the most it spends per entry.
		{"entries=67000/value=1B", 67_000 * weight(1), 1, true},
		{"entries=67000/value=100B", 67_000 * weight(100), 100, true},
		// They are about to double again (at 122,880 and 131,072): the least.
		// (max=16MiB/value=100B is such a case too, at 57,000 entries.)
		{"entries=121000/value=1B", 121_000 * weight(1), 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.slow && raceEnabled {
				t.Skip("slow under the race detector; run without -race")
			}
			before := testutil.HeapAlloc()
			s, err := New(Options{MaxBytes: int64(tt.maxBytes)})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var offered uint64
			for i := 0; offered < 3*tt.maxBytes; i++ {
				key := "key:" + strconv.Itoa(i)
				e := entry{data: make([]byte, tt.value)}
				offered += uint64(weigh(key, e))
				if err := s.Set(t.Context(), key, e.data, 0); err != nil {
					t.Fatal(err)
				}
			}
			n := s.Len()
			held := testutil.HeapAlloc() - before
			runtime.KeepAlive(s)
			ratio := float64(held) / float64(tt.maxBytes)
			perEntry := float64(held) / float64(n)
			t.Logf("MaxBytes %d: %d entries, heap %d bytes = %.3f x MaxBytes, %.1f bytes per entry, %.1f of them otter's",
				tt.maxBytes, n, held, ratio, perEntry, perEntry-float64(AllocSize(len("key:")+6)+AllocSize(tt.value)))
			if ratio < lo || ratio > hi {
				t.Errorf("heap held = %.3f x MaxBytes, want within [%.2f, %.2f]", ratio, lo, hi)
			}
		})
	}
}

// TestMaxEntriesIgnoresBytes checks that a bound on entries holds that many
// entries whatever their size: the weigher plays no part in it.
func TestMaxEntriesIgnoresBytes(t *testing.T) {
	const maxEntries = 1000
	s, err := New(Options{MaxEntries: maxEntries})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 10 * maxEntries {
		if err := s.Set(t.Context(), strconv.Itoa(i), make([]byte, 4<<10), 0); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Len(); n != maxEntries {
		t.Fatalf("Len = %d after %d sets of 4 KiB with MaxEntries %d, want %d", n, 10*maxEntries, maxEntries, maxEntries)
	}
}
