// Package cachetest checks that a [cache.Store] keeps the contract written
// on that interface, as testing/fstest checks an fs.FS. Every built-in
// backend runs it; a third-party backend runs it in a few lines:
//
//	func TestConformance(t *testing.T) {
//		cachetest.TestStore(t, func(t *testing.T) cache.Store {
//			s, err := mystore.New(...)
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
package cachetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
)

// NewStore returns a new, empty store for one subtest. It is called from
// parallel subtests, so it must be safe for concurrent use, and the stores it
// returns must not see each other's keys (give each a key prefix of its own
// when they share a server). TestStore closes each store at the end of its
// subtest; newStore may register more clean-up with t.Cleanup.
type NewStore func(t *testing.T) cache.Store

// TestStore runs the conformance suite against the stores newStore returns.
// Subtests are named by the rule they check (TTL/zero_never_expires) and run
// in parallel; a failure names the sentence of the Store contract it broke.
//
// The TTL subtests wait for real time, a few hundred milliseconds in all,
// since a remote store's clock cannot be faked.
// It also checks each optional capability the store claims, [cache.Batcher],
// [cache.Adder] and [cache.Counter], and skips those it does not.
func TestStore(t *testing.T, newStore NewStore) {
	t.Helper()
	for _, tc := range append(storeTests[:len(storeTests):len(storeTests)], capabilityTests...) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := open(t, newStore)
			tc.run(t, s)
		})
	}
}

// TestDiscardStore checks the contract of a store that keeps nothing, such as
// [cache.DiscardStore]: every read misses, every write succeeds, and Close
// still turns later calls into ErrClosed.
func TestDiscardStore(t *testing.T, newStore NewStore) {
	t.Helper()
	t.Run("Get/always_misses", func(t *testing.T) {
		t.Parallel()
		s := open(t, newStore)
		ctx := t.Context()
		mustSet(t, s, "k", []byte("v"), 0)
		got, found, err := s.Get(ctx, "k")
		if err != nil || found || got != nil {
			t.Errorf("Get after Set = (%q, %v, %v), want (nil, false, nil): a discarding store keeps nothing", got, found, err)
		}
		if err := s.Delete(ctx, "k"); err != nil {
			t.Errorf("Delete = %v, want nil", err)
		}
		if err := s.Clear(ctx); err != nil {
			t.Errorf("Clear = %v, want nil", err)
		}
	})
	t.Run("Close/then_use", func(t *testing.T) { t.Parallel(); testCloseThenUse(t, open(t, newStore)) })
	t.Run("Concurrent", func(t *testing.T) { t.Parallel(); testConcurrent(t, open(t, newStore), false) })
}

func open(t *testing.T, newStore NewStore) cache.Store {
	t.Helper()
	s := newStore(t)
	if s == nil {
		t.Fatal("newStore returned nil")
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close = %v, want nil", err)
		}
	})
	return s
}

var storeTests = []struct {
	name string
	run  func(t *testing.T, s cache.Store)
}{
	{"Get/missing", testGetMissing},
	{"Set/round_trip", testRoundTrip},
	{"Set/overwrite", testOverwrite},
	{"Set/empty_value", testEmptyValue},
	{"Set/binary_keys_and_values", testBinary},
	{"Set/max_key_length", testMaxKey},
	{"Set/1MiB_value", testLargeValue},
	{"Get/returns_caller_owned_copy", testGetCopy},
	{"TTL/expires", testTTLExpires},
	{"TTL/millisecond_precision", testTTLMillis},
	{"TTL/zero_never_expires", testTTLZero},
	{"TTL/overwrite_replaces_ttl", testTTLOverwrite},
	{"Delete/existing", testDeleteExisting},
	{"Delete/missing", testDeleteMissing},
	{"Clear/removes_all", testClear},
	{"Close/then_use", testCloseThenUse},
	{"Concurrent", func(t *testing.T, s cache.Store) { testConcurrent(t, s, true) }},
}

