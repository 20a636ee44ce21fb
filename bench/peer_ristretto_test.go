package bench

import "github.com/dgraph-io/ristretto/v2"

type ristrettoKV[V any] struct{ c *ristretto.Cache[string, V] }

func newRistretto[V any]() kv[V] {
	c, err := ristretto.NewCache(&ristretto.Config[string, V]{
		NumCounters: 10 * int64(capacity), MaxCost: int64(capacity), BufferItems: 64,
		IgnoreInternalCost: true, // cost 1 per entry, as MaxCost counts
	})
	if err != nil {
		panic(err)
	}
	return ristrettoKV[V]{c}
}

func (r ristrettoKV[V]) get(key string) (V, bool) { return r.c.Get(key) }
func (r ristrettoKV[V]) set(key string, v V)      { r.c.Set(key, v, 1) }
func (r ristrettoKV[V]) close()                   { r.c.Close() }
func (r ristrettoKV[V]) wait()                    { r.c.Wait() }

var ristrettoPeers = []peer{
	{"ristretto", func() store { return rawStore{newRistretto[User](), newRistretto[[]byte]()} }},
	{"ristretto+json", func() store { return codecStore{newRistretto[[]byte](), goJSON} }},
}
