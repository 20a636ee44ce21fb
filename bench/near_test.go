package bench

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/internal/redistest"
	"github.com/ushka-go/ushka/internal/testutil"
)

// warm reads every key once, from 16 goroutines, so that a near cache
// holds them all.
func warm(b *testing.B, s store) {
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			var u User
			for i := w; i < len(keyNames); i += 16 {
				if found, err := s.GetUser(keyNames[i], &u); err != nil || !found {
					b.Errorf("warm %s: found %v, %v", keyNames[i], found, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkNearInvalidation measures how soon a write in one process
// reaches another process's near cache: a writer (one Cache, its own
// connections) sets a key to a new value, and a reader (another Cache with
// near_cache on, which holds the key) reads it in a loop until it gets the
// new value. The delay is from the moment the writer's Set returned to the
// end of the reader's first read that returned the new value: the
// invalidation's way through Redis, plus the reader's one read from Redis
// after it. Reported as p50, p99 and max in microseconds, over b.N writes.
func BenchmarkNearInvalidation(b *testing.B) {
	srv := redistest.Start(b)
	url := cache.SecretURL("redis://" + srv.Addr)
	writer := newUshka(cache.Config{Backend: "redis", RedisURL: url, Timeout: 5 * time.Second}).(ushkaStore)
	defer writer.Close()
	reader := newUshka(cache.Config{Backend: "redis", RedisURL: url, Timeout: 5 * time.Second, NearCache: true}).(ushkaStore)
	defer reader.Close()
	ctx := context.Background()
	const keys = 64
	for k := range keys {
		if err := writer.c.Set(ctx, "k"+strconv.Itoa(k), "0", 0); err != nil {
			b.Fatal(err)
		}
	}
	delays := make([]time.Duration, 0, b.N)
	var v string
	b.ResetTimer()
	for i := range b.N {
		key := "k" + strconv.Itoa(i%keys)
		want := strconv.Itoa(i + 1)
		// The reader holds the key's current value in its near cache.
		for range 2 {
			if _, err := reader.c.Get(ctx, key, &v); err != nil {
				b.Fatal(err)
			}
		}
		if err := writer.c.Set(ctx, key, want, 0); err != nil {
			b.Fatal(err)
		}
		written := time.Now()
		for {
			if _, err := reader.c.Get(ctx, key, &v); err != nil {
				b.Fatal(err)
			}
			if v == want {
				break
			}
			if time.Since(written) > 5*time.Second {
				b.Fatalf("the reader still read %q 5s after %q was written", v, want)
			}
		}
		delays = append(delays, time.Since(written))
	}
	b.StopTimer()
	slices.Sort(delays)
	at := func(q float64) float64 {
		return float64(delays[min(len(delays)-1, int(q*float64(len(delays))))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
	b.ReportMetric(float64(delays[len(delays)-1].Nanoseconds())/1e3, "max-µs")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkNearMemoryPerEntry reads 200,000 small structs (User, 111 bytes
// of JSON) into a near cache and reports the heap it holds per entry, and
// what the near cache accounts for them (near_cache_max_bytes counts that).
// Run it with -benchtime 1x: it measures space, not time.
func BenchmarkNearMemoryPerEntry(b *testing.B) {
	const n = 200_000
	srv := redistest.Start(b)
	url := cache.SecretURL("redis://" + srv.Addr)
	writer := newUshka(cache.Config{Backend: "redis", RedisURL: url, Timeout: 5 * time.Second}).(ushkaStore)
	defer writer.Close()
	u := sampleUser(1)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("user:%d", i)
	}
	each := func(s ushkaStore, f func(s ushkaStore, k string) error) {
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Go(func() {
				for i := w; i < n; i += 16 {
					if err := f(s, keys[i]); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	each(writer, func(s ushkaStore, k string) error { return s.c.Set(context.Background(), k, &u, 0) })
	for range b.N {
		reader := newUshka(cache.Config{Backend: "redis", RedisURL: url, Timeout: 5 * time.Second,
			NearCache: true, NearCacheMaxBytes: 1 << 30}).(ushkaStore)
		var dst User
		reader.c.Get(context.Background(), "warm", &dst) // connect
		before := testutil.HeapAlloc()
		each(reader, func(s ushkaStore, k string) error {
			_, err := s.c.Get(context.Background(), k, &dst)
			return err
		})
		after := testutil.HeapAlloc()
		st := reader.c.Stats()
		if st.NearEntries < n {
			b.Fatalf("near cache holds %d entries, want %d", st.NearEntries, n)
		}
		b.ReportMetric(float64(after-before)/n, "bytes/entry")
		b.ReportMetric(float64(st.NearBytes)/float64(st.NearEntries), "counted-bytes/entry")
		reader.Close()
	}
}
