package cache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/cache/redis"
	"github.com/ushka-go/ushka/internal/redistest"
)

// TestInvalidateTagsIsNotLostInAnOutage: an InvalidateTags while Redis is
// down (killed; it keeps its data in an append-only file) fails, is
// queued, makes the tag's entries read as missing in this process at once,
// and, once Redis is back, in another process too.
func TestInvalidateTagsIsNotLostInAnOutage(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Args: []string{"--appendonly", "yes", "--appendfsync", "always"}})
	open := func() *cache.Cache {
		s, err := redis.Open(t.Context(), cache.Config{RedisURL: cache.SecretURL("redis://" + srv.Addr), Timeout: 500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		c := cache.New(s, cache.WithLogger(nil), cache.WithBreaker(cache.BreakerConfig{Retry: 50 * time.Millisecond}))
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := open(), open()
	ctx := t.Context()
	if err := a.Set(ctx, "k", "v", 0, cache.WithTags("t")); err != nil {
		t.Fatal(err)
	}
	srv.Stop() // killed
	err := a.InvalidateTags(ctx, "t")
	if err == nil {
		t.Fatal("InvalidateTags with Redis hung returned nil")
	}
	if _, found, _ := cache.Get[string](ctx, a, "k"); found {
		t.Error("the tag's entry still reads in the process whose invalidation is queued")
	}
	srv.Restart()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, found, err := cache.Get[string](ctx, b, "k")
		if err == nil && !found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("another process still reads the entry 5s after Redis came back (found %v, %v): the invalidation was lost", found, err)
		}
	}
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, cache.ErrUnavailable) {
		t.Logf("InvalidateTags failed with %v", err)
	}
}
