package bench

import theine "github.com/Yiling-J/theine-go"

type theineKV[V any] struct{ c *theine.Cache[string, V] }

func newTheine[V any]() kv[V] {
	c, err := theine.NewBuilder[string, V](int64(capacity)).Build()
	if err != nil {
		panic(err)
	}
	return theineKV[V]{c}
}

func (t theineKV[V]) get(key string) (V, bool) { return t.c.Get(key) }
func (t theineKV[V]) set(key string, v V)      { t.c.Set(key, v, 1) }
func (t theineKV[V]) close()                   { t.c.Close() }

var theinePeers = []peer{
	{"theine", func() store { return rawStore{newTheine[User](), newTheine[[]byte]()} }},
	{"theine+json", func() store { return codecStore{newTheine[[]byte](), goJSON} }},
}
