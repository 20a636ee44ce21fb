package cachetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
)

// NewStores returns two new stores on one backend for one subtest: b shares
// a's data, as the same store opened by a second process would (another
// client of the same server, with the same key prefix), so that what one
// locks, fills or deletes the other sees, and a Fill through one wakes the
// watchers of the other. b is nil for a backend that cannot be opened twice
// on the same data (an in-process store): the subtests then use a for both
// sides. Like [NewStore], it is called from parallel subtests, and the pairs
// it returns must not see each other's keys. TestLocker closes both stores
// at the end of the subtest.
type NewStores func(t *testing.T) (a, b cache.Store)

// TestLocker runs the conformance suite of [cache.Locker] against the stores
// newStores returns, which must implement it. A third-party backend runs it
// beside [TestStore]:
//
//	func TestLocker(t *testing.T) {
//		cachetest.TestLocker(t, func(t *testing.T) (a, b cache.Store) {
//			prefix := uniquePrefix(t)
//			return open(t, prefix), open(t, prefix) // two clients, one data set
//		})
//	}
//
// Subtests are named by the rule they check (Fill/after_Delete_stores_nothing)
// and run in parallel; a failure names the sentence of the Locker contract it
// broke. Leases are short (50 to 200ms), and the subtests about leases wait
// for them to pass, polling with a deadline.
func TestLocker(t *testing.T, newStores NewStores) {
	t.Helper()
	for _, tc := range lockerTests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := openPair(t, newStores)
			tc.run(t, a, b)
		})
	}
}

func openPair(t *testing.T, newStores NewStores) (a, b cache.Locker) {
	t.Helper()
	sa, sb := newStores(t)
	if sa == nil {
		t.Fatal("newStores returned a nil first store")
	}
	for _, s := range []cache.Store{sa, sb} {
		if s == nil {
			continue
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close = %v, want nil", err)
			}
		})
	}
	la, ok := sa.(cache.Locker)
	if !ok {
		t.Fatalf("%T does not implement cache.Locker", sa)
	}
	if sb == nil {
		return la, la
	}
	lb, ok := sb.(cache.Locker)
	if !ok {
		t.Fatalf("%T does not implement cache.Locker", sb)
	}
	return la, lb
}

// lockerStore is what the suite calls: a Store that is a Locker.
type lockerStore interface {
	cache.Store
	cache.Locker
}

var lockerTests = []struct {
	name string
	run  func(t *testing.T, a, b cache.Locker)
}{
	{"Lock/missing_key_once", testLockMissingOnce},
	{"Lock/placeholder_reads_as_placeholder", testPlaceholderBytes},
	{"Lock/one_winner_among_many", testLockOneWinner},
	{"Lock/entry_needs_seen_created", testLockEntrySeen},
	{"Lock/entry_keeps_value_and_ttl", testLockEntryKeepsTTL},
	{"Lock/not_lockable_entries", testLockNotLockable},
	{"Lock/standing_lease_blocks", testLockStandingLease},
	{"Lease/passing_frees_missing_key", testLeasePassesPlaceholder},
	{"Lease/passing_frees_entry", testLeasePassesEntry},
	{"Fill/holder_stores_and_releases", testFillHolder},
	{"Fill/ttl", testFillTTL},
	{"Fill/non_holder_stores_nothing", testFillNonHolder},
	{"Fill/after_invalidation_stores_nothing", testFillAfterInvalidation},
	{"Renew/extends_lease", testRenewExtends},
	{"Renew/fails_when_lease_lost", testRenewLost},
	{"Unlock/placeholder_removed", testUnlockPlaceholder},
	{"Unlock/entry_keeps_value_and_ttl", testUnlockEntry},
	{"Unlock/non_holder_does_nothing", testUnlockNonHolder},
	{"Watch/wakes_after_Fill", func(t *testing.T, a, b cache.Locker) { testWatchWakes(t, a, b, true) }},
	{"Watch/wakes_after_Unlock", func(t *testing.T, a, b cache.Locker) { testWatchWakes(t, a, b, false) }},
	{"Watch/stop", testWatchStop},
	{"Close/then_use", testLockerClose},
}

