package cachetest

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
)

// The conformance of the optional capabilities a store may claim:
// [cache.Batcher], [cache.Adder] and [cache.Counter]. TestStore runs them
// for a store that implements them.

var capabilityTests = []struct {
	name string
	run  func(t *testing.T, s cache.Store)
}{
	{"Batcher/GetMany_hits_misses_and_repeats", testGetMany},
	{"Batcher/GetMany_expired", testGetManyExpired},
	{"Batcher/SetMany_round_trip_and_ttl", testSetMany},
	{"Batcher/DeleteMany", testDeleteMany},
	{"Batcher/closed", testManyClosed},
	{"Adder/only_if_absent", testAdd},
	{"Adder/expired_is_absent", testAddExpired},
	{"Adder/one_of_many_concurrent", testAddConcurrent},
	{"Counter/counts", testIncrement},
	{"Counter/ttl_set_on_create_only", testIncrementTTL},
	{"Counter/not_an_integer", testIncrementNotInteger},
	{"Counter/concurrent", testIncrementConcurrent},
}

// needs returns s as a T, or skips t when the store does not claim it.
func needs[T any](t *testing.T, s cache.Store) T {
	t.Helper()
	c, ok := s.(T)
	if !ok {
		t.Skipf("%T does not implement %T", s, (*T)(nil))
	}
	return c
}

// manyKeys returns n keys that spread over a Cluster's slots.
func manyKeys(prefix string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return keys
}

// getMany reads keys through b, checking that each index is reported
// exactly once; values are copied out of the call.
func getMany(t *testing.T, b cache.Batcher, keys []string) (vals [][]byte, found []bool, errs []error) {
	t.Helper()
	vals, found, errs = make([][]byte, len(keys)), make([]bool, len(keys)), make([]error, len(keys))
	calls := make([]int, len(keys))
	var mu sync.Mutex
	b.GetMany(t.Context(), keys, func(i int, v []byte, f bool, err error) {
		mu.Lock()
		defer mu.Unlock()
		if i < 0 || i >= len(keys) {
			t.Errorf("GetMany reported index %d of %d keys", i, len(keys))
			return
		}
		calls[i]++
		vals[i], found[i], errs[i] = bytes.Clone(v), f, err
	})
	for i, n := range calls {
		if n != 1 {
			t.Errorf("GetMany reported key %d (%q) %d times: the contract says exactly once", i, keys[i], n)
		}
	}
	return vals, found, errs
}

func testGetMany(t *testing.T, s cache.Store) {
	b := needs[cache.Batcher](t, s)
	keys := manyKeys("gm", 40)
	for i, k := range keys {
		if i%2 == 0 {
			mustSet(t, s, k, []byte("v"+k), 0)
		}
	}
	ask := append(append([]string{}, keys...), keys[0], keys[1]) // repeats, too
	vals, found, errs := getMany(t, b, ask)
	for i, k := range ask {
		want := i < len(keys) && i%2 == 0 || i == len(keys)
		switch {
		case errs[i] != nil:
			t.Errorf("GetMany %q: %v", k, errs[i])
		case found[i] != want:
			t.Errorf("GetMany %q: found %v, want %v", k, found[i], want)
		case want && string(vals[i]) != "v"+k:
			t.Errorf("GetMany %q = %q, want %q", k, vals[i], "v"+k)
		}
	}
	if _, _, errs := getMany(t, b, nil); len(errs) != 0 {
		t.Error("GetMany of no keys reported some")
	}
}

func testGetManyExpired(t *testing.T, s cache.Store) {
	b := needs[cache.Batcher](t, s)
	mustSet(t, s, "short", []byte("v"), 30*time.Millisecond)
	mustSet(t, s, "long", []byte("v"), time.Hour)
	time.Sleep(60 * time.Millisecond)
	_, found, errs := getMany(t, b, []string{"short", "long"})
	if errs[0] != nil || errs[1] != nil || found[0] || !found[1] {
		t.Errorf("GetMany after the first ttl passed: found %v, errors %v; want [false true]: %s", found, errs, ruleMiss)
	}
}

