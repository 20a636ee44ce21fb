package memstore

import (
	"context"
	"testing"
	"time"
)

// TestVersionChangesWithEveryWrite checks that each kind of write to a key,
// once done, changes the sum Version returns, and that reads do not.
func TestVersionChangesWithEveryWrite(t *testing.T) {
	ctx := context.Background()
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sum := func(key string) uint64 {
		shard, all := s.Version(key)
		return shard.Load() + all.Load()
	}
	writes := []struct {
		name string
		do   func() error
	}{
		{"Set", func() error { return s.Set(ctx, "k", []byte("1"), 0) }},
		{"Set again", func() error { return s.Set(ctx, "k", []byte("1"), time.Minute) }},
		{"Increment", func() error { _, err := s.Increment(ctx, "k", 1, 0); return err }},
		{"Delete", func() error { return s.Delete(ctx, "k") }},
		{"Delete of a missing key", func() error { return s.Delete(ctx, "k") }},
		{"Add", func() error { _, err := s.Add(ctx, "k", []byte("1"), 0); return err }},
		{"Clear", func() error { return s.Clear(ctx) }},
		{"Set of a bookkeeping key", func() error { return s.Set(ctx, BookkeepingPrefix+"tag:t", []byte("x"), 0) }},
		{"Delete of a bookkeeping key", func() error { return s.Delete(ctx, BookkeepingPrefix+"tag:t") }},
	}
	for _, w := range writes {
		before := sum("k")
		if err := w.do(); err != nil {
			t.Fatalf("%s: %v", w.name, err)
		}
		if sum("k") == before {
			t.Errorf("%s: the version of k did not change", w.name)
		}
	}
	if err := s.Set(ctx, "k", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	before := sum("k")
	_, _, _ = s.Borrow(ctx, "k")
	_, _, _, _ = s.BorrowEntry(ctx, "k")
	_, _, _ = s.Get(ctx, "k")
	if _, err := s.Add(ctx, "k", []byte("2"), 0); err != nil { // refused: k holds 1
		t.Fatal(err)
	}
	if sum("k") != before {
		t.Error("reads, or an Add that changed nothing, changed the version of k")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if sum("k") == before {
		t.Error("Close did not change the version of k")
	}
}

// TestBorrowEntryExpiry checks that BorrowEntry reports when the entry
// expires: the zero time for ttl 0, and about now+ttl otherwise.
func TestBorrowEntryExpiry(t *testing.T) {
	ctx := context.Background()
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_ = s.Set(ctx, "forever", []byte("a"), 0)
	before := time.Now()
	_ = s.Set(ctx, "minute", []byte("b"), time.Minute)
	after := time.Now()
	b, exp, found, err := s.BorrowEntry(ctx, "forever")
	if err != nil || !found || string(b) != "a" || !exp.IsZero() {
		t.Errorf("BorrowEntry(forever) = %q, %v, %v, %v; want a, zero time, true, nil", b, exp, found, err)
	}
	b, exp, found, err = s.BorrowEntry(ctx, "minute")
	if err != nil || !found || string(b) != "b" {
		t.Fatalf("BorrowEntry(minute) = %q, %v, %v; want b, true, nil", b, found, err)
	}
	if exp.Before(before.Add(time.Minute-time.Millisecond)) || exp.After(after.Add(time.Minute+time.Millisecond)) {
		t.Errorf("BorrowEntry(minute) expires at %v, want within [%v, %v] plus or minus 1ms", exp, before.Add(time.Minute), after.Add(time.Minute))
	}
	if _, _, found, _ := s.BorrowEntry(ctx, "missing"); found {
		t.Error("BorrowEntry(missing) found an entry")
	}
}
