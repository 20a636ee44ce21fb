package bench

import "github.com/maypok86/otter/v2"

type otterKV[V any] struct{ c *otter.Cache[string, V] }

func newOtter[V any]() kv[V] {
	return otterKV[V]{otter.Must(&otter.Options[string, V]{MaximumSize: capacity})}
}

func (o otterKV[V]) get(key string) (V, bool) { return o.c.GetIfPresent(key) }
func (o otterKV[V]) set(key string, v V)      { o.c.Set(key, v) }
func (o otterKV[V]) close()                   { o.c.StopAllGoroutines() }

var otterPeers = []peer{
	{"otter", func() store { return rawStore{newOtter[User](), newOtter[[]byte]()} }},
	{"otter+json", func() store { return codecStore{newOtter[[]byte](), goJSON} }},
	{"otter+stdjson", func() store { return codecStore{newOtter[[]byte](), stdJSON} }},
	{"otter+msgpack", func() store { return codecStore{newOtter[[]byte](), msgpackFunc} }},
}