const (
	ruleLockMissing  = "Lock takes the lease of a missing key (seen zero) by storing a placeholder"
	ruleLockOther    = "Lock fails while another lease stands on the key, and returns the entry as it was"
	ruleLockSeen     = "Lock of an existing key takes it only if the entry has a header whose Created is seen"
	ruleLockKeeps    = "locking an existing entry writes the lock into its header, keeping its value and ttl, but the entry lives at least until the lease ends"
	ruleLockNotOurs  = "a value without a header, or a header of another layout, cannot be locked"
	ruleLeasePasses  = "a lease whose time has passed does not stand: the key is taken over"
	ruleFill         = "Fill stores entry under key for ttl if token still holds key's lease, which the write releases"
	ruleFillLost     = "Fill reports false and stores nothing when the lease was lost (a Delete, Clear or Set came, or it was taken over)"
	ruleRenew        = "Renew extends token's lease on key to lease from now"
	ruleRenewLost    = "Renew reports false when token no longer holds the lease"
	ruleUnlock       = "Unlock releases token's lease: a placeholder is removed, an entry keeps its value and ttl"
	ruleUnlockOthers = "releasing a lease that token does not hold does nothing"
	ruleWatch        = "Watch's channel receives when key is filled or unlocked, in any process"
	ruleLockerClose  = "every call after Close returns an error matching ErrClosed"
)

// long is a lease that does not pass during a subtest.
const long = time.Minute

func store(l cache.Locker) lockerStore { return l.(lockerStore) }

func mustLock(t *testing.T, l cache.Locker, key, token string, lease time.Duration, seen time.Time) {
	t.Helper()
	ok, entry, _, err := l.Lock(t.Context(), key, token, lease, seen)
	if err != nil || !ok {
		t.Fatalf("Lock(%q, %q, %v, %v) = (%v, %s, %v), want acquired (%s)", key, token, lease, seen, ok, show(entry), err, ruleLockSeen)
	}
}

func mustFill(t *testing.T, l cache.Locker, key, token string, entry []byte, ttl time.Duration) {
	t.Helper()
	ok, err := l.Fill(t.Context(), key, token, bytes.Clone(entry), ttl)
	if err != nil || !ok {
		t.Fatalf("Fill(%q, %q) by the holder = (%v, %v), want (true, nil) (%s)", key, token, ok, err, ruleFill)
	}
}

// parsed reads key through l's Store and parses it; it fails when missing.
func parsed(t *testing.T, l cache.Locker, key, rule string) cache.Entry {
	t.Helper()
	b, found, err := store(l).Get(t.Context(), key)
	if err != nil || !found {
		t.Fatalf("Get(%q) = (%s, %v, %v), want an entry (%s)", key, show(b), found, err, rule)
	}
	e, err := cache.ParseEntry(b)
	if err != nil {
		t.Fatalf("ParseEntry(Get(%q) = %s) = %v, want an entry of this layout (%s)", key, show(b), err, rule)
	}
	return e
}

// headerEntry is an entry with a header, created at created, as GetOrSet
// stores one.
func headerEntry(value string, created time.Time) []byte {
	return cache.Entry{Value: []byte(value), Created: created, Fresh: created.Add(time.Hour)}.Append(nil)
}

// fillEntry locks the missing key and fills it with a header entry; it
// returns the entry's Created.
func fillEntry(t *testing.T, l cache.Locker, key, value string, ttl time.Duration) time.Time {
	t.Helper()
	created := time.UnixMilli(time.Now().UnixMilli())
	mustLock(t, l, key, "filler", long, time.Time{})
	mustFill(t, l, key, "filler", headerEntry(value, created), ttl)
	return created
}

