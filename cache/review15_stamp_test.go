package cache

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ushka-go/ushka/internal/memstore"
)

// Regression tests of the hostile review of ready pages (issue 14, second
// session): ways a Stamp stayed current while GetOrSet would no longer
// return its value as a hit.

func review15Load(v string, ran *int) func(context.Context) (SharedBytes, error) {
	return func(context.Context) (SharedBytes, error) { *ran++; return SharedBytes(v), nil }
}

// review15Hit reads key twice, so that the second read returns the stored
// bytes, and vouches for them.
func review15Hit(t *testing.T, c *Cache, key string, ttl time.Duration, opts ...GetOrSetOption) Stamp {
	t.Helper()
	ctx := context.Background()
	ran := 0
	if _, err := GetOrSet(ctx, c, key, ttl, review15Load("v1", &ran), opts...); err != nil {
		t.Fatal(err)
	}
	c.WaitIdle(ctx)
	v, err := GetOrSet(ctx, c, key, ttl, review15Load("v1", &ran), opts...)
	if err != nil {
		t.Fatal(err)
	}
	s, ok := c.Vouch(key, v, opts...)
	if !ok {
		t.Fatal("the value just read is not vouched for")
	}
	return s
}

// TestReview15StampEndsWithEviction: an entry evicted for space is gone,
// as after a Delete: its stamp ends.
func TestReview15StampEndsWithEviction(t *testing.T) {
	st, err := memstore.New(memstore.Options{MaxEntries: 100})
	if err != nil {
		t.Fatal(err)
	}
	c := New(st, WithLogger(nil))
	defer c.Close()
	ctx := context.Background()
	s := review15Hit(t, c, "k", time.Hour)
	kShard, _ := st.Version("k")
	for i, written := 0, 0; written < 5000; i++ {
		key := fmt.Sprintf("filler-%d", i)
		if sh, _ := st.Version(key); sh == kShard {
			continue // a write to k's shard would end the stamp by itself
		}
		if err := st.Set(ctx, key, []byte("x"), time.Hour); err != nil {
			t.Fatal(err)
		}
		for range 3 { // read more often than k: admitted over it
			_, _, _ = st.Borrow(ctx, key)
		}
		written++
	}
	st.Len() // otter's pending evictions
	if _, found, _ := st.Get(ctx, "k"); found {
		t.Skip("k was not evicted by 5000 other keys; nothing to check")
	}
	if _, ok := s.Current(); ok {
		t.Error("the stamp of an evicted entry is current")
	}
}

// offsetClock is otter's default clock after the wall clock was stepped
// back by off since the store was made: the wall clock read at start, plus
// the monotonic time since.
type offsetClock struct{ off time.Duration }

func (o offsetClock) NowNano() int64                        { return time.Now().Add(o.off).UnixNano() }
func (o offsetClock) Tick(d time.Duration) <-chan time.Time { return time.Tick(d) }

// TestReview15StampLifeIsTheStoresClock: a stamp ends when its entry
// expires in the store, however far the store's clock is from the wall
// clock (a wall-clock step after the store was made).
func TestReview15StampLifeIsTheStoresClock(t *testing.T) {
	st, err := memstore.New(memstore.Options{Clock: offsetClock{time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	c := New(st, WithLogger(nil))
	defer c.Close()
	s := review15Hit(t, c, "k", 200*time.Millisecond)
	if s.life > 200*time.Millisecond {
		t.Fatalf("the stamp of a 200ms entry lives %v", s.life)
	}
	time.Sleep(250 * time.Millisecond)
	if _, ok := s.Current(); ok {
		t.Error("the stamp is current past its entry's expiry")
	}
}

// TestReview15StampEndsWithItsTagsToken: a tag's token that expires makes
// the entry read as missing, so it ends the stamp.
func TestReview15StampEndsWithItsTagsToken(t *testing.T) {
	st, err := memstore.New(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := New(st, WithLogger(nil))
	defer c.Close()
	ctx := context.Background()
	ran := 0
	if _, err := GetOrSet(ctx, c, "k", time.Hour, review15Load("v1", &ran), WithTags("t")); err != nil {
		t.Fatal(err)
	}
	c.WaitIdle(ctx)
	// The token as it is, but with 200ms left, as a token near the end of
	// its TagLifetime has.
	tok, found, err := st.Get(ctx, TagKeyPrefix+"t")
	if err != nil || !found {
		t.Fatalf("no token: %v", err)
	}
	if err := st.Set(ctx, TagKeyPrefix+"t", tok, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	s := review15Hit(t, c, "k", time.Hour, WithTags("t"))
	if s.life > 200*time.Millisecond {
		t.Fatalf("the stamp of an entry whose tag's token has 200ms left lives %v", s.life)
	}
	time.Sleep(250 * time.Millisecond)
	_, cur := s.Current()
	before := ran
	if _, err := GetOrSet(ctx, c, "k", time.Hour, review15Load("v2", &ran), WithTags("t")); err != nil {
		t.Fatal(err)
	}
	if cur || ran == before {
		t.Errorf("token expired: stamp current %v, GetOrSet loaded %v; want false, true", cur, ran > before)
	}
}

// TestIsRefresh: a load runs with IsRefresh false when a caller waits for
// it, true when an early refresh started it.
func TestIsRefresh(t *testing.T) {
	c := New(mustMemstore(t), WithLogger(nil))
	defer c.Close()
	ctx := context.Background()
	var seen []bool
	var mu sync.Mutex
	load := func(ctx context.Context) (string, error) {
		mu.Lock()
		seen = append(seen, IsRefresh(ctx))
		mu.Unlock()
		return "v", nil
	}
	if IsRefresh(ctx) {
		t.Error("IsRefresh of a plain context")
	}
	if _, err := GetOrSet(ctx, c, "k", 200*time.Millisecond, load, RefreshAhead(0.5)); err != nil {
		t.Fatal(err)
	}
	c.WaitIdle(ctx)
	time.Sleep(120 * time.Millisecond)
	if _, err := GetOrSet(ctx, c, "k", 200*time.Millisecond, load, RefreshAhead(0.5)); err != nil {
		t.Fatal(err)
	}
	c.WaitIdle(ctx)
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0] || !seen[1] {
		t.Errorf("IsRefresh in the loads: %v, want [false true] (a caller's load, then the early refresh)", seen)
	}
}

func mustMemstore(t *testing.T) *memstore.Store {
	t.Helper()
	st, err := memstore.New(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// silentStore is the in-memory store with write counters that never move:
// an entry can leave it unseen by a stamp's counters, as an eviction
// reported just before the entry left can.
type silentStore struct {
	*memstore.Store
	shard, all atomic.Uint64
}

func (s *silentStore) Version(string) (shard, all *atomic.Uint64) { return &s.shard, &s.all }

// TestReview15StampTouchFindsTheEntryGone: a stamp in use reads its key now
// and then; once the entry is gone, the stamp ends, within touchEvery.
func TestReview15StampTouchFindsTheEntryGone(t *testing.T) {
	st := &silentStore{Store: mustMemstore(t)}
	c := New(st, WithLogger(nil))
	defer c.Close()
	s := review15Hit(t, c, "k", time.Hour)
	if err := st.Store.Delete(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(touchEvery + time.Second)
	for {
		if _, ok := s.Current(); !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stamp is still current %v after its entry left the store", touchEvery+time.Second)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
