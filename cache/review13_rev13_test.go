package cache_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/internal/redistest"
)

// Two caches on one Redis stand for two processes. Process A runs a tagged
// load; process B invalidates the tag and returns; a caller in A that asks
// only afterwards must not receive the value whose load began before.
func TestReview13TagInvalidationAcrossProcessesJoinsOldLoad(t *testing.T) {
	srv := redistest.Start(t)
	a := openRedisCache(t, srv, cache.Config{Timeout: 2 * time.Second})
	b := openRedisCache(t, srv, cache.Config{Timeout: 2 * time.Second})
	ctx := t.Context()
	started, release := make(chan struct{}), make(chan struct{})
	go func() {
		_, _ = cache.GetOrSet(context.Background(), a, "k", time.Minute, func(context.Context) (string, error) {
			close(started)
			<-release
			return "old", nil
		}, cache.WithTags("t"))
	}()
	<-started
	if err := b.InvalidateTags(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	// Asked after InvalidateTags returned (well past any lease renewal).
	time.Sleep(1500 * time.Millisecond)
	got := make(chan string, 1)
	go func() {
		v, _ := cache.GetOrSet(ctx, a, "k", time.Minute, func(context.Context) (string, error) { return "new", nil }, cache.WithTags("t"))
		got <- v
	}()
	time.Sleep(100 * time.Millisecond)
	close(release)
	if v := <-got; v != "new" {
		t.Fatalf("GetOrSet asked after another process's InvalidateTags returned got %q, want \"new\" (the load began before the invalidation)", v)
	}
}

// GetOrSet refuses an empty or over-long tag; GetOrSetMany must too, or it
// writes entries no InvalidateTags can reach.
func TestReview13GetOrSetManyInvalidTag(t *testing.T) {
	c := newCache(t)
	ctx := t.Context()
	_, err := cache.GetOrSet(ctx, c, "a", time.Minute, func(context.Context) (int, error) { return 1, nil }, cache.WithTags(""))
	if !errors.Is(err, cache.ErrInvalidKey) {
		t.Fatalf("GetOrSet WithTags(\"\") = %v, want ErrInvalidKey", err)
	}
	long := string(make([]byte, 300))
	for _, tag := range []string{"", long} {
		_, err := cache.GetOrSetMany(ctx, c, []string{"b"}, time.Minute, func(_ context.Context, keys []string) (map[string]int, error) {
			return map[string]int{"b": 1}, nil
		}, cache.WithTags(tag))
		if !errors.Is(err, cache.ErrInvalidKey) {
			t.Errorf("GetOrSetMany WithTags(tag of %d bytes) = %v, want ErrInvalidKey", len(tag), err)
		}
		if err := c.InvalidateTags(ctx, tag); err == nil {
			t.Errorf("InvalidateTags of it succeeded")
		}
	}
}

// On Redis with an eviction policy that may pick any key (allkeys-random
// here; allkeys-lru/lfu approximate by sampling), a tag's token can be
// evicted while an entry written before the tag's first invalidation stays:
// that entry recorded no token, so it reads as valid again.
func TestReview13RedisEvictedTagTokenResurrectsEntries(t *testing.T) {
	for _, policy := range []string{"allkeys-random", "allkeys-lfu"} {
		t.Run(policy, func(t *testing.T) { testEvictedTagToken(t, policy) })
	}
}

func testEvictedTagToken(t *testing.T, policy string) {
	srv := redistest.Start(t)
	c := openRedisCache(t, srv, cache.Config{Timeout: 2 * time.Second})
	ctx := t.Context()
	const n = 400
	tags := make([]string, n)
	for i := range n {
		tags[i] = fmt.Sprintf("t%d", i)
		if err := c.Set(ctx, fmt.Sprintf("k%d", i), "old", 0, cache.WithTags(tags[i])); err != nil {
			t.Fatal(err)
		}
		for range 10 { // a popular entry
			_, _, _ = cache.Get[string](ctx, c, fmt.Sprintf("k%d", i))
		}
	}
	if err := c.InvalidateTags(ctx, tags...); err != nil {
		t.Fatal(err)
	}
	srv.Do("CONFIG", "SET", "maxmemory-policy", policy)
	srv.Do("CONFIG", "SET", "maxmemory", "3mb")
	big := string(make([]byte, 4096))
	for i := range 600 { // memory pressure: evicts about half of everything
		_ = c.Set(ctx, fmt.Sprintf("filler%d", i), big, 0)
	}
	back := 0
	for i := range n {
		if _, found, _ := cache.Get[string](ctx, c, fmt.Sprintf("k%d", i)); found {
			back++
		}
	}
	if back > 0 {
		t.Fatalf("%d of %d entries whose tag was invalidated read as found again after Redis evicted keys", back, n)
	}
}