const (
	ruleGet    = "Get returns the value stored under key"
	ruleMiss   = "a key that is missing or whose ttl has elapsed returns (nil, false, nil)"
	ruleSet    = "Set stores value under key, replacing any earlier value and its ttl"
	ruleTTL    = "a ttl > 0 makes the entry expire after ttl, with at least millisecond precision"
	ruleZero   = "a ttl == 0 means the entry does not expire"
	ruleOwn    = "the store must not hand out memory that a later Set or Get could change"
	ruleDelete = "when Delete returns nil the key is gone; deleting a missing key is not an error"
	ruleClear  = "Clear removes every key of this store"
	ruleClose  = "every later call of Get, Set, Delete or Clear returns an error matching ErrClosed; calling Close more than once is not an error"
)

func mustSet(t *testing.T, s cache.Store, key string, value []byte, ttl time.Duration) {
	t.Helper()
	if err := s.Set(t.Context(), key, value, ttl); err != nil {
		t.Fatalf("Set(%q, %d bytes, %v) = %v, want nil", key, len(value), ttl, err)
	}
}

func expect(t *testing.T, s cache.Store, key string, want []byte, rule string) {
	t.Helper()
	got, found, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q) error = %v, want nil (%s)", key, err, rule)
	}
	if !found {
		t.Fatalf("Get(%q) found = false, want true (%s)", key, rule)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%q) = %s, want %s (%s)", key, show(got), show(want), rule)
	}
}

func expectMiss(t *testing.T, s cache.Store, key string, rule string) {
	t.Helper()
	got, found, err := s.Get(t.Context(), key)
	if err != nil || found || got != nil {
		t.Fatalf("Get(%q) = (%s, %v, %v), want (nil, false, nil) (%s)", key, show(got), found, err, rule)
	}
}

func show(b []byte) string {
	if len(b) > 64 {
		return fmt.Sprintf("%q... (%d bytes)", b[:64], len(b))
	}
	return fmt.Sprintf("%q", b)
}

func testGetMissing(t *testing.T, s cache.Store) {
	expectMiss(t, s, "never-set", ruleMiss)
}

func testRoundTrip(t *testing.T, s cache.Store) {
	mustSet(t, s, "user:1", []byte(`{"name":"Ada"}`), 0)
	expect(t, s, "user:1", []byte(`{"name":"Ada"}`), ruleGet)
	expectMiss(t, s, "user:2", ruleMiss)
}

func testOverwrite(t *testing.T, s cache.Store) {
	mustSet(t, s, "k", []byte("first"), 0)
	mustSet(t, s, "k", []byte("second, longer"), 0)
	expect(t, s, "k", []byte("second, longer"), ruleSet)
	mustSet(t, s, "k", []byte("3"), 0)
	expect(t, s, "k", []byte("3"), ruleSet)
}

func testEmptyValue(t *testing.T, s cache.Store) {
	mustSet(t, s, "empty", []byte{}, 0)
	got, found, err := s.Get(t.Context(), "empty")
	if err != nil || !found || len(got) != 0 {
		t.Fatalf("Get of an empty value = (%s, %v, %v), want (\"\", true, nil) (%s)", show(got), found, err, ruleGet)
	}
}

func testBinary(t *testing.T, s cache.Store) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	keys := []string{
		"with space", "tab\tnew\nline", "nul\x00byte", "\xff\xfe invalid utf-8",
		"ключ-日本語-🔑", "glob*?[a-z]\\", "{braces}:colon", "%s%d", "-", ".",
	}
	for i, k := range keys {
		v := append([]byte{byte(i)}, all...)
		mustSet(t, s, k, v, 0)
	}
	for i, k := range keys {
		expect(t, s, k, append([]byte{byte(i)}, all...), ruleGet+" (any key and value bytes)")
	}
}

