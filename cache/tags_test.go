package cache_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/cache/redis"
	"github.com/ushka-go/ushka/internal/redistest"
)

// TestTagsInvalidate: entries written with a tag (by Set and by GetOrSet)
// read as missing once the tag is invalidated, in Get, GetMany and
// GetOrSet (which loads again); entries without it stay; a write after the
// invalidation is read.
func TestTagsInvalidate(t *testing.T) {
	bulkBackends(t, func(t *testing.T, c *cache.Cache) {
		ctx := t.Context()
		if err := c.Set(ctx, "u1", "alice", time.Minute, cache.WithTags("user:1", "users")); err != nil {
			t.Fatal(err)
		}
		if err := c.Set(ctx, "u2", "bob", 0, cache.WithTags("user:2", "users")); err != nil {
			t.Fatal(err)
		}
		if err := c.Set(ctx, "plain", "x", 0); err != nil {
			t.Fatal(err)
		}
		var loads atomic.Int32
		load := func(context.Context) (string, error) { loads.Add(1); return "report", nil }
		if _, err := cache.GetOrSet(ctx, c, "r1", time.Minute, load, cache.WithTags("user:1")); err != nil {
			t.Fatal(err)
		}
		waitStored(t, c, "r1")
		if v, found, err := cache.Get[string](ctx, c, "u1"); err != nil || !found || v != "alice" {
			t.Fatalf("Get of a tagged entry = %q, %v, %v", v, found, err)
		}

		if err := c.InvalidateTags(ctx, "user:1"); err != nil {
			t.Fatal(err)
		}
		if _, found, err := cache.Get[string](ctx, c, "u1"); err != nil || found {
			t.Errorf("Get of an entry whose tag was invalidated = found %v, %v; want a miss", found, err)
		}
		got, err := cache.GetMany[string](ctx, c, []string{"u1", "u2", "r1", "plain"})
		if err != nil || len(got) != 2 || got["u2"] != "bob" || got["plain"] != "x" {
			t.Errorf("GetMany after InvalidateTags(user:1) = %v, %v; want u2 and plain only", got, err)
		}
		if _, err := cache.GetOrSet(ctx, c, "r1", time.Minute, load, cache.WithTags("user:1")); err != nil || loads.Load() != 2 {
			t.Errorf("GetOrSet after its tag was invalidated: %v, %d loads; want it loaded again", err, loads.Load())
		}

		if err := c.InvalidateTags(ctx, "users"); err != nil {
			t.Fatal(err)
		}
		if _, found, _ := cache.Get[string](ctx, c, "u2"); found {
			t.Error("u2 still read after its tag users was invalidated")
		}
		if err := c.Set(ctx, "u2", "bob2", 0, cache.WithTags("users")); err != nil {
			t.Fatal(err)
		}
		if v, found, _ := cache.Get[string](ctx, c, "u2"); !found || v != "bob2" {
			t.Errorf("a write after the invalidation reads %q, %v; want bob2", v, found)
		}
		if v, found, _ := cache.Get[string](ctx, c, "plain"); !found || v != "x" {
			t.Error("an entry without tags was touched by InvalidateTags")
		}

		if err := c.Set(ctx, cache.TagKeyPrefix+"users", "x", 0); !errors.Is(err, cache.ErrInvalidKey) {
			t.Errorf("Set of a key under TagKeyPrefix = %v, want ErrInvalidKey", err)
		}
		if err := c.InvalidateTags(ctx, ""); !errors.Is(err, cache.ErrInvalidKey) {
			t.Errorf("InvalidateTags of an empty tag = %v, want ErrInvalidKey", err)
		}
		if err := c.Set(ctx, "k", 1, 0, cache.WithTags(strings.Repeat("t", 300))); !errors.Is(err, cache.ErrInvalidKey) {
			t.Errorf("Set with a 300-byte tag = %v, want ErrInvalidKey", err)
		}
	})
}

// TestTagsInvalidateDuringLoad: an InvalidateTags while a tagged GetOrSet
// loads is final: callers who ask afterwards load again, and the value
// loaded before is never read.
func TestTagsInvalidateDuringLoad(t *testing.T) {
	eachBackend(t, func(t *testing.T, c *cache.Cache) {
		ctx := t.Context()
		var version atomic.Int32
		release := make(chan struct{})
		started := make(chan struct{})
		first := make(chan int32, 1)
		go func() {
			v, _ := cache.GetOrSet(context.Background(), c, "k", time.Minute, func(context.Context) (int32, error) {
				v := version.Load()
				close(started)
				<-release
				return v, nil
			}, cache.WithTags("t"))
			first <- v
		}()
		<-started
		version.Add(1)
		if err := c.InvalidateTags(ctx, "t"); err != nil {
			t.Fatal(err)
		}
		close(release)
		<-first
		c.WaitIdle(ctx)
		v, err := cache.GetOrSet(ctx, c, "k", time.Minute, func(context.Context) (int32, error) { return version.Load(), nil }, cache.WithTags("t"))
		if err != nil || v != 1 {
			t.Fatalf("GetOrSet after InvalidateTags = %d, %v; want 1, not the value loaded before it", v, err)
		}
		if got, found, _ := cache.Get[int32](ctx, c, "k"); found && got != 1 {
			t.Fatalf("Get after InvalidateTags = %d, want 1 or a miss", got)
		}
	})
}

// TestTagsAcrossCaches: two caches on one Redis, each with its own
// connection (one with a near cache, which holds the tag's token): an
// invalidation through one is seen at once by the other.
func TestTagsAcrossCaches(t *testing.T) {
	srv := redistest.Start(t)
	open := func(near bool) *cache.Cache {
		s, err := redis.Open(t.Context(), cache.Config{RedisURL: cache.SecretURL("redis://" + srv.Addr), Timeout: 2 * time.Second, NearCache: near})
		if err != nil {
			t.Fatal(err)
		}
		c := cache.New(s, cache.WithLogger(nil))
		t.Cleanup(func() { c.Close() })
		return c
	}
	near, plain, other := open(true), open(false), open(false)
	ctx := t.Context()
	if err := near.Set(ctx, "k", "v", 0, cache.WithTags("t")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*cache.Cache{near, near, near, plain} { // the near cache now holds the entry and the tag's token
		if _, found, err := cache.Get[string](ctx, c, "k"); err != nil || !found {
			t.Fatalf("Get = %v, %v", found, err)
		}
	}
	if err := other.InvalidateTags(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if _, found, err := cache.Get[string](ctx, plain, "k"); err != nil || found {
		t.Fatalf("another cache's Get right after InvalidateTags = found %v, %v; want a miss", found, err)
	}
	// The near cache hears of the token's change from Redis, as of any
	// write by another process: within the moment the message takes.
	start := time.Now()
	for {
		_, found, err := cache.Get[string](ctx, near, "k")
		if err != nil {
			t.Fatal(err)
		}
		if !found {
			break
		}
		if time.Since(start) > time.Second {
			t.Fatal("the near cache still reads the entry 1s after its tag was invalidated")
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("the near cache read the entry as missing %v after the invalidation returned", time.Since(start))
}
