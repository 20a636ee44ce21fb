package cache_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/codec"
)

// benchValue is a small struct, about 100 bytes as JSON.
type benchValue struct {
	ID      int64    `json:"id"`
	Name    string   `json:"name"`
	Email   string   `json:"email"`
	Active  bool     `json:"active"`
	Roles   []string `json:"roles"`
	Balance float64  `json:"balance"`
}

var sampleValue = benchValue{ID: 42, Name: "Ada Lovelace", Email: "ada@example.com", Active: true,
	Roles: []string{"admin", "ops"}, Balance: 1234.5}

const benchKeys = 1024

func benchCache(b *testing.B, cd codec.Codec) (*cache.Cache, []string) {
	c, err := cache.Open(context.Background(), cache.Config{Enabled: true, Codec: cd.Name()}, cache.WithLogger(nil))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	keys := make([]string, benchKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("user:%d", i)
		if err := c.Set(context.Background(), keys[i], sampleValue, 0); err != nil {
			b.Fatal(err)
		}
	}
	return c, keys
}

// Run with -cpu 1,2 for 1 and 2 goroutines.
func BenchmarkCache(b *testing.B) {
	ctx := context.Background()
	for _, cd := range []codec.Codec{codec.JSON, codec.Msgpack} {
		b.Run("op=get_hit/codec="+cd.Name(), func(b *testing.B) {
			c, keys := benchCache(b, cd)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, found, err := cache.Get[benchValue](ctx, c, keys[i%benchKeys]); !found || err != nil {
						b.Fatal(found, err)
					}
					i++
				}
			})
		})
		b.Run("op=set/codec="+cd.Name(), func(b *testing.B) {
			c, keys := benchCache(b, cd)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if err := c.Set(ctx, keys[i%benchKeys], sampleValue, time.Hour); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		})
		b.Run("op=getorset_hit/codec="+cd.Name(), func(b *testing.B) {
			c, keys := benchCache(b, cd)
			load := func(context.Context) (benchValue, error) { return sampleValue, nil }
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, err := cache.GetOrSet(ctx, c, keys[i%benchKeys], time.Hour, load); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		})
	}
}
