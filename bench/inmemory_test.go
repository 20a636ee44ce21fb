package bench

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// inMemoryPeers lists every in-process cache; ushka first, so that
// benchstat -col /peer shows each peer's ratio to it.
func inMemoryPeers() []peer {
	var all []peer
	for _, group := range [][]peer{ushkaPeers, otterPeers, ristrettoPeers, theinePeers, goCachePeers,
		freecachePeers, bigcachePeers, goRedisCachePeers} {
		all = append(all, group...)
	}
	return all
}

type waiter interface{ wait() }

// fill writes every key, so that reads hit, from 16 goroutines (a remote
// store fills in a fraction of the time).
func fill(b *testing.B, s store, value string) {
	u := sampleUser(1)
	var wg sync.WaitGroup
	var failed atomic.Value
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < len(keyNames); i += 16 {
				var err error
				if value == "struct" {
					err = s.SetUser(keyNames[i], &u)
				} else {
					err = s.SetBlob(keyNames[i], blob)
				}
				if err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	if rs, ok := s.(rawStore); ok { // ristretto admits asynchronously
		if w, ok := rs.users.(waiter); ok {
			w.wait()
			rs.blobs.(waiter).wait()
		}
	}
	if cs, ok := s.(codecStore); ok {
		if w, ok := cs.kv.(waiter); ok {
			w.wait()
		}
	}
}

// BenchmarkInMemory runs every in-process peer on each workload. Run it with
// -cpu 1,2 for one and two goroutines (RunParallel starts GOMAXPROCS).
func BenchmarkInMemory(b *testing.B) {
	workloads := []struct{ op, value, dist string }{
		{"get_hit", "struct", "zipf"}, {"get_hit", "struct", "uniform"}, {"get_hit", "blob4k", "zipf"},
		{"set", "struct", "zipf"}, {"set", "blob4k", "zipf"},
		{"mix90", "struct", "zipf"},
		{"getorset_hit", "struct", "zipf"},
	}
	for _, w := range workloads {
		op, value, dist := w.op, w.value, w.dist
		{
			{
				for _, p := range inMemoryPeers() {
					name := fmt.Sprintf("op=%s/value=%s/keys=%s/peer=%s", op, value, dist, p.name)
					s := p.new()
					if op == "getorset_hit" {
						if _, ok := s.(getOrSetter); !ok {
							s.Close()
							continue
						}
					}
					fill(b, s, value)
					runtime.GC() // each peer starts on a heap without the last one's garbage
					b.Run(name, func(b *testing.B) { runInMemory(b, s, op, value, dist) })
					s.Close()
				}
			}
		}
	}
}

func runInMemory(b *testing.B, s store, op, value, dist string) {
	var hits, total atomicCounter
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		keys := newKeyStream(dist)
		u := sampleUser(2)
		var dst User
		var h, n int64
		i := 0
		for pb.Next() {
			k := keys.next()
			var found bool
			var err error
			write := op == "set" || (op == "mix90" && i%10 == 0)
			i++
			switch {
			case write && value == "struct":
				err = s.SetUser(k, &u)
			case write:
				err = s.SetBlob(k, blob)
			case op == "getorset_hit":
				dst, err = s.(getOrSetter).GetOrSetUser(k, func() (User, error) { return u, nil })
				found = true
			case value == "struct":
				found, err = s.GetUser(k, &dst)
			default:
				var got []byte
				got, found, err = s.GetBlob(k)
				if found && len(got) != len(blob) {
					b.Fatalf("blob of %d bytes", len(got))
				}
			}
			if err != nil {
				b.Fatal(err)
			}
			if !write {
				n++
				if found {
					h++
				}
			}
		}
		hits.add(h)
		total.add(n)
	})
	b.StopTimer()
	reportHits(b, hits.load(), total.load())
}
