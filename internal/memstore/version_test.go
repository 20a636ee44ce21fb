package memstore

import (
	"context"
	"strconv"
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

// TestBorrowEntryExpiry checks that BorrowEntry reports how long the entry
// has left: 0 for ttl 0, and about the ttl just after a write.
func TestBorrowEntryExpiry(t *testing.T) {
	ctx := context.Background()
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_ = s.Set(ctx, "forever", []byte("a"), 0)
	_ = s.Set(ctx, "minute", []byte("b"), time.Minute)
	b, left, found, err := s.BorrowEntry(ctx, "forever")
	if err != nil || !found || string(b) != "a" || left != 0 {
		t.Errorf("BorrowEntry(forever) = %q, %v, %v, %v; want a, 0, true, nil", b, left, found, err)
	}
	b, left, found, err = s.BorrowEntry(ctx, "minute")
	if err != nil || !found || string(b) != "b" {
		t.Fatalf("BorrowEntry(minute) = %q, %v, %v; want b, true, nil", b, found, err)
	}
	if left <= time.Minute-time.Second || left > time.Minute {
		t.Errorf("BorrowEntry(minute) has %v left, want just under a minute", left)
	}
	if _, _, found, _ := s.BorrowEntry(ctx, "missing"); found {
		t.Error("BorrowEntry(missing) found an entry")
	}
}

// TestVersionChangesWithEviction: an entry evicted for space changes its
// key's version, as a Delete would.
func TestVersionChangesWithEviction(t *testing.T) {
	ctx := context.Background()
	s, err := New(Options{MaxEntries: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_ = s.Set(ctx, "k", []byte("v"), 0)
	shard, all := s.Version("k")
	before := shard.Load() + all.Load()
	kShard := shard
	for i := 0; ; i++ {
		if i == 100000 {
			t.Fatal("k was never evicted")
		}
		key := "filler:" + strconv.Itoa(i)
		if sh, _ := s.Version(key); sh == kShard {
			continue // a write to k's shard would change the version by itself
		}
		_ = s.Set(ctx, key, []byte("x"), 0)
		for range 3 { // more often read than k: admitted over it
			_, _, _ = s.Borrow(ctx, key)
		}
		if i%100 == 0 {
			s.Len()                                           // runs otter's pending evictions
			if _, found := s.c.GetEntryQuietly("k"); !found { // a read would make k more likely kept
				break
			}
		}
	}
	s.Len()
	if shard.Load()+all.Load() == before {
		t.Error("k was evicted and its version did not change")
	}
}
