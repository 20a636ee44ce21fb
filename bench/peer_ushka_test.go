package bench

import (
	"context"
	"time"

	"github.com/bytedance/sonic"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/codec"
)

// ushkaStore is the library under test, through its front end.
type ushkaStore struct {
	c   *cache.Cache
	ctx context.Context
}

func newUshka(cfg cache.Config, opts ...cache.Option) store {
	cfg.Enabled = true
	c, err := cache.Open(context.Background(), cfg, append([]cache.Option{cache.WithLogger(nil)}, opts...)...)
	if err != nil {
		panic(err)
	}
	return ushkaStore{c, context.Background()}
}

func (u ushkaStore) SetUser(key string, v *User) error { return u.c.Set(u.ctx, key, v, 0) }
func (u ushkaStore) GetUser(key string, dst *User) (bool, error) {
	return u.c.Get(u.ctx, key, dst)
}
func (u ushkaStore) SetBlob(key string, b []byte) error { return u.c.Set(u.ctx, key, b, 0) }
func (u ushkaStore) GetBlob(key string) ([]byte, bool, error) {
	var b []byte
	found, err := u.c.Get(u.ctx, key, &b)
	return b, found, err
}
func (u ushkaStore) GetOrSetUser(key string, load func() (User, error)) (User, error) {
	return cache.GetOrSet(u.ctx, u.c, key, time.Hour, func(context.Context) (User, error) { return load() })
}
func (u ushkaStore) Close() { u.c.Close() }

// sonicCodec is bytedance/sonic, a JIT JSON library for amd64 and arm64,
// measured inside the cache against the default (goccy/go-json),
// encoding/json (ushka+stdjson) and msgpack.
type sonicCodec struct{}

func (sonicCodec) Name() string                       { return "sonic" }
func (sonicCodec) Marshal(v any) ([]byte, error)      { return sonic.Marshal(v) }
func (sonicCodec) Unmarshal(data []byte, v any) error { return sonic.Unmarshal(data, v) }

var ushkaPeers = []peer{
	{"ushka", func() store { return newUshka(cache.Config{MaxEntries: capacity}) }},
	{"ushka+msgpack", func() store { return newUshka(cache.Config{MaxEntries: capacity, Codec: "msgpack"}) }},
	{"ushka+stdjson", func() store { return newUshka(cache.Config{MaxEntries: capacity, Codec: "stdjson"}) }},
	{"ushka+sonic", func() store { return newUshka(cache.Config{MaxEntries: capacity}, cache.WithCodec(sonicCodec{})) }},
}

var _ codec.Codec = sonicCodec{}
