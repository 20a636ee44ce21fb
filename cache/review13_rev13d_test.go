package cache_test

import (
	"context"
	"errors"
	"github.com/ushka-go/ushka/internal/redistest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
)

func TestReview13WeirdTags(t *testing.T) {
	weird := []string{`a b`, `q"uote`, "nl\nx", "x=y", "\xff\xfe", strings.Repeat("z", 256), `\`, `"=" "`, "t\x00", "=", " "}
	bulkBackends(t, func(t *testing.T, c *cache.Cache) {
		ctx := t.Context()
		for i, tag := range weird {
			k := "w" + string(rune('a'+i))
			if err := c.Set(ctx, k, "v", 0, cache.WithTags("plain", tag)); err != nil {
				t.Fatalf("Set with tag %q: %v", tag, err)
			}
			v, err := cache.GetOrSet(ctx, c, k+"g", time.Minute, func(context.Context) (string, error) { return "g", nil }, cache.WithTags(tag, "plain2"))
			if err != nil || v != "g" {
				t.Fatal(v, err)
			}
			c.WaitIdle(ctx)
			for _, kk := range []string{k, k + "g"} {
				if _, found, err := cache.Get[string](ctx, c, kk); err != nil || !found {
					t.Fatalf("tag %q: Get(%s) = %v, %v", tag, kk, found, err)
				}
			}
			m, err := cache.GetMany[string](ctx, c, []string{k, k + "g"})
			if err != nil || len(m) != 2 {
				t.Fatalf("tag %q: GetMany = %v, %v", tag, m, err)
			}
			if err := c.InvalidateTags(ctx, tag); err != nil {
				t.Fatal(err)
			}
			for _, kk := range []string{k, k + "g"} {
				if v, found, err := cache.Get[string](ctx, c, kk); err != nil || found {
					t.Errorf("tag %q: Get(%s) after InvalidateTags = %q, %v, %v", tag, kk, v, found, err)
				}
			}
			m, _ = cache.GetMany[string](ctx, c, []string{k, k + "g"})
			if len(m) != 0 {
				t.Errorf("tag %q: GetMany after InvalidateTags = %v", tag, m)
			}
			// Reload through the lock path.
			v, err = cache.GetOrSet(ctx, c, k+"g", time.Minute, func(context.Context) (string, error) { return "g2", nil }, cache.WithTags(tag, "plain2"))
			if err != nil || v != "g2" {
				t.Errorf("tag %q: GetOrSet after InvalidateTags = %q, %v", tag, v, err)
			}
			mm, err := cache.GetOrSetMany(ctx, c, []string{k}, time.Minute, func(_ context.Context, keys []string) (map[string]string, error) {
				return map[string]string{k: "m2"}, nil
			}, cache.WithTags(tag))
			if err != nil || mm[k] != "m2" {
				t.Errorf("tag %q: GetOrSetMany after InvalidateTags = %v, %v", tag, mm, err)
			}
		}
	})
}

// A tagged entry lives at most TagLifetime in the store: fail-safe's
// re-store of the stale value (after a failed load) must not outlive it.
func TestReview13FailSafeStaleTaggedEntryOutlivesTagLifetime(t *testing.T) {
	srv := redistest.Start(t)
	c := openRedisCache(t, srv, cache.Config{Timeout: 2 * time.Second, KeyPrefix: "p:"})
	ctx := t.Context()
	opts := []cache.GetOrSetOption{cache.WithTags("t"), cache.StaleFor(90 * 24 * time.Hour)}
	if _, err := cache.GetOrSet(ctx, c, "k", 100*time.Millisecond, func(context.Context) (int, error) { return 1, nil }, opts...); err != nil {
		t.Fatal(err)
	}
	c.WaitIdle(ctx)
	t.Logf("PTTL after the load: %s", srv.Do("PTTL", "p:k"))
	time.Sleep(150 * time.Millisecond)
	v, err := cache.GetOrSet(ctx, c, "k", 100*time.Millisecond, func(context.Context) (int, error) { return 0, errors.New("db down") }, opts...)
	t.Logf("served %d, %v", v, err)
	c.WaitIdle(ctx)
	pttl, _ := strconv.ParseInt(srv.Do("PTTL", "p:k"), 10, 64)
	if time.Duration(pttl)*time.Millisecond > cache.TagLifetime {
		t.Fatalf("the tagged entry's ttl after fail-safe held its stale value is %v, longer than TagLifetime %v", time.Duration(pttl)*time.Millisecond, cache.TagLifetime)
	}
}