func testLockMissingOnce(t *testing.T, a, b cache.Locker) {
	ctx := t.Context()
	ok, entry, found, err := a.Lock(ctx, "k", "t1", long, time.Time{})
	if err != nil || !ok || found || entry != nil {
		t.Fatalf("first Lock of a missing key = (%v, %s, %v, %v), want (true, nil, false, nil) (%s)", ok, show(entry), found, err, ruleLockMissing)
	}
	ok, entry, found, err = b.Lock(ctx, "k", "t2", long, time.Time{})
	if err != nil || ok || !found {
		t.Fatalf("second Lock by another token = (%v, %s, %v, %v), want (false, placeholder, true, nil) (%s)", ok, show(entry), found, err, ruleLockOther)
	}
	e, err := cache.ParseEntry(entry)
	if err != nil || !e.Placeholder || e.Lock != "t1" || e.Value != nil {
		t.Fatalf("entry returned by the failed Lock = %s (%+v, %v), want a placeholder locked by t1 (%s)", show(entry), e, err, ruleLockOther)
	}
}

func testPlaceholderBytes(t *testing.T, a, b cache.Locker) {
	mustLock(t, a, "k", "t1", long, time.Time{})
	e := parsed(t, b, "k", "a placeholder is stored under the key, in the Entry layout")
	if !e.Placeholder || e.Value != nil || e.Lock != "t1" || !e.LockUntil.After(time.Now().Add(long/2)) {
		t.Fatalf("Get of a locked missing key parses as %+v, want a placeholder locked by t1 for about %v (%s)", e, long, ruleLockMissing)
	}
}

