package bench

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	_ "github.com/ushka-go/ushka/cache/redis" // registers the redis backend
	"github.com/ushka-go/ushka/internal/redistest"
)

// BenchmarkRedis runs the remote peers against one redis-server it starts
// on a free loopback port, with exactly 1, 16, 32 and 64 goroutines.
func BenchmarkRedis(b *testing.B) {
	srv := redistest.Start(b)
	for _, op := range []string{"get_hit", "set", "mix90", "getorset_hit"} {
		for _, g := range []int{1, 16, 32, 64} {
			for _, p := range remotePeers {
				s := p.new(srv.Addr)
				_, isOrSetter := s.(getOrSetter)
				if op == "getorset_hit" && !isOrSetter {
					s.Close()
					continue
				}
				if op != "get_hit" && p.name == "rueidis-csc+json" {
					s.Close()
					continue
				}
				fill(b, s, "struct") // each peer its own values: the codecs differ
				if nearPeer(p) {
					warm(b, s)
				}
				runtime.GC()
				b.Run(fmt.Sprintf("op=%s/goroutines=%d/peer=%s", op, g, p.name), func(b *testing.B) {
					runRemote(b, s, op, g)
				})
				s.Close()
			}
		}
	}
}

// runRemote splits b.N calls over exactly g goroutines (RunParallel can
// only multiply GOMAXPROCS).
func runRemote(b *testing.B, s store, op string, g int) {
	var next, hits, total atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ReportAllocs()
	b.ResetTimer()
	for range g {
		wg.Go(func() {
			keys := newKeyStream("zipf")
			u := sampleUser(2)
			var dst User
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				k := keys.next()
				var found bool
				var err error
				switch {
				case op == "set" || (op == "mix90" && i%10 == 0):
					err = s.SetUser(k, &u)
				case op == "getorset_hit":
					dst, err = s.(getOrSetter).GetOrSetUser(k, func() (User, error) { return u, nil })
					found = true
					total.Add(1)
				default:
					found, err = s.GetUser(k, &dst)
					total.Add(1)
				}
				if found {
					hits.Add(1)
				}
				if err != nil {
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
	reportHits(b, hits.Load(), total.Load())
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}
