package bench

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/internal/redistest"
)

// BenchmarkPolicy measures what the GetOrSet policies of issue 9 cost on a
// hit: the same cache with fail-safe and early refresh off (peer=off) and on
// (peer=on: stale_ttl = 1h, refresh_ahead = 0.8), in one run. With them on,
// every entry has a header to parse, a hit reads the clock, and on Redis a
// hit also keeps the process's copy for outages up to date (a lookup when it
// is the same). Keys are written through GetOrSet, so that the entries are
// the ones each setting writes; their ttl (1h) keeps refreshes out of it.
func BenchmarkPolicy(b *testing.B) {
	policies := []struct {
		name string
		cfg  func(cache.Config) cache.Config
	}{
		{"off", func(c cache.Config) cache.Config { return c }},
		{"on", func(c cache.Config) cache.Config {
			c.StaleTTL, c.RefreshAhead = time.Hour, 0.8
			return c
		}},
	}
	b.Run("backend=in_memory", func(b *testing.B) {
		for _, p := range policies {
			s := newUshka(p.cfg(cache.Config{MaxEntries: capacity})).(ushkaStore)
			fillGetOrSet(b, s)
			runtime.GC()
			b.Run("peer="+p.name, func(b *testing.B) { runInMemory(b, s, "getorset_hit", "struct", "zipf") })
			s.Close()
		}
	})
	b.Run("backend=redis", func(b *testing.B) {
		srv := redistest.Start(b)
		for _, g := range []int{1, 16, 64} {
			for _, p := range policies {
				s := newUshka(p.cfg(cache.Config{Backend: "redis", RedisURL: cache.SecretURL("redis://" + srv.Addr)})).(ushkaStore)
				fillGetOrSet(b, s)
				runtime.GC()
				b.Run(fmt.Sprintf("goroutines=%d/peer=%s", g, p.name), func(b *testing.B) { runRemote(b, s, "getorset_hit", g) })
				s.c.Clear(context.Background())
				s.Close()
			}
		}
	})
}

// fillGetOrSet writes every key through GetOrSet, from 16 goroutines.
func fillGetOrSet(b *testing.B, s ushkaStore) {
	u := sampleUser(1)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < len(keyNames); i += 16 {
				if _, err := s.GetOrSetUser(keyNames[i], func() (User, error) { return u, nil }); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
