package cache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/internal/redistest"
)

// TestWaiterOnAKnownMissingKey: a GetOrSet waiting on the lease of another
// worker's GetOrSetMany, whose batch leaves the key out with CacheMisses,
// gets ErrNotLoaded, as it would reading the entry afterwards, not the
// marker's empty value as a string.
func TestWaiterOnAKnownMissingKey(t *testing.T) {
	srv := redistest.Start(t)
	a, b := openRedisCache(t, srv, cache.Config{Timeout: 2 * time.Second}), openRedisCache(t, srv, cache.Config{Timeout: 2 * time.Second})
	ctx := t.Context()
	release := make(chan struct{})
	started := make(chan struct{})
	batchDone := make(chan error, 1)
	go func() {
		_, err := cache.GetOrSetMany(ctx, b, []string{"k"}, time.Minute, func(context.Context, []string) (map[string]string, error) {
			close(started)
			<-release
			return map[string]string{}, nil // k left out: known missing
		}, cache.CacheMisses(time.Minute))
		batchDone <- err
	}()
	<-started // b holds k's lease
	waited := make(chan struct{})
	var v string
	var err error
	go func() {
		defer close(waited)
		v, err = cache.GetOrSet(ctx, a, "k", time.Minute, func(context.Context) (string, error) { return "loaded", nil })
	}()
	time.Sleep(100 * time.Millisecond) // a waits on the lease
	close(release)
	<-waited
	if berr := <-batchDone; berr != nil {
		t.Fatal(berr)
	}
	if !errors.Is(err, cache.ErrNotLoaded) && v != "loaded" {
		t.Errorf("a GetOrSet that waited on the lease of a batch that left the key out got %q, %v; want ErrNotLoaded (or its own load)", v, err)
	}
}

// TestGetOrSetManyHitKeepsItsOutageCopy: with fail-safe on a shared store,
// a GetOrSetMany hit keeps this process's copy for an outage, as a GetOrSet
// hit does, also once this process has invalidated keys before (the hit
// compared the key's invalidation count against 0).
func TestGetOrSetManyHitKeepsItsOutageCopy(t *testing.T) {
	srv := redistest.Start(t)
	a, b := openRedisCache(t, srv, cache.Config{Timeout: 2 * time.Second}), openRedisCache(t, srv, cache.Config{Timeout: 2 * time.Second})
	ctx := t.Context()
	if err := a.Delete(ctx, "k"); err != nil { // an invalidation counted in a
		t.Fatal(err)
	}
	if _, err := cache.GetOrSet(ctx, b, "k", time.Minute, func(context.Context) (int, error) { return 7, nil }, cache.StaleFor(time.Hour)); err != nil {
		t.Fatal(err)
	}
	b.WaitIdle(ctx)
	got, err := cache.GetOrSetMany(ctx, a, []string{"k"}, time.Minute, func(context.Context, []string) (map[string]int, error) {
		return nil, errors.New("not a hit")
	}, cache.StaleFor(time.Hour))
	if err != nil || got["k"] != 7 {
		t.Fatalf("GetOrSetMany = %v, %v; want the hit k=7", got, err)
	}
	if _, ok := a.LocalCopy("k"); !ok {
		t.Error("a GetOrSetMany hit kept no copy for an outage")
	}
}
