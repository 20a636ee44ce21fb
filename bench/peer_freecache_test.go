package bench

import "github.com/coocood/freecache"

// freecache stores bytes only; Get returns a copy.
type freecacheKV struct{ c *freecache.Cache }

func (f freecacheKV) get(key string) ([]byte, bool) {
	b, err := f.c.Get([]byte(key))
	return b, err == nil
}
func (f freecacheKV) set(key string, v []byte) { _ = f.c.Set([]byte(key), v, 0) }
func (f freecacheKV) close()                   {}

var freecachePeers = []peer{
	{"freecache+json", func() store { return codecStore{freecacheKV{freecache.NewCache(256 << 20)}, goJSON} }},
}
