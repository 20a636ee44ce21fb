package cachetest_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/cache/cachetest"
	"github.com/ushka-go/ushka/cache/memory"
)

// ExampleChaos shows a cache whose store fails: reads report the error,
// GetOrSet serves its load meanwhile, and Heal brings the store back.
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
	v, err := cache.GetOrSet(ctx, c, "answer", 0, func(context.Context) (int, error) { return 42, nil })
	fmt.Println("GetOrSet:", v, err)

	chaos.Heal()
	found, err := c.Get(ctx, "greeting", &s)
	fmt.Println("Get after Heal:", s, found, err)
	// Output:
	// Get: cache: get "greeting": cachetest: chaos: get: connection refused
	// GetOrSet: 42 <nil>
	// Get after Heal: hello true <nil>
}