func testSetMany(t *testing.T, s cache.Store) {
	b := needs[cache.Batcher](t, s)
	keys := manyKeys("sm", 40)
	items := make([]cache.Item, len(keys))
	for i, k := range keys {
		items[i] = cache.Item{Key: k, Value: []byte("v" + k)}
	}
	if err := b.SetMany(t.Context(), items, 0); err != nil {
		t.Fatalf("SetMany = %v", err)
	}
	for _, k := range keys {
		expect(t, s, k, []byte("v"+k), "SetMany stores each item's value under its key")
	}
	short := []cache.Item{{Key: keys[0], Value: []byte("new")}, {Key: keys[1], Value: []byte("new")}}
	if err := b.SetMany(t.Context(), short, 40*time.Millisecond); err != nil {
		t.Fatalf("SetMany = %v", err)
	}
	expect(t, s, keys[0], []byte("new"), "SetMany replaces earlier values")
	time.Sleep(80 * time.Millisecond)
	expectMiss(t, s, keys[0], ruleTTL)
	expectMiss(t, s, keys[1], ruleTTL)
	expect(t, s, keys[2], []byte("v"+keys[2]), "SetMany with a ttl touches only its items")
	if err := b.SetMany(t.Context(), nil, 0); err != nil {
		t.Errorf("SetMany of nothing = %v", err)
	}
}

func testDeleteMany(t *testing.T, s cache.Store) {
	b := needs[cache.Batcher](t, s)
	keys := manyKeys("dm", 30)
	for _, k := range keys[:20] {
		mustSet(t, s, k, []byte("v"), 0)
	}
	if err := b.DeleteMany(t.Context(), keys[:25]); err != nil { // 20 there, 5 missing
		t.Fatalf("DeleteMany = %v: %s", err, ruleDelete)
	}
	for _, k := range keys[:25] {
		expectMiss(t, s, k, ruleDelete)
	}
	if err := b.DeleteMany(t.Context(), nil); err != nil {
		t.Errorf("DeleteMany of nothing = %v", err)
	}
}

