package cachetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
)

// TestNearCacher runs the conformance suite of [cache.NearCacher] against
// the stores newStores returns: a, with its near cache on, and b, another
// client of the same data (as another process is), which must not be nil.
// A third-party backend with a near cache runs it beside [TestStore]:
//
//	func TestNearCacher(t *testing.T) {
//		cachetest.TestNearCacher(t, func(t *testing.T) (a, b cache.Store) {
//			prefix := uniquePrefix(t)
//			return openNear(t, prefix), open(t, prefix)
//		})
//	}
//
// Subtests are named by the rule they check and run in parallel. Changes by
// b are waited for, polling for up to 5s: the contract bounds how soon they
// arrive by the backend's own notice, not by a time.
func TestNearCacher(t *testing.T, newStores NewStores) {
	t.Helper()
	for _, tc := range nearTests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := newStores(t)
			if a == nil || b == nil {
				t.Fatal("newStores returned a nil store: TestNearCacher needs two clients of the same data")
			}
			t.Cleanup(func() { a.Close(); b.Close() })
			n, ok := a.(cache.NearCacher)
			if !ok {
				t.Fatalf("%T does not implement cache.NearCacher", a)
			}
			tc.run(t, n, a, b)
		})
	}
}

var nearTests = []struct {
	name string
	run  func(t *testing.T, n cache.NearCacher, a, b cache.Store)
}{
	{"GetNear/repeated_read_is_near", testNearRepeated},
	{"GetNear/own_writes_are_read_at_once", testNearOwnWrites},
	{"GetNear/other_clients_writes_arrive", testNearOtherWrites},
	{"GetNear/expired_never_read", testNearExpiry},
	{"OnChange/told_of_other_clients_writes", testNearOnChange},
	{"NearUsage/counts_entries", testNearUsage},
	{"NearPeek/until_a_change", testNearPeek},
}

// getNear reads key through n, failing the test on an error.
func getNear(t *testing.T, n cache.NearCacher, key string) (string, bool, bool) {
	t.Helper()
	b, found, near, err := n.GetNear(context.Background(), key)
	if err != nil {
		t.Fatalf("GetNear(%q): %v", key, err)
	}
	return string(b), found, near
}

// awaitNear reads key through n until it answers want (or a miss, for
// wantFound false), then checks that the next reads agree.
func awaitNear(t *testing.T, n cache.NearCacher, key, want string, wantFound bool, rule string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, found, _ := getNear(t, n, key)
		if found == wantFound && (!found || v == want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GetNear(%q) = %q, %v 5s after the other client's write, want %q, %v; %s", key, v, found, want, wantFound, rule)
		}
		time.Sleep(time.Millisecond)
	}
	for range 3 {
		if v, found, _ := getNear(t, n, key); found != wantFound || (found && v != want) {
			t.Fatalf("GetNear(%q) = %q, %v after it had read %q, %v; %s", key, v, found, want, wantFound, rule)
		}
	}
}

