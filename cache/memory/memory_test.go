package memory_test

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/cache/cachetest"
	"github.com/ushka-go/ushka/cache/memory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newStore(t *testing.T) cache.Store {
	s, err := memory.New(memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) { cachetest.TestStore(t, newStore) }

// TestOutage: wrapped in cachetest.Chaos, the in-memory store is a store
// the front end does not know to be in the process, and gets the circuit
// breaker and the invalidation queue as a remote one does.
func TestOutage(t *testing.T) { cachetest.TestOutage(t, newStore) }

func TestConformanceEntryBound(t *testing.T) {
	cachetest.TestStore(t, func(t *testing.T) cache.Store {
		s, err := memory.New(memory.Options{MaxEntries: 100_000})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestTTLLong checks hour-long TTLs on a fake clock: synctest advances time
// without waiting for it.
func TestTTLLong(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(t)
		defer s.Close()
		ctx := t.Context()
		if err := s.Set(ctx, "hour", []byte("v"), time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := s.Set(ctx, "forever", []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour - time.Millisecond)
		if _, found, _ := s.Get(ctx, "hour"); !found {
			t.Fatal("entry with ttl 1h gone 1ms early")
		}
		time.Sleep(2 * time.Millisecond)
		if _, found, _ := s.Get(ctx, "hour"); found {
			t.Fatal("entry with ttl 1h still there 1ms after expiry")
		}
		time.Sleep(2 * time.Hour) // each second ticks otter's clean-up: keep it short
		if _, found, _ := s.Get(ctx, "forever"); !found {
			t.Fatal("entry with ttl 0 expired after 3 hours")
		}
	})
}

func TestMaxEntriesBounds(t *testing.T) {
	s, err := memory.New(memory.Options{MaxEntries: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 10_000 {
		if err := s.Set(t.Context(), fmt.Sprint(i), []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Len(); n > 110 {
		t.Fatalf("Len = %d after 10000 sets with MaxEntries 100", n)
	}
}

func TestMaxBytesBounds(t *testing.T) {
	const limit = 1 << 20
	s, err := memory.New(memory.Options{MaxBytes: limit})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v := make([]byte, 1000)
	for i := range 10_000 { // 10 MB offered to a 1 MiB store
		if err := s.Set(t.Context(), fmt.Sprint(i), v, 0); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Len(); n*1000 > limit*11/10 {
		t.Fatalf("Len = %d entries of 1000 bytes in a store bounded to %d bytes", n, limit)
	}
}

func TestBothBoundsRejected(t *testing.T) {
	if _, err := memory.New(memory.Options{MaxBytes: 1, MaxEntries: 1}); err == nil {
		t.Fatal("New with MaxBytes and MaxEntries = nil error, want one")
	}
}
