package bench

import (
	gocache "github.com/patrickmn/go-cache"
)

type goCacheKV[V any] struct{ c *gocache.Cache }

func newGoCache[V any]() kv[V] { return goCacheKV[V]{gocache.New(gocache.NoExpiration, 0)} }

func (g goCacheKV[V]) get(key string) (V, bool) {
	v, ok := g.c.Get(key)
	if !ok {
		var zero V
		return zero, false
	}
	return v.(V), true
}
func (g goCacheKV[V]) set(key string, v V) { g.c.Set(key, v, gocache.NoExpiration) }
func (g goCacheKV[V]) close()              {}

var goCachePeers = []peer{
	{"go-cache", func() store { return rawStore{newGoCache[User](), newGoCache[[]byte]()} }},
	{"go-cache+json", func() store { return codecStore{newGoCache[[]byte](), goJSON} }},
}
