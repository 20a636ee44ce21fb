package bench

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/rueidis"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/internal/redistest"
)

// Bulk and atomic calls on Redis (issue 13), each beside the plain clients
// doing the same work on the same server, in one run:
//
//   - BenchmarkGetMany: 100 stored small structs read in one call.
//     peer=ushka is cache.GetMany (one MGET, every value decoded),
//     peer=ushka-sequential 100 cache.Get calls on the same cache,
//     peer=go-redis-mget and peer=rueidis-mget one MGET of the same keys
//     ("ushka:" + key) with every value decoded by the same codec
//     (goccy/go-json) into the same struct.
//   - BenchmarkIncrement: peer=ushka is Cache.Increment with a ttl of 0
//     (one INCRBY), peer=go-redis-incrby and peer=rueidis-incrby
//     a raw INCRBY of the same key.
//
// One op is one call: 100 keys for GetMany. Goroutines as in BenchmarkRedis:
// exactly g of them share b.N calls.

const bulkKeys = 100

func BenchmarkGetMany(b *testing.B) {
	srv := redistest.Start(b)
	keys := keyNames[:bulkKeys]
	prefixed := make([]string, len(keys))
	for i, k := range keys {
		prefixed[i] = cache.DefaultKeyPrefix + k
	}
	u := newUshkaRedis(srv.Addr, "json").(ushkaStore)
	defer u.Close()
	v := sampleUser(1)
	for _, k := range keys {
		if err := u.SetUser(k, &v); err != nil {
			b.Fatal(err)
		}
	}
	gr := newGoRedisClient(srv.Addr)
	defer gr.Close()
	rc := newRueidisClient(b, srv.Addr)
	defer rc.Close()

	peers := []struct {
		name string
		call func(ctx context.Context) (int, error) // values read
	}{
		{"ushka", func(ctx context.Context) (int, error) {
			m, err := cache.GetMany[User](ctx, u.c, keys)
			return len(m), err
		}},
		{"ushka-sequential", func(ctx context.Context) (int, error) {
			n := 0
			for _, k := range keys {
				_, found, err := cache.Get[User](ctx, u.c, k)
				if err != nil {
					return n, err
				}
				if found {
					n++
				}
			}
			return n, nil
		}},
		{"go-redis-mget", func(ctx context.Context) (int, error) {
			vals, err := gr.MGet(ctx, prefixed...).Result()
			if err != nil {
				return 0, err
			}
			out := make(map[string]User, len(keys))
			for i, x := range vals {
				s, ok := x.(string)
				if !ok {
					continue // nil: missing
				}
				var dst User
				if err := goJSON.unmarshal([]byte(s), &dst); err != nil {
					return len(out), err
				}
				out[keys[i]] = dst
			}
			return len(out), nil
		}},
		{"rueidis-mget", func(ctx context.Context) (int, error) {
			arr, err := rc.Do(ctx, rc.B().Mget().Key(prefixed...).Build()).ToArray()
			if err != nil {
				return 0, err
			}
			out := make(map[string]User, len(keys))
			for i, m := range arr {
				bs, err := m.AsBytes()
				if rueidis.IsRedisNil(err) {
					continue
				}
				if err != nil {
					return len(out), err
				}
				var dst User
				if err := goJSON.unmarshal(bs, &dst); err != nil {
					return len(out), err
				}
				out[keys[i]] = dst
			}
			return len(out), nil
		}},
	}
	for _, g := range []int{1, 16} {
		for _, p := range peers {
			runtime.GC()
			b.Run(fmt.Sprintf("goroutines=%d/peer=%s", g, p.name), func(b *testing.B) {
				runCalls(b, g, func(ctx context.Context) error {
					n, err := p.call(ctx)
					if err == nil && n != bulkKeys {
						err = fmt.Errorf("%s read %d of %d keys", p.name, n, bulkKeys)
					}
					return err
				})
			})
		}
	}
}

func BenchmarkIncrement(b *testing.B) {
	srv := redistest.Start(b)
	const key = "n"
	u := newUshkaRedis(srv.Addr, "json").(ushkaStore)
	defer u.Close()
	gr := newGoRedisClient(srv.Addr)
	defer gr.Close()
	rc := newRueidisClient(b, srv.Addr)
	defer rc.Close()
	peers := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"ushka", func(ctx context.Context) error {
			_, err := u.c.Increment(ctx, key, 1, 0)
			return err
		}},
		{"go-redis-incrby", func(ctx context.Context) error {
			return gr.IncrBy(ctx, cache.DefaultKeyPrefix+key, 1).Err()
		}},
		{"rueidis-incrby", func(ctx context.Context) error {
			return rc.Do(ctx, rc.B().Incrby().Key(cache.DefaultKeyPrefix+key).Increment(1).Build()).Error()
		}},
	}
	for _, g := range []int{1, 32} {
		for _, p := range peers {
			runtime.GC()
			b.Run(fmt.Sprintf("goroutines=%d/peer=%s", g, p.name), func(b *testing.B) {
				runCalls(b, g, p.call)
			})
		}
	}
	// Every peer added to the same counter: it holds the sum of every call.
	if n, err := u.c.Increment(context.Background(), key, 0, 0); err != nil || n <= 0 {
		b.Fatalf("counter = %d, %v after the runs", n, err)
	}
}

// newRueidisClient is the plain rueidis client of the rueidis+json peer.
func newRueidisClient(b *testing.B, addr string) rueidis.Client {
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// runCalls splits b.N calls of call over exactly g goroutines, as
// runRemote does, and reports calls per second as ops/s.
func runCalls(b *testing.B, g int, call func(ctx context.Context) error) {
	ctx := context.Background()
	var next atomic.Int64
	var failed atomic.Pointer[error] // the first error
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for range g {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := call(ctx); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkTaggedGet is what tags cost a Get hit on Redis: the same small
// struct stored without tags (peer=untagged), with two tags
// (peer=tagged: one more round trip, an MGET of the tags' tokens), and with
// two tags read through the near cache (peer=tagged-near: the entry and the
// tokens from process memory, no round trip), in one run.
func BenchmarkTaggedGet(b *testing.B) {
	srv := redistest.Start(b)
	ctx := context.Background()
	v := sampleUser(1)
	for _, peer := range []string{"untagged", "tagged", "tagged-near"} {
		c, err := cache.Open(ctx, cache.Config{Enabled: true, Backend: "redis", RedisURL: cache.SecretURL("redis://" + srv.Addr),
			NearCache: peer == "tagged-near", KeyPrefix: peer + ":"}, cache.WithLogger(nil))
		if err != nil {
			b.Fatal(err)
		}
		var opts []cache.SetOption
		if peer != "untagged" {
			opts = append(opts, cache.WithTags("user:1", "users"))
		}
		if err := c.Set(ctx, "u", &v, 0, opts...); err != nil {
			b.Fatal(err)
		}
		for _, g := range []int{1, 16} {
			b.Run(fmt.Sprintf("goroutines=%d/peer=%s", g, peer), func(b *testing.B) {
				runCalls(b, g, func(ctx context.Context) error {
					var u User
					found, err := c.Get(ctx, "u", &u)
					if err == nil && !found {
						err = fmt.Errorf("miss")
					}
					return err
				})
			})
		}
		c.Close()
	}
}