func testManyClosed(t *testing.T, s cache.Store) {
	b := needs[cache.Batcher](t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, _, errs := getMany(t, b, []string{"a", "b"})
	for i, err := range errs {
		if !errors.Is(err, cache.ErrClosed) {
			t.Errorf("GetMany after Close, key %d: %v, want ErrClosed", i, err)
		}
	}
	if err := b.SetMany(t.Context(), []cache.Item{{Key: "a", Value: []byte("v")}}, 0); !errors.Is(err, cache.ErrClosed) {
		t.Errorf("SetMany after Close = %v, want ErrClosed", err)
	}
	if err := b.DeleteMany(t.Context(), []string{"a"}); !errors.Is(err, cache.ErrClosed) {
		t.Errorf("DeleteMany after Close = %v, want ErrClosed", err)
	}
}

const ruleAdd = "Add stores value under key for ttl, as Set does, unless the key is there"

func testAdd(t *testing.T, s cache.Store) {
	a := needs[cache.Adder](t, s)
	added, err := a.Add(t.Context(), "k", []byte("first"), 0)
	if err != nil || !added {
		t.Fatalf("Add of a missing key = (%v, %v), want (true, nil): %s", added, err, ruleAdd)
	}
	added, err = a.Add(t.Context(), "k", []byte("second"), 0)
	if err != nil || added {
		t.Fatalf("Add of a present key = (%v, %v), want (false, nil): %s", added, err, ruleAdd)
	}
	expect(t, s, "k", []byte("first"), ruleAdd)
	if added, err := a.Add(t.Context(), "t", []byte("v"), 40*time.Millisecond); err != nil || !added {
		t.Fatalf("Add with a ttl = (%v, %v)", added, err)
	}
	time.Sleep(80 * time.Millisecond)
	expectMiss(t, s, "t", ruleAdd+" (with its ttl)")
}

func testAddExpired(t *testing.T, s cache.Store) {
	a := needs[cache.Adder](t, s)
	mustSet(t, s, "k", []byte("old"), 30*time.Millisecond)
	time.Sleep(60 * time.Millisecond)
	if added, err := a.Add(t.Context(), "k", []byte("new"), 0); err != nil || !added {
		t.Fatalf("Add of an expired key = (%v, %v), want (true, nil): an expired key is missing", added, err)
	}
	expect(t, s, "k", []byte("new"), ruleAdd)
}

func testAddConcurrent(t *testing.T, s cache.Store) {
	a := needs[cache.Adder](t, s)
	var wg sync.WaitGroup
	var mu sync.Mutex
	winners := 0
	for i := range 16 {
		wg.Go(func() {
			added, err := a.Add(t.Context(), "race", []byte(strconv.Itoa(i)), 0)
			if err != nil {
				t.Error(err)
			}
			if added {
				mu.Lock()
				winners++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if winners != 1 {
		t.Errorf("%d of 16 concurrent Adds of one key added it, want exactly 1: Add is atomic", winners)
	}
}

const ruleIncrement = "Increment adds delta to the integer stored under key, as decimal text, and returns the sum"

func testIncrement(t *testing.T, s cache.Store) {
	c := needs[cache.Counter](t, s)
	ctx := t.Context()
	for _, step := range []struct{ delta, want int64 }{{5, 5}, {-7, -2}, {0, -2}, {1 << 40, 1<<40 - 2}} {
		n, err := c.Increment(ctx, "n", step.delta, 0)
		if err != nil || n != step.want {
			t.Fatalf("Increment by %d = (%d, %v), want %d: %s", step.delta, n, err, step.want, ruleIncrement)
		}
	}
	expect(t, s, "n", []byte(strconv.FormatInt(1<<40-2, 10)), ruleIncrement)
	mustSet(t, s, "set", []byte("41"), 0) // a value written as text counts too
	if n, err := c.Increment(ctx, "set", 1, 0); err != nil || n != 42 {
		t.Fatalf("Increment of a key Set to \"41\" = (%d, %v), want 42", n, err)
	}
}

func testIncrementTTL(t *testing.T, s cache.Store) {
	c := needs[cache.Counter](t, s)
	ctx := t.Context()
	if _, err := c.Increment(ctx, "n", 1, 150*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if n, err := c.Increment(ctx, "n", 1, time.Hour); err != nil || n != 2 {
		t.Fatalf("second Increment = (%d, %v), want 2", n, err)
	}
	if d := waitMiss(t, s, "n", 2*time.Second); d > time.Second {
		t.Errorf("the counter outlived its first ttl by far (%v): an existing key keeps its ttl", d)
	}
	if _, err := c.Increment(ctx, "forever", 1, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	expect(t, s, "forever", []byte("1"), "a ttl of 0 means no expiry")
}

func testIncrementNotInteger(t *testing.T, s cache.Store) {
	c := needs[cache.Counter](t, s)
	ctx := t.Context()
	mustSet(t, s, "text", []byte(`{"a":1}`), 0)
	if _, err := c.Increment(ctx, "text", 1, 0); !errors.Is(err, cache.ErrNotInteger) {
		t.Errorf("Increment of a JSON object = %v, want ErrNotInteger", err)
	}
	if _, err := c.Increment(ctx, "text", 1, time.Minute); !errors.Is(err, cache.ErrNotInteger) {
		t.Errorf("Increment with a ttl of a JSON object = %v, want ErrNotInteger", err)
	}
	expect(t, s, "text", []byte(`{"a":1}`), "nothing is written when Increment fails")
	mustSet(t, s, "big", []byte(strconv.FormatInt(1<<62, 10)), 0)
	for range 2 {
		_, _ = c.Increment(ctx, "big", 1<<61, 0)
	}
	if _, err := c.Increment(ctx, "big", 1<<62, 0); !errors.Is(err, cache.ErrNotInteger) {
		t.Errorf("Increment past int64 = %v, want ErrNotInteger", err)
	}
}

func testIncrementConcurrent(t *testing.T, s cache.Store) {
	c := needs[cache.Counter](t, s)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if _, err := c.Increment(t.Context(), "n", 1, 0); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	expect(t, s, "n", []byte("400"), "Increment is atomic: 8 goroutines adding 1 50 times make 400")
}