func testLockOneWinner(t *testing.T, a, b cache.Locker) {
	const n = 16
	var wins atomic.Int32
	var wg sync.WaitGroup
	errc := make(chan error, n)
	for i := range n {
		l := a
		if i%2 == 1 {
			l = b
		}
		wg.Go(func() {
			ok, _, _, err := l.Lock(t.Context(), "k", fmt.Sprintf("t%d", i), long, time.Time{})
			if err != nil {
				errc <- err
			}
			if ok {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Errorf("Lock = %v", err)
	}
	if w := wins.Load(); w != 1 {
		t.Fatalf("%d concurrent Locks of one missing key: %d acquired, want exactly 1 (%s)", n, w, ruleLockOther)
	}
}

func testLockEntrySeen(t *testing.T, a, b cache.Locker) {
	ctx := t.Context()
	created := fillEntry(t, a, "k", "v", 0)
	for _, seen := range []time.Time{{}, created.Add(-time.Millisecond), created.Add(time.Millisecond)} {
		ok, entry, found, err := b.Lock(ctx, "k", "t2", long, seen)
		if err != nil || ok || !found {
			t.Fatalf("Lock with seen %v of an entry created %v = (%v, %s, %v, %v), want (false, entry, true, nil) (%s)", seen, created, ok, show(entry), found, err, ruleLockSeen)
		}
		if e, err := cache.ParseEntry(entry); err != nil || string(e.Value) != "v" {
			t.Fatalf("Lock with the wrong seen returned %s, want the entry holding \"v\" (%s)", show(entry), ruleLockOther)
		}
	}
	ok, entry, found, err := b.Lock(ctx, "k", "t2", long, created)
	if err != nil || !ok || !found {
		t.Fatalf("Lock with seen == Created = (%v, %s, %v, %v), want (true, entry, true, nil) (%s)", ok, show(entry), found, err, ruleLockSeen)
	}
	if e, err := cache.ParseEntry(entry); err != nil || string(e.Value) != "v" || e.Lock != "" {
		t.Fatalf("Lock returned %s, want the entry as it was before the call (%s)", show(entry), ruleLockSeen)
	}
	// A key that is gone is not "the entry the caller last saw".
	mustLock(t, a, "gone", "t1", long, time.Time{})
	if err := store(a).Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if ok, _, found, err := b.Lock(ctx, "gone", "t2", long, created); err != nil || ok || found {
		t.Fatalf("Lock with seen non-zero of a missing key = (%v, %v, %v), want (false, false, nil) (%s)", ok, found, err, ruleLockSeen)
	}
}

func testLockEntryKeepsTTL(t *testing.T, a, b cache.Locker) {
	const ttl = 300 * time.Millisecond
	start := time.Now()
	created := fillEntry(t, a, "k", "value", ttl)
	mustLock(t, b, "k", "t2", ttl/3, created)
	e := parsed(t, a, "k", ruleLockKeeps)
	if string(e.Value) != "value" || !e.Created.Equal(created) || e.Lock != "t2" || e.Placeholder {
		t.Fatalf("entry after Lock = %+v, want value \"value\", Created %v, locked by t2 (%s)", e, created, ruleLockKeeps)
	}
	// The entry still expires with its own ttl, not the (shorter) lease's.
	waitMiss(t, store(a), "k", 3*time.Second)
	if d := time.Since(start); d < ttl-5*time.Millisecond {
		t.Fatalf("entry with ttl %v gone after %v (%s)", ttl, d, ruleLockKeeps)
	}
	// A lease longer than the entry's ttl keeps the entry until it ends, so
	// that the holder's Fill finds it (an early refresh near the ttl).
	created = fillEntry(t, a, "k2", "value", 100*time.Millisecond)
	mustLock(t, b, "k2", "t3", 600*time.Millisecond, created)
	time.Sleep(300 * time.Millisecond)
	if ok, err := b.Fill(t.Context(), "k2", "t3", []byte("new"), time.Minute); err != nil || !ok {
		t.Fatalf("Fill by the holder after the entry's ttl but within the lease = (%v, %v), want (true, nil) (%s)", ok, err, ruleLockKeeps)
	}
}

func testLockNotLockable(t *testing.T, a, b cache.Locker) {
	ctx := t.Context()
	now := time.UnixMilli(time.Now().UnixMilli())
	for _, tc := range []struct {
		name  string
		value []byte
		seen  time.Time
	}{
		{"plain value", []byte("plain"), time.Time{}},
		{"plain value, seen set", []byte("plain"), now},
		{"version 2", []byte(fmt.Sprintf("%s2 %d 0 - - 0\nv", cache.EntryMagic, now.UnixMilli())), now},
		{"unparsable header", []byte(fmt.Sprintf("%s1 %d x - - 0\nv", cache.EntryMagic, now.UnixMilli())), now},
		{"no newline", []byte(fmt.Sprintf("%s1 %d 0 - - 0", cache.EntryMagic, now.UnixMilli())), now},
	} {
		if err := store(a).Set(ctx, "k", tc.value, 0); err != nil {
			t.Fatal(err)
		}
		ok, entry, found, err := b.Lock(ctx, "k", "t2", long, tc.seen)
		if err != nil || ok || !found || !bytes.Equal(entry, tc.value) {
			t.Fatalf("%s: Lock = (%v, %s, %v, %v), want (false, %s, true, nil) (%s)", tc.name, ok, show(entry), found, err, show(tc.value), ruleLockNotOurs)
		}
		expect(t, store(a), "k", tc.value, ruleLockNotOurs+": a failed Lock changes nothing")
	}
}

func testLockStandingLease(t *testing.T, a, b cache.Locker) {
	ctx := t.Context()
	created := fillEntry(t, a, "k", "v", 0)
	mustLock(t, a, "k", "t1", long, created)
	ok, entry, found, err := b.Lock(ctx, "k", "t2", long, created)
	if err != nil || ok || !found {
		t.Fatalf("Lock of an entry under a standing lease = (%v, %s, %v, %v), want (false, entry, true, nil) (%s)", ok, show(entry), found, err, ruleLockOther)
	}
	if e, err := cache.ParseEntry(entry); err != nil || e.Lock != "t1" || string(e.Value) != "v" {
		t.Fatalf("the failed Lock returned %s, want the entry locked by t1 (%s)", show(entry), ruleLockOther)
	}
}

// waitTakeover polls Lock by token "t2" on b until it acquires; it returns
// how long after start that was.
func waitTakeover(t *testing.T, b cache.Locker, key string, seen, start time.Time) time.Duration {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ok, entry, _, err := b.Lock(t.Context(), key, "t2", long, seen)
		if err != nil {
			t.Fatalf("Lock = %v", err)
		}
		if ok {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("Lock still fails 5s after a lease of 50ms, entry %s (%s)", show(entry), ruleLeasePasses)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testLeasePassesPlaceholder(t *testing.T, a, b cache.Locker) {
	const lease = 50 * time.Millisecond
	start := time.Now()
	mustLock(t, a, "k", "t1", lease, time.Time{})
	if d := waitTakeover(t, b, "k", time.Time{}, start); d < lease-5*time.Millisecond {
		t.Fatalf("a lease of %v was taken over after %v: it still stood (%s)", lease, d, ruleLeasePasses)
	}
	checkLostHolder(t, a, "k", "t1")
	if e := parsed(t, a, "k", ruleLeasePasses); !e.Placeholder || e.Lock != "t2" {
		t.Fatalf("entry after the takeover = %+v, want a placeholder locked by t2 (%s)", e, ruleLeasePasses)
	}
}

func testLeasePassesEntry(t *testing.T, a, b cache.Locker) {
	const lease = 50 * time.Millisecond
	created := fillEntry(t, a, "k", "v", 0)
	start := time.Now()
	mustLock(t, a, "k", "t1", lease, created)
	if d := waitTakeover(t, b, "k", created, start); d < lease-5*time.Millisecond {
		t.Fatalf("a lease of %v was taken over after %v: it still stood (%s)", lease, d, ruleLeasePasses)
	}
	checkLostHolder(t, a, "k", "t1")
	if e := parsed(t, a, "k", ruleLeasePasses); string(e.Value) != "v" || e.Lock != "t2" {
		t.Fatalf("entry after the takeover = %+v, want \"v\" locked by t2 (%s)", e, ruleLeasePasses)
	}
}

// checkLostHolder checks that token, whose key was taken over, can neither
// renew nor fill it, nor release the new holder's lease.
func checkLostHolder(t *testing.T, l cache.Locker, key, token string) {
	t.Helper()
	ctx := t.Context()
	if ok, err := l.Renew(ctx, key, token, long); err != nil || ok {
		t.Fatalf("Renew by the holder whose key was taken over = (%v, %v), want (false, nil) (%s)", ok, err, ruleRenewLost)
	}
	if ok, err := l.Fill(ctx, key, token, []byte("late"), 0); err != nil || ok {
		t.Fatalf("Fill by the holder whose key was taken over = (%v, %v), want (false, nil) (%s)", ok, err, ruleFillLost)
	}
	if err := l.Unlock(ctx, key, token); err != nil {
		t.Fatalf("Unlock by the old holder = %v, want nil (%s)", err, ruleUnlockOthers)
	}
}

func testFillHolder(t *testing.T, a, b cache.Locker) {
	ctx := t.Context()
	mustLock(t, a, "k", "t1", long, time.Time{})
	created := time.UnixMilli(time.Now().UnixMilli())
	entry := headerEntry("v", created)
	mustFill(t, a, "k", "t1", entry, 0)
	expect(t, store(b), "k", entry, ruleFill)
	// Released: the holder cannot renew it, and another can lock the entry.
	if ok, err := a.Renew(ctx, "k", "t1", long); err != nil || ok {
		t.Fatalf("Renew after Fill = (%v, %v), want (false, nil): the write releases the lease (%s)", ok, err, ruleFill)
	}
	mustLock(t, b, "k", "t2", long, created)
	// A plain value is stored as it is.
	mustFill(t, b, "k", "t2", []byte("plain"), 0)
	expect(t, store(a), "k", []byte("plain"), ruleFill)
}

func testFillTTL(t *testing.T, a, b cache.Locker) {
	const ttl = 100 * time.Millisecond
	mustLock(t, a, "short", "t1", long, time.Time{})
	mustLock(t, a, "forever", "t1", 100*time.Millisecond, time.Time{})
	start := time.Now()
	mustFill(t, a, "short", "t1", []byte("v"), ttl)
	mustFill(t, a, "forever", "t1", []byte("v"), 0)
	waitMiss(t, store(b), "short", 3*time.Second)
	if d := time.Since(start); d < ttl-5*time.Millisecond {
		t.Fatalf("Fill with ttl %v gone after %v (%s)", ttl, d, ruleFill)
	}
	// "forever" outlives its 100ms lease: ttl 0 is no expiry.
	time.Sleep(50 * time.Millisecond)
	expect(t, store(b), "forever", []byte("v"), ruleFill+" (ttl 0: no expiry)")
}

func testFillNonHolder(t *testing.T, a, b cache.Locker) {
	ctx := t.Context()
	mustLock(t, a, "k", "t1", long, time.Time{})
	if ok, err := b.Fill(ctx, "k", "t2", []byte("intruder"), 0); err != nil || ok {
		t.Fatalf("Fill by a token that holds no lease = (%v, %v), want (false, nil) (%s)", ok, err, ruleFillLost)
	}
	if e := parsed(t, a, "k", ruleFillLost); !e.Placeholder || e.Lock != "t1" {
		t.Fatalf("after a non-holder's Fill the entry is %+v, want t1's placeholder (%s)", e, ruleFillLost)
	}
	if ok, err := b.Fill(ctx, "never-locked", "t2", []byte("intruder"), 0); err != nil || ok {
		t.Fatalf("Fill of a key never locked = (%v, %v), want (false, nil) (%s)", ok, err, ruleFillLost)
	}
	expectMiss(t, store(a), "never-locked", ruleFillLost)
}

func testFillAfterInvalidation(t *testing.T, a, b cache.Locker) {
	for _, tc := range []struct {
		name       string
		invalidate func(ctx context.Context, s cache.Store) error
		want       []byte // nil: missing
	}{
		{"Delete", func(ctx context.Context, s cache.Store) error { return s.Delete(ctx, "k") }, nil},
		{"Clear", func(ctx context.Context, s cache.Store) error { return s.Clear(ctx) }, nil},
		{"Set", func(ctx context.Context, s cache.Store) error { return s.Set(ctx, "k", []byte("newer"), 0) }, []byte("newer")},
	} {
		for _, existing := range []bool{false, true} {
			ctx := t.Context()
			var seen time.Time
			if existing {
				seen = fillEntry(t, a, "k", "old", 0)
			}
			mustLock(t, a, "k", "t1", long, seen)
			if err := tc.invalidate(ctx, store(b)); err != nil {
				t.Fatalf("%s = %v", tc.name, err)
			}
			if ok, err := a.Fill(ctx, "k", "t1", []byte("loaded before the "+tc.name), 0); err != nil || ok {
				t.Fatalf("Fill after %s (existing entry: %v) = (%v, %v), want (false, nil) (%s)", tc.name, existing, ok, err, ruleFillLost)
			}
			if ok, err := a.Renew(ctx, "k", "t1", long); err != nil || ok {
				t.Fatalf("Renew after %s (existing entry: %v) = (%v, %v), want (false, nil) (%s)", tc.name, existing, ok, err, ruleRenewLost)
			}
			if tc.want == nil {
				expectMiss(t, store(a), "k", ruleFillLost)
			} else {
				expect(t, store(a), "k", tc.want, ruleFillLost)
			}
			if err := store(a).Delete(ctx, "k"); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func testRenewExtends(t *testing.T, a, b cache.Locker) {
	const lease = 100 * time.Millisecond
	ctx := t.Context()
	created := fillEntry(t, a, "entry", "v", 0)
	for _, tc := range []struct {
		key  string
		seen time.Time
	}{{"missing", time.Time{}}, {"entry", created}} {
		start := time.Now()
		mustLock(t, a, tc.key, "t1", lease, tc.seen)
		ok, err := a.Renew(ctx, tc.key, "t1", long)
		if err != nil || !ok {
			if time.Since(start) >= lease {
				t.Fatalf("Renew came %v after a lease of %v: this machine is too slow for the subtest", time.Since(start), lease)
			}
			t.Fatalf("%s: Renew by the holder = (%v, %v), want (true, nil) (%s)", tc.key, ok, err, ruleRenew)
		}
		time.Sleep(time.Until(start.Add(lease + 50*time.Millisecond))) // past the first lease
		if ok, _, _, err := b.Lock(ctx, tc.key, "t2", long, tc.seen); err != nil || ok {
			t.Fatalf("%s: Lock by another token after the renewed holder's first lease = (%v, %v), want (false, nil) (%s)", tc.key, ok, err, ruleRenew)
		}
		if e := parsed(t, b, tc.key, ruleRenew); e.Lock != "t1" || !e.LockUntil.After(time.Now().Add(long/2)) {
			t.Fatalf("%s: entry after Renew = %+v, want locked by t1 for about %v (%s)", tc.key, e, long, ruleRenew)
		}
		mustFill(t, a, tc.key, "t1", []byte("v2"), 0)
	}
}

func testRenewLost(t *testing.T, a, b cache.Locker) {
	ctx := t.Context()
	if ok, err := a.Renew(ctx, "never-locked", "t1", long); err != nil || ok {
		t.Fatalf("Renew of a key never locked = (%v, %v), want (false, nil) (%s)", ok, err, ruleRenewLost)
	}
	expectMiss(t, store(a), "never-locked", ruleRenewLost+": a failed Renew stores nothing")
	mustLock(t, a, "k", "t1", long, time.Time{})
	if ok, err := b.Renew(ctx, "k", "t2", long); err != nil || ok {
		t.Fatalf("Renew by a token that holds no lease = (%v, %v), want (false, nil) (%s)", ok, err, ruleRenewLost)
	}
	if err := store(b).Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if ok, err := a.Renew(ctx, "k", "t1", long); err != nil || ok {
		t.Fatalf("Renew after Delete = (%v, %v), want (false, nil) (%s)", ok, err, ruleRenewLost)
	}
	expectMiss(t, store(a), "k", ruleRenewLost+": a failed Renew stores nothing")
}

func testUnlockPlaceholder(t *testing.T, a, b cache.Locker) {
	mustLock(t, a, "k", "t1", long, time.Time{})
	if err := a.Unlock(t.Context(), "k", "t1"); err != nil {
		t.Fatalf("Unlock = %v, want nil", err)
	}
	expectMiss(t, store(b), "k", ruleUnlock)
	mustLock(t, b, "k", "t2", long, time.Time{})
}

func testUnlockEntry(t *testing.T, a, b cache.Locker) {
	const ttl = 300 * time.Millisecond
	start := time.Now()
	created := fillEntry(t, a, "k", "value", ttl)
	mustLock(t, a, "k", "t1", ttl/3, created)
	if err := a.Unlock(t.Context(), "k", "t1"); err != nil {
		t.Fatalf("Unlock = %v, want nil", err)
	}
	e := parsed(t, b, "k", ruleUnlock)
	if string(e.Value) != "value" || !e.Created.Equal(created) || e.Lock != "" || !e.LockUntil.IsZero() {
		t.Fatalf("entry after Unlock = %+v, want \"value\" created %v with no lock (%s)", e, created, ruleUnlock)
	}
	mustLock(t, b, "k", "t2", ttl/3, created) // released: no lease stands
	if err := b.Unlock(t.Context(), "k", "t2"); err != nil {
		t.Fatal(err)
	}
	waitMiss(t, store(a), "k", 3*time.Second)
	if d := time.Since(start); d < ttl-5*time.Millisecond {
		t.Fatalf("entry with ttl %v gone after %v (%s)", ttl, d, ruleUnlock)
	}
}

func testUnlockNonHolder(t *testing.T, a, b cache.Locker) {
	ctx := t.Context()
	mustLock(t, a, "k", "t1", long, time.Time{})
	before, _, _ := store(a).Get(ctx, "k")
	if err := b.Unlock(ctx, "k", "t2"); err != nil {
		t.Fatalf("Unlock by a non-holder = %v, want nil (%s)", err, ruleUnlockOthers)
	}
	expect(t, store(a), "k", before, ruleUnlockOthers)
	if err := b.Unlock(ctx, "never-locked", "t2"); err != nil {
		t.Fatalf("Unlock of a key never locked = %v, want nil (%s)", err, ruleUnlockOthers)
	}
	expectMiss(t, store(a), "never-locked", ruleUnlockOthers)
}

// testWatchWakes watches k on b and fills (or unlocks) it through a. A
// notification may be lost (the contract allows it: a store may still be
// subscribing), so it tries again, up to a deadline, until one arrives; a
// watcher of another key must stay silent.
func testWatchWakes(t *testing.T, a, b cache.Locker, fill bool) {
	ctx := t.Context()
	filled, stop := b.Watch("k")
	defer stop()
	other, stopOther := b.Watch("other")
	defer stopOther()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := store(a).Delete(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		mustLock(t, a, "k", "t1", long, time.Time{})
		if fill {
			mustFill(t, a, "k", "t1", []byte("v"), 0)
		} else if err := a.Unlock(ctx, "k", "t1"); err != nil {
			t.Fatal(err)
		}
		select {
		case <-filled:
			select {
			case <-other:
				t.Fatalf("the watcher of another key was woken (%s)", ruleWatch)
			default:
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no wake-up within 5s of repeated %s (%s)", map[bool]string{true: "Fills", false: "Unlocks"}[fill], ruleWatch)
		}
	}
}

func testWatchStop(t *testing.T, a, b cache.Locker) {
	ctx := t.Context()
	stopped, stop := b.Watch("k")
	live, stopLive := b.Watch("k")
	defer stopLive()
	stop()
	stop() // twice is fine
	deadline := time.Now().Add(5 * time.Second)
	for {
		mustLock(t, a, "k", "t1", long, time.Time{})
		mustFill(t, a, "k", "t1", []byte("v"), 0)
		if err := store(a).Delete(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		select {
		case <-live:
			select {
			case <-stopped:
				t.Fatalf("a stopped watch was woken (%s)", ruleWatch)
			default:
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no wake-up within 5s of repeated Fills (%s)", ruleWatch)
		}
	}
}

func testLockerClose(t *testing.T, a, _ cache.Locker) {
	ctx := context.Background()
	_, stop := a.Watch("k")
	defer stop()
	if err := store(a).Close(); err != nil {
		t.Fatalf("Close = %v, want nil", err)
	}
	if _, _, _, err := a.Lock(ctx, "k", "t1", long, time.Time{}); !errors.Is(err, cache.ErrClosed) {
		t.Errorf("Lock after Close = %v, want ErrClosed (%s)", err, ruleLockerClose)
	}
	if _, err := a.Renew(ctx, "k", "t1", long); !errors.Is(err, cache.ErrClosed) {
		t.Errorf("Renew after Close = %v, want ErrClosed (%s)", err, ruleLockerClose)
	}
	if _, err := a.Fill(ctx, "k", "t1", []byte("v"), 0); !errors.Is(err, cache.ErrClosed) {
		t.Errorf("Fill after Close = %v, want ErrClosed (%s)", err, ruleLockerClose)
	}
	if err := a.Unlock(ctx, "k", "t1"); !errors.Is(err, cache.ErrClosed) {
		t.Errorf("Unlock after Close = %v, want ErrClosed (%s)", err, ruleLockerClose)
	}
	_, stop2 := a.Watch("k") // must neither block nor panic
	stop2()
}
