package bench

import (
	"context"
	"time"

	"github.com/allegro/bigcache/v3"
)

// bigcache stores bytes only; Get returns a copy.
type bigcacheKV struct{ c *bigcache.BigCache }

func newBigcache() bigcacheKV {
	cfg := bigcache.DefaultConfig(time.Hour)
	cfg.Verbose = false
	cfg.HardMaxCacheSize = 256
	c, err := bigcache.New(context.Background(), cfg)
	if err != nil {
		panic(err)
	}
	return bigcacheKV{c}
}

func (g bigcacheKV) get(key string) ([]byte, bool) {
	b, err := g.c.Get(key)
	return b, err == nil
}
func (g bigcacheKV) set(key string, v []byte) { _ = g.c.Set(key, v) }
func (g bigcacheKV) close()                   { _ = g.c.Close() }

var bigcachePeers = []peer{
	{"bigcache+json", func() store { return codecStore{newBigcache(), goJSON} }},
}
