package bench

import (
	"context"
	"time"

	rediscache "github.com/go-redis/cache/v9"
)

// goRedisCache is go-redis/cache, the most used Go cache framework over
// Redis; with Redis nil it is its local TinyLFU tier alone. It encodes with
// msgpack (and s2-compresses values over 64 bytes... of its own choosing).
type goRedisCache struct {
	c   *rediscache.Cache
	ttl time.Duration
}

func newGoRedisCacheLocal() store {
	return goRedisCache{c: rediscache.New(&rediscache.Options{
		LocalCache: rediscache.NewTinyLFU(capacity, time.Hour),
	}), ttl: time.Hour}
}

var ctxBG = context.Background()

func (g goRedisCache) SetUser(key string, u *User) error {
	return g.c.Set(&rediscache.Item{Ctx: ctxBG, Key: key, Value: u, TTL: g.ttl})
}

func (g goRedisCache) GetUser(key string, dst *User) (bool, error) {
	err := g.c.Get(ctxBG, key, dst)
	if err == rediscache.ErrCacheMiss {
		return false, nil
	}
	return err == nil, err
}

func (g goRedisCache) SetBlob(key string, b []byte) error {
	return g.c.Set(&rediscache.Item{Ctx: ctxBG, Key: key, Value: b, TTL: g.ttl})
}

func (g goRedisCache) GetBlob(key string) ([]byte, bool, error) {
	var b []byte
	err := g.c.Get(ctxBG, key, &b)
	if err == rediscache.ErrCacheMiss {
		return nil, false, nil
	}
	return b, err == nil, err
}

func (g goRedisCache) GetOrSetUser(key string, load func() (User, error)) (User, error) {
	var u User
	err := g.c.Once(&rediscache.Item{Ctx: ctxBG, Key: key, Value: &u, TTL: g.ttl,
		Do: func(*rediscache.Item) (any, error) { return load() }})
	return u, err
}

func (g goRedisCache) Close() {}

var goRedisCachePeers = []peer{
	{"go-redis-cache-local", newGoRedisCacheLocal},
}
