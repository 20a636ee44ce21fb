package redis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/internal/redistest"
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

var sample = benchValue{ID: 42, Name: "Ada Lovelace", Email: "ada@example.com", Active: true,
	Roles: []string{"admin", "ops"}, Balance: 1234.5}

const benchKeys = 1024

// parallel runs b.N calls of fn on exactly g goroutines (RunParallel can
// only multiply GOMAXPROCS).
func parallel(b *testing.B, g int, fn func(i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ResetTimer()
	for range g {
		wg.Go(func() {
			for {
				i := int(next.Add(1))
				if i > b.N {
					return
				}
				if err := fn(i); err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRedis compares the framework (peer=ushka, *cache.Cache over the
// redis store) with plain rueidis doing the same work with the same codec
// (peer=rueidis): GET/SET of a JSON-encoded small struct, on a redis-server
// started on loopback.
func BenchmarkRedis(b *testing.B) {
	srv := redistest.Start(b)
	ctx := context.Background()
	c, err := cache.Open(ctx, cache.Config{Enabled: true, Backend: "redis",
		RedisURL: cache.SecretURL("redis://" + srv.Addr), Timeout: 5 * time.Second}, cache.WithLogger(nil))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}, DisableCache: true})
	if err != nil {
		b.Fatal(err)
	}
	defer rc.Close()
	keys := make([]string, benchKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("user:%d", i)
		if err := c.Set(ctx, keys[i], sample, 0); err != nil {
			b.Fatal(err)
		}
	}
	for _, g := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("op=get_hit/peer=ushka/goroutines=%d", g), func(b *testing.B) {
			b.ReportAllocs()
			parallel(b, g, func(i int) error {
				_, found, err := cache.Get[benchValue](ctx, c, keys[i%benchKeys])
				if err == nil && !found {
					err = fmt.Errorf("miss")
				}
				return err
			})
		})
		b.Run(fmt.Sprintf("op=get_hit/peer=rueidis/goroutines=%d", g), func(b *testing.B) {
			b.ReportAllocs()
			parallel(b, g, func(i int) error {
				raw, err := rc.Do(ctx, rc.B().Get().Key("ushka:"+keys[i%benchKeys]).Build()).AsBytes()
				if err != nil {
					return err
				}
				var v benchValue
				return json.Unmarshal(raw, &v)
			})
		})
		b.Run(fmt.Sprintf("op=set/peer=ushka/goroutines=%d", g), func(b *testing.B) {
			b.ReportAllocs()
			parallel(b, g, func(i int) error {
				return c.Set(ctx, keys[i%benchKeys], sample, time.Hour)
			})
		})
		b.Run(fmt.Sprintf("op=set/peer=rueidis/goroutines=%d", g), func(b *testing.B) {
			b.ReportAllocs()
			parallel(b, g, func(i int) error {
				raw, err := json.Marshal(sample)
				if err != nil {
					return err
				}
				return rc.Do(ctx, rc.B().Set().Key("ushka:"+keys[i%benchKeys]).Value(rueidis.BinaryString(raw)).
					PxMilliseconds(int64(time.Hour/time.Millisecond)).Build()).Error()
			})
		})
	}
}
