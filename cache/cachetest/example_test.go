package cachetest_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/cache/cachetest"
	"github.com/ushka-go/ushka/cache/memory"
)

// ExampleChaos shows a cache whose store fails. Reads report the error
// until the circuit breaker opens (after three failures in a row); then
// calls fail at once with cache.ErrUnavailable, a Delete is queued, and
// GetOrSet serves its load. Once the store is healed, the breaker's probe
// finds it answering, replays the Delete, and closes.
func ExampleChaos() {
	store, _ := memory.New(memory.Options{})
	var chaos cachetest.Chaos
	c := cache.New(chaos.Wrap(store), cache.WithLogger(nil))
	defer c.Close()
	ctx := context.Background()
	_ = c.Set(ctx, "greeting", "hello", 0)

	chaos.Fail(errors.New("connection refused"))
	var s string
	_, err := c.Get(ctx, "greeting", &s)
	fmt.Println("Get:", err)
	_, _ = c.Get(ctx, "greeting", &s)
	_, _ = c.Get(ctx, "greeting", &s)
	fmt.Println("breaker:", c.Breaker().State)
	err = c.Delete(ctx, "greeting")
	fmt.Println("Delete refused:", errors.Is(err, cache.ErrUnavailable))
	v, err := cache.GetOrSet(ctx, c, "answer", 0, func(context.Context) (int, error) { return 42, nil })
	fmt.Println("GetOrSet:", v, err)

	chaos.Heal()
	for c.Breaker().State != cache.BreakerClosed {
		time.Sleep(10 * time.Millisecond) // the probe runs every 250ms
	}
	found, err := c.Get(ctx, "greeting", &s)
	fmt.Println("Get after Heal:", found, err)
	fmt.Println("replayed:", c.Stats().Replayed)
	// Output:
	// Get: cache: get "greeting": cachetest: chaos: get: connection refused
	// breaker: open
	// Delete refused: true
	// GetOrSet: 42 <nil>
	// Get after Heal: false <nil>
	// replayed: 1
}
