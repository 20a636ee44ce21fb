package bench

import (
	"context"
	"errors"
	"time"

	rediscache "github.com/go-redis/cache/v9"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/ushka-go/ushka/cache"
)

// Remote peers: every key is "ushka:" + key on the same server, and values
// are the same JSON (goccy/go-json, as Ushka's default codec) unless named
// otherwise, so that only the client and the framework differ.

const remoteTTL = time.Hour

// rueidisStore is plain rueidis plus the codec: the floor Ushka's redis
// backend is built on.
type rueidisStore struct {
	c rueidis.Client
	j codecFuncs
}

func newRueidis(addr string) store {
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true})
	if err != nil {
		panic(err)
	}
	return rueidisStore{c, goJSON}
}

func (r rueidisStore) SetUser(key string, u *User) error {
	b, err := r.j.marshal(u)
	if err != nil {
		return err
	}
	return r.c.Do(ctxBG, r.c.B().Set().Key("ushka:"+key).Value(rueidis.BinaryString(b)).Px(remoteTTL).Build()).Error()
}

func (r rueidisStore) GetUser(key string, dst *User) (bool, error) {
	b, err := r.c.Do(ctxBG, r.c.B().Get().Key("ushka:"+key).Build()).AsBytes()
	if rueidis.IsRedisNil(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, r.j.unmarshal(b, dst)
}

func (r rueidisStore) SetBlob(key string, b []byte) error {
	return r.c.Do(ctxBG, r.c.B().Set().Key("ushka:"+key).Value(rueidis.BinaryString(b)).Px(remoteTTL).Build()).Error()
}

func (r rueidisStore) GetBlob(key string) ([]byte, bool, error) {
	b, err := r.c.Do(ctxBG, r.c.B().Get().Key("ushka:"+key).Build()).AsBytes()
	if rueidis.IsRedisNil(err) {
		return nil, false, nil
	}
	return b, err == nil, err
}

func (r rueidisStore) Close() { r.c.Close() }

// rueidisCSC reads through rueidis's server-assisted client-side cache: a
// local hit, kept coherent by the server's invalidations. A reference point
// for a near cache, not a like-for-like peer.
type rueidisCSC struct{ rueidisStore }

func newRueidisCSC(addr string) store {
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}})
	if err != nil {
		panic(err)
	}
	return rueidisCSC{rueidisStore{c, goJSON}}
}

func (r rueidisCSC) GetUser(key string, dst *User) (bool, error) {
	b, err := r.c.DoCache(ctxBG, r.c.B().Get().Key("ushka:"+key).Cache(), time.Minute).AsBytes()
	if rueidis.IsRedisNil(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, r.j.unmarshal(b, dst)
}

// goRedisStore is plain go-redis/v9 plus the codec.
type goRedisStore struct {
	c *goredis.Client
	j codecFuncs
}

func newGoRedisClient(addr string) *goredis.Client {
	return goredis.NewClient(&goredis.Options{Addr: addr, PoolSize: 64})
}

func newGoRedis(addr string) store { return goRedisStore{newGoRedisClient(addr), goJSON} }

func (g goRedisStore) SetUser(key string, u *User) error {
	b, err := g.j.marshal(u)
	if err != nil {
		return err
	}
	return g.c.Set(ctxBG, "ushka:"+key, b, remoteTTL).Err()
}

func (g goRedisStore) GetUser(key string, dst *User) (bool, error) {
	b, err := g.c.Get(ctxBG, "ushka:"+key).Bytes()
	if errors.Is(err, goredis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, g.j.unmarshal(b, dst)
}

func (g goRedisStore) SetBlob(key string, b []byte) error {
	return g.c.Set(ctxBG, "ushka:"+key, b, remoteTTL).Err()
}

func (g goRedisStore) GetBlob(key string) ([]byte, bool, error) {
	b, err := g.c.Get(ctxBG, "ushka:"+key).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, false, nil
	}
	return b, err == nil, err
}

func (g goRedisStore) Close() { g.c.Close() }

// newGoRedisCacheRemote is go-redis/cache over Redis, with or without its
// local tier, as its README sets it up (msgpack, its own choice).
func newGoRedisCacheRemote(addr string, local bool) store {
	opt := &rediscache.Options{Redis: newGoRedisClient(addr)}
	if local {
		opt.LocalCache = rediscache.NewTinyLFU(2*nKeys, time.Minute)
	}
	return goRedisCache{c: rediscache.New(opt), ttl: remoteTTL}
}

func newUshkaRedis(addr, codecName string) store {
	return newUshka(cache.Config{Backend: "redis", RedisURL: cache.SecretURL("redis://" + addr),
		Codec: codecName, Timeout: 5 * time.Second})
}

type remotePeer struct {
	name string
	new  func(addr string) store
}

var remotePeers = []remotePeer{
	{"ushka", func(a string) store { return newUshkaRedis(a, "json") }},
	{"ushka+msgpack", func(a string) store { return newUshkaRedis(a, "msgpack") }},
	{"ushka+cancelctx", func(a string) store { return withCancelableCtx(newUshkaRedis(a, "json")) }},
	{"rueidis+json", newRueidis},
	{"go-redis+json", newGoRedis},
	{"go-redis-cache", func(a string) store { return newGoRedisCacheRemote(a, false) }},
	{"go-redis-cache+local", func(a string) store { return newGoRedisCacheRemote(a, true) }},
	{"rueidis-csc+json", newRueidisCSC},
	{"ushka-near", func(a string) store { return newUshkaNear(a) }},
}

// newUshkaNear is Ushka on Redis with near_cache on: a hit on a key this
// process has read is served from process memory, the like-for-like peer
// of rueidis-csc+json.
func newUshkaNear(addr string) store {
	return newUshka(cache.Config{Backend: "redis", RedisURL: cache.SecretURL("redis://" + addr),
		Timeout: 5 * time.Second, NearCache: true})
}

// nearPeer reports whether p serves hits from process memory: its keys are
// read once before a read benchmark, so that it measures near hits, not
// the first read of each key.
func nearPeer(p remotePeer) bool { return p.name == "rueidis-csc+json" || p.name == "ushka-near" }

// withCancelableCtx makes the store call with a cancelable context, as an
// HTTP handler's request context is: each call then pays for its own
// timeout timer (cache/redis/timeout.go). The other peers get the same
// context kind as the default ushka peer: context.Background.
func withCancelableCtx(s store) store {
	u := s.(ushkaStore)
	ctx, cancel := context.WithCancel(context.Background())
	_ = cancel // lives as long as the benchmark process
	u.ctx = ctx
	return u
}
