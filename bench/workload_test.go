package bench

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"
)

// User is the small struct of the benchmarks: about 100 bytes as JSON.
type User struct {
	ID      int64    `json:"id" msgpack:"id"`
	Name    string   `json:"name" msgpack:"name"`
	Email   string   `json:"email" msgpack:"email"`
	Active  bool     `json:"active" msgpack:"active"`
	Roles   []string `json:"roles" msgpack:"roles"`
	Balance float64  `json:"balance" msgpack:"balance"`
}

func sampleUser(i int) User {
	return User{ID: int64(i), Name: "Ada Lovelace", Email: "ada@example.com", Active: true,
		Roles: []string{"admin", "ops"}, Balance: 1234.5}
}

// blob is the 4 KiB value.
var blob = func() []byte {
	b := make([]byte, 4096)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return b
}()

// capacity bounds every in-memory peer: twice the keys, so that nothing is
// evicted; the memory benchmark raises it.
var capacity = 2 * nKeys

const (
	nKeys   = 1 << 14 // keys in the cache
	nDraws  = 1 << 16 // precomputed key choices, cycled through
	keySeed = 42
)

var keyNames = func() []string {
	k := make([]string, nKeys)
	for i := range k {
		k[i] = fmt.Sprintf("user:%d", i)
	}
	return k
}()

// draws are the key indexes each distribution picks, from a fixed seed.
var draws = map[string][]int{
	"uniform": func() []int {
		r := rand.New(rand.NewPCG(keySeed, 1))
		d := make([]int, nDraws)
		for i := range d {
			d[i] = r.IntN(nKeys)
		}
		return d
	}(),
	"zipf": func() []int {
		z := rand.NewZipf(rand.New(rand.NewPCG(keySeed, 2)), 1.01, 1, nKeys-1)
		d := make([]int, nDraws)
		for i := range d {
			d[i] = int(z.Uint64())
		}
		return d
	}(),
}

var seq atomic.Uint64

// keyStream gives each goroutine its own walk through the draws.
type keyStream struct {
	d []int
	i int
}

func newKeyStream(dist string) *keyStream {
	return &keyStream{d: draws[dist], i: int(seq.Add(7919)) % nDraws}
}

func (k *keyStream) next() string {
	k.i++
	if k.i == len(k.d) {
		k.i = 0
	}
	return keyNames[k.d[k.i]]
}

// hitRate reports misses seen in a get-hit benchmark (probabilistic
// admission can drop entries), so that a fast miss never passes for a fast hit.
func reportHits(b *testing.B, hits, total int64) {
	if total > 0 {
		b.ReportMetric(100*float64(hits)/float64(total), "hit%")
	}
}

var sink atomic.Int64

func since(t time.Time) time.Duration { return time.Since(t) }

type atomicCounter struct{ n atomic.Int64 }

func (c *atomicCounter) add(d int64) { c.n.Add(d) }
func (c *atomicCounter) load() int64 { return c.n.Load() }
