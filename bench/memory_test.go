package bench

import (
	"fmt"
	"testing"

	"github.com/ushka-go/ushka/internal/testutil"
)

// BenchmarkMemoryPerEntry fills each in-memory peer with 1M small structs
// and reports the heap it holds per entry (bytes/entry). Run it with
// -benchtime 1x: it measures space, not time.
func BenchmarkMemoryPerEntry(b *testing.B) {
	const n = 1_000_000
	saved := capacity
	capacity = 2 * n
	defer func() { capacity = saved }()
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("user:%d", i)
	}
	u := sampleUser(1)
	for _, p := range inMemoryPeers() {
		b.Run("peer="+p.name, func(b *testing.B) {
			for range b.N {
				before := testutil.HeapAlloc()
				s := p.new()
				for _, k := range keys {
					if err := s.SetUser(k, &u); err != nil {
						b.Fatal(err)
					}
				}
				if rs, ok := s.(rawStore); ok {
					if w, ok := rs.users.(waiter); ok {
						w.wait()
					}
				}
				if cs, ok := s.(codecStore); ok {
					if w, ok := cs.kv.(waiter); ok {
						w.wait()
					}
				}
				after := testutil.HeapAlloc()
				var dst User
				held := 0
				for _, k := range keys[:1000] {
					if found, _ := s.GetUser(k, &dst); found {
						held++
					}
				}
				b.ReportMetric(float64(after-before)/n, "bytes/entry")
				b.ReportMetric(float64(held)/10, "kept%")
				s.Close()
			}
		})
	}
}