func testMaxKey(t *testing.T, s cache.Store) {
	k := strings.Repeat("k", cache.MaxKeyLen)
	mustSet(t, s, k, []byte("long key"), 0)
	expect(t, s, k, []byte("long key"), ruleGet+" (keys up to MaxKeyLen bytes)")
}

func testLargeValue(t *testing.T, s cache.Store) {
	v := make([]byte, 1<<20)
	for i := range v {
		v[i] = byte(i * 7)
	}
	want := bytes.Clone(v)
	mustSet(t, s, "big", v, 0)
	expect(t, s, "big", want, ruleGet+" (1 MiB value)")
}

func testGetCopy(t *testing.T, s cache.Store) {
	mustSet(t, s, "k", []byte("original"), 0)
	got, _, err := s.Get(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		got[i] = 'X'
	}
	expect(t, s, "k", []byte("original"), ruleOwn)
}

// poll reads key until it misses or deadline passes; it returns how long the
// value stayed visible.
func waitMiss(t *testing.T, s cache.Store, key string, deadline time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		_, found, err := s.Get(t.Context(), key)
		if err != nil {
			t.Fatalf("Get(%q) = %v", key, err)
		}
		if !found {
			return time.Since(start)
		}
		if time.Since(start) > deadline {
			t.Fatalf("Get(%q) still found after %v (%s)", key, deadline, ruleTTL)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testTTLExpires(t *testing.T, s cache.Store) {
	start := time.Now()
	mustSet(t, s, "short", []byte("v"), 200*time.Millisecond)
	got, found, err := s.Get(t.Context(), "short")
	if err != nil || !found || string(got) != "v" {
		if time.Since(start) < 200*time.Millisecond {
			t.Fatalf("Get right after Set with ttl 200ms = (%s, %v, %v), want (\"v\", true, nil) (%s)", show(got), found, err, ruleTTL)
		}
	}
	waitMiss(t, s, "short", 2*time.Second)
	if time.Since(start) < 195*time.Millisecond {
		t.Fatalf("entry with ttl 200ms gone after %v (%s)", time.Since(start), ruleTTL)
	}
	// Once expired it stays gone; the store does not resurrect it.
	time.Sleep(20 * time.Millisecond)
	expectMiss(t, s, "short", ruleMiss)
}

func testTTLMillis(t *testing.T, s cache.Store) {
	// A store that rounded to whole seconds would keep this for a second.
	start := time.Now()
	mustSet(t, s, "ms", []byte("v"), 30*time.Millisecond)
	waitMiss(t, s, "ms", 2*time.Second)
	if d := time.Since(start); d > 600*time.Millisecond {
		t.Fatalf("entry with ttl 30ms lived %v (%s)", d, ruleTTL)
	}
}

func testTTLZero(t *testing.T, s cache.Store) {
	mustSet(t, s, "forever", []byte("v"), 0)
	mustSet(t, s, "short", []byte("v"), 50*time.Millisecond)
	waitMiss(t, s, "short", 2*time.Second)
	time.Sleep(50 * time.Millisecond)
	expect(t, s, "forever", []byte("v"), ruleZero)
}

func testTTLOverwrite(t *testing.T, s cache.Store) {
	// ttl then no ttl: the second Set removes the expiry.
	mustSet(t, s, "a", []byte("1"), 50*time.Millisecond)
	mustSet(t, s, "a", []byte("2"), 0)
	// no ttl then ttl: the second Set adds one.
	mustSet(t, s, "b", []byte("1"), 0)
	mustSet(t, s, "b", []byte("2"), 50*time.Millisecond)
	waitMiss(t, s, "b", 2*time.Second)
	time.Sleep(50 * time.Millisecond)
	expect(t, s, "a", []byte("2"), ruleSet)
}

func testDeleteExisting(t *testing.T, s cache.Store) {
	mustSet(t, s, "k", []byte("v"), 0)
	mustSet(t, s, "other", []byte("v"), 0)
	if err := s.Delete(t.Context(), "k"); err != nil {
		t.Fatalf("Delete = %v, want nil", err)
	}
	expectMiss(t, s, "k", ruleDelete)
	expect(t, s, "other", []byte("v"), "Delete removes key, and only key")
}

func testDeleteMissing(t *testing.T, s cache.Store) {
	if err := s.Delete(t.Context(), "never-set"); err != nil {
		t.Fatalf("Delete of a missing key = %v, want nil (%s)", err, ruleDelete)
	}
}

func testClear(t *testing.T, s cache.Store) {
	const n = 1500 // more than one SCAN batch of a remote store
	for i := range n {
		mustSet(t, s, fmt.Sprintf("k%d", i), []byte("v"), 0)
	}
	mustSet(t, s, "with-ttl", []byte("v"), time.Hour)
	if err := s.Clear(t.Context()); err != nil {
		t.Fatalf("Clear = %v, want nil", err)
	}
	for i := 0; i < n; i += 97 {
		expectMiss(t, s, fmt.Sprintf("k%d", i), ruleClear)
	}
	expectMiss(t, s, fmt.Sprintf("k%d", n-1), ruleClear)
	expectMiss(t, s, "with-ttl", ruleClear)
	// The store stays usable.
	mustSet(t, s, "after", []byte("v"), 0)
	expect(t, s, "after", []byte("v"), "a store stays usable after Clear")
	if err := s.Clear(t.Context()); err != nil {
		t.Fatalf("Clear again = %v, want nil", err)
	}
}

func testCloseThenUse(t *testing.T, s cache.Store) {
	ctx := context.Background()
	mustSet(t, s, "k", []byte("v"), 0)
	if err := s.Close(); err != nil {
		t.Fatalf("Close = %v, want nil", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close = %v, want nil (%s)", err, ruleClose)
	}
	if _, _, err := s.Get(ctx, "k"); !errors.Is(err, cache.ErrClosed) {
		t.Errorf("Get after Close = %v, want ErrClosed (%s)", err, ruleClose)
	}
	if err := s.Set(ctx, "k", []byte("v"), 0); !errors.Is(err, cache.ErrClosed) {
		t.Errorf("Set after Close = %v, want ErrClosed (%s)", err, ruleClose)
	}
	if err := s.Delete(ctx, "k"); !errors.Is(err, cache.ErrClosed) {
		t.Errorf("Delete after Close = %v, want ErrClosed (%s)", err, ruleClose)
	}
	if err := s.Clear(ctx); !errors.Is(err, cache.ErrClosed) {
		t.Errorf("Clear after Close = %v, want ErrClosed (%s)", err, ruleClose)
	}
}

// testConcurrent mixes reads, writes and deletes of a few shared keys from
// several goroutines; run under -race it finds unsynchronised state, and any
// value read must be one that some goroutine wrote in full.
func testConcurrent(t *testing.T, s cache.Store, keeps bool) {
	const workers, ops, keys = 8, 300, 5
	ctx := t.Context()
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range ops {
				key := fmt.Sprintf("shared:%d", (w+i)%keys)
				val := bytes.Repeat([]byte{byte('a' + w)}, 100+w)
				var err error
				switch i % 5 {
				case 0, 1:
					err = s.Set(ctx, key, val, 0)
				case 2:
					err = s.Delete(ctx, key)
				default:
					var got []byte
					got, _, err = s.Get(ctx, key)
					if err == nil && len(got) > 0 {
						w := int(got[0] - 'a')
						if w < 0 || w >= workers || !bytes.Equal(got, bytes.Repeat(got[:1], 100+w)) {
							err = fmt.Errorf("Get(%q) = %s, which no goroutine wrote (%s)", key, show(got), ruleGet)
						}
					}
				}
				if err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if keeps {
		mustSet(t, s, "after", []byte("v"), 0)
		expect(t, s, "after", []byte("v"), ruleGet)
	}
}