func testNearRepeated(t *testing.T, n cache.NearCacher, a, b cache.Store) {
	mustSet(t, b, "k", []byte("v"), 0)
	const rule = "a key read once is read again from process memory (near), with the same answer as Get"
	// A near cache may drop everything when one of its connections closes,
	// as a Cluster client's first connections may at start: a few tries.
	near := false
	for range 50 {
		v, found, fromMemory := getNear(t, n, "k")
		if !found || v != "v" {
			t.Fatalf("GetNear = %q, %v; %s", v, found, rule)
		}
		if near = fromMemory; near {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !near {
		t.Fatalf("50 GetNear of one key, none near; %s", rule)
	}
	expect(t, a, "k", []byte("v"), rule)
	getNear(t, n, "missing")
	if _, found, _ := getNear(t, n, "missing"); found {
		t.Fatal("second GetNear of a missing key found it; a missing key may be near-cached, as missing")
	}
}

func testNearOwnWrites(t *testing.T, n cache.NearCacher, a, _ cache.Store) {
	const rule = "once the store's own Set, Delete or Clear has returned, GetNear never reads the earlier value"
	ctx := context.Background()
	for i := range 200 {
		want := fmt.Sprint(i)
		getNear(t, n, "k") // the earlier value, near-cached
		mustSet(t, a, "k", []byte(want), 0)
		if v, found, _ := getNear(t, n, "k"); !found || v != want {
			t.Fatalf("GetNear after Set(%q) = %q, %v; %s", want, v, found, rule)
		}
		getNear(t, n, "k")
		var err error
		if i%2 == 0 {
			err = a.Delete(ctx, "k")
		} else {
			err = a.Clear(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
		if v, found, _ := getNear(t, n, "k"); found {
			t.Fatalf("GetNear after Delete or Clear = %q; %s", v, rule)
		}
	}
}

func testNearOtherWrites(t *testing.T, n cache.NearCacher, _, b cache.Store) {
	const rule = "a write by another client reaches the near cache, and the earlier value is not read again"
	ctx := context.Background()
	mustSet(t, b, "k", []byte("1"), 0)
	awaitNear(t, n, "k", "1", true, rule)
	mustSet(t, b, "k", []byte("2"), 0)
	awaitNear(t, n, "k", "2", true, rule)
	if err := b.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	awaitNear(t, n, "k", "", false, rule)
	mustSet(t, b, "k", []byte("3"), 0) // near-cached as missing until now
	awaitNear(t, n, "k", "3", true, rule)
	if err := b.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	awaitNear(t, n, "k", "", false, rule)
}

func testNearExpiry(t *testing.T, n cache.NearCacher, _, b cache.Store) {
	const ttl = 100 * time.Millisecond
	mustSet(t, b, "k", []byte("v"), ttl)
	expired := time.Now().Add(ttl)
	getNear(t, n, "k")
	for {
		start := time.Now()
		_, found, near := getNear(t, n, "k")
		if found && near && start.After(expired) {
			t.Fatalf("a near read %v after the entry's ttl ended found it; an entry whose ttl has elapsed is never read", start.Sub(expired))
		}
		if !found {
			break
		}
		if start.After(expired.Add(time.Second)) {
			t.Fatal("the entry is still read 1s after its ttl ended")
		}
	}
}

func testNearOnChange(t *testing.T, n cache.NearCacher, _, b cache.Store) {
	const rule = "OnChange's function is told of another client's write of a key the near cache holds"
	var mu sync.Mutex
	told := map[string]bool{}
	n.OnChange(func(key string) {
		mu.Lock()
		told[key] = true
		mu.Unlock()
	})
	mustSet(t, b, "k", []byte("1"), 0)
	getNear(t, n, "k")
	if err := b.Delete(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		ok := told["k"]
		mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not told of a Delete by another client within 5s; %s", rule)
		}
		time.Sleep(time.Millisecond)
	}
}

func testNearUsage(t *testing.T, n cache.NearCacher, a, _ cache.Store) {
	for i := range 10 {
		mustSet(t, a, fmt.Sprint("k", i), []byte("value"), 0)
	}
	// The count may be an estimate (otter's is, while its buffers drain):
	// most of the 10, and their bytes at least. A near cache may also drop
	// everything when it may have missed a change (a connection lost on a
	// busy machine), so the keys are read again until it holds them.
	var entries int
	var bytes int64
	for deadline := time.Now().Add(5 * time.Second); ; {
		for i := range 10 {
			getNear(t, n, fmt.Sprint("k", i))
		}
		entries, bytes = n.NearUsage()
		if entries >= 5 && bytes >= int64(entries)*int64(len("k0value")) {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("NearUsage = %d entries, %d bytes after the 10 keys were read for 5s; it counts what the near cache holds", entries, bytes)
}

func testNearPeek(t *testing.T, n cache.NearCacher, _, b cache.Store) {
	const rule = "NearPeek holds the answer GetNear would give while the near cache holds one, and none once a change to the key was reported"
	mustSet(t, b, "k", []byte("1"), 0)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if v, found, held := n.NearPeek("k"); held {
			if !found || string(v) != "1" {
				t.Fatalf("NearPeek(k) = (%q, %v, true), want (\"1\", true, true); %s", v, found, rule)
			}
			break
		}
		getNear(t, n, "k")
		if time.Now().After(deadline) {
			t.Fatalf("NearPeek(k) holds nothing 5s after reads of it; %s", rule)
		}
	}
	if _, _, held := n.NearPeek("never-read"); held {
		t.Fatalf("NearPeek of a key never read holds an answer; %s", rule)
	}
	mustSet(t, b, "k", []byte("2"), 0)
	for {
		v, _, held := n.NearPeek("k")
		if !held {
			break
		}
		if string(v) != "1" {
			t.Fatalf("NearPeek(k) = %q without a read; %s", v, rule)
		}
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatalf("NearPeek(k) still holds 5s after another client's write; %s", rule)
		}
		time.Sleep(time.Millisecond)
	}
}
