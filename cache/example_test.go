package cache_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/cache/cachetest"
	"github.com/ushka-go/ushka/cache/memory"
)

// Report is what the seed's ReportService computes.
type Report struct {
	GeneratedAt string `json:"generated_at"`
	Data        []int  `json:"data"`
}

func ExampleOpen() {
	ctx := context.Background()
	// The [cache] section of ushka.toml, as config.Load returns it.
	c, err := cache.Open(ctx, cache.Config{Enabled: true, Backend: "in_memory"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	_ = c.Set(ctx, "greeting", "hello", time.Minute)
	var s string
	found, _ := c.Get(ctx, "greeting", &s)
	fmt.Println(found, s)
	// Output: true hello
}

func ExampleGetOrSet() {
	ctx := context.Background()
	c, _ := cache.Open(ctx, cache.Config{Enabled: true})
	defer c.Close()

	generate := func(context.Context) (Report, error) {
		fmt.Println("Generating report from SCRATCH")
		return Report{GeneratedAt: "2026-11-25T10:00:00Z", Data: []int{1, 2, 3}}, nil
	}
	for range 2 {
		r, err := cache.GetOrSet(ctx, c, "complex_report", 60*time.Second, generate)
		fmt.Println(r.Data, err)
	}
	// Output:
	// Generating report from SCRATCH
	// [1 2 3] <nil>
	// [1 2 3] <nil>
}

func ExampleGet() {
	ctx := context.Background()
	c, _ := cache.Open(ctx, cache.Config{Enabled: true})
	defer c.Close()

	_ = c.Set(ctx, "report", Report{Data: []int{1, 2, 3}}, time.Minute)
	r, found, err := cache.Get[Report](ctx, c, "report")
	fmt.Println(r.Data, found, err)
	_, found, err = cache.Get[Report](ctx, c, "missing")
	fmt.Println(found, err)
	// Output:
	// [1 2 3] true <nil>
	// false <nil>
}

func ExampleCache_Set() {
	ctx := context.Background()
	c, _ := cache.Open(ctx, cache.Config{Enabled: true})
	defer c.Close()

	err := c.Set(ctx, "user:1", map[string]string{"name": "Ada"}, 10*time.Minute)
	fmt.Println(err)
	err = c.Set(ctx, "user:1", "x", -time.Second)
	fmt.Println(err)
	// Output:
	// <nil>
	// cache: set "user:1": invalid ttl -1s
}

func ExampleOpen_disabled() {
	ctx := context.Background()
	c, _ := cache.Open(ctx, cache.Config{Enabled: false}) // the default
	defer c.Close()

	_ = c.Set(ctx, "k", "v", 0)
	var s string
	found, err := c.Get(ctx, "k", &s)
	fmt.Println(found, err)
	// Output: false <nil>
}

// ExampleCache_Breaker shows a health check reading the circuit breaker
// that a cache puts in front of a remote store (here an in-memory store
// behind cachetest.Chaos, which the cache takes for a remote one): closed
// while the store answers, open once three calls in a row failed.
func ExampleCache_Breaker() {
	store, _ := memory.New(memory.Options{})
	var chaos cachetest.Chaos
	c := cache.New(chaos.Wrap(store), cache.WithLogger(nil))
	defer c.Close()
	ctx := context.Background()
	fmt.Println(c.Breaker().State)

	chaos.Fail(errors.New("connection refused"))
	for range 3 {
		_, _, _ = cache.Get[string](ctx, c, "k")
	}
	st := c.Breaker()
	fmt.Println(st.State, "because:", st.Reason)
	// Output:
	// closed
	// open because: cachetest: chaos: get: connection refused
}

// The cache's spans go to the application's TracerProvider: a GetOrSet
// that loads is one span, with its load under it; a hit records none.
func ExampleWithTracerProvider() {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())

	c, err := cache.Open(context.Background(), cache.Config{Enabled: true}, cache.WithTracerProvider(tp))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	load := func(ctx context.Context) (string, error) {
		// ctx carries the cache.load span: a query made with it nests under it.
		return "report", nil
	}
	for range 2 { // a miss, then a hit
		if _, err := cache.GetOrSet(context.Background(), c, "report", time.Minute, load); err != nil {
			panic(err)
		}
	}
	for _, s := range rec.Ended() {
		fmt.Println(s.Name())
	}
	// Output:
	// cache.load
	// cache.GetOrSet
}

// A parsed form of a cached value, kept while the cache vouches that the
// value is still the stored one: no parse and no read of the cache per
// use, and a Delete (or any write of the key) is seen at once.
func ExampleCache_Vouch() {
	ctx := context.Background()
	c, err := cache.Open(ctx, cache.Config{Enabled: true}) // in_memory
	if err != nil {
		panic(err)
	}
	defer c.Close()
	_ = c.Set(ctx, "greeting", cache.SharedBytes("hello"), time.Minute)

	b, _, _ := cache.Get[cache.SharedBytes](ctx, c, "greeting")
	stamp, ok := c.Vouch("greeting", b)
	parsed := strings.ToUpper(string(b)) // the form worth keeping
	fmt.Println(ok, parsed)

	if _, ok := stamp.Current(); ok {
		fmt.Println("kept form still good:", parsed)
	}
	_ = c.Delete(ctx, "greeting")
	_, ok = stamp.Current()
	fmt.Println("after Delete:", ok)
	// Output:
	// true HELLO
	// kept form still good: HELLO
	// after Delete: false
}
