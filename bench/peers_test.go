package bench

import (
	"encoding/json"

	gojson "github.com/goccy/go-json"
	"github.com/vmihailenco/msgpack/v5"
)

// store is what every in-memory peer is adapted to: a small struct and a
// 4 KiB blob, written and read back.
type store interface {
	SetUser(key string, u *User) error
	GetUser(key string, dst *User) (bool, error)
	SetBlob(key string, b []byte) error
	GetBlob(key string) ([]byte, bool, error)
	Close()
}

// getOrSetter is implemented by peers with a cache-aside call of their own.
type getOrSetter interface {
	GetOrSetUser(key string, load func() (User, error)) (User, error)
}

// peer names a store and builds it, empty.
type peer struct {
	name string
	new  func() store
}

// kv is a typed key-value map: what a raw cache is.
type kv[V any] interface {
	get(key string) (V, bool)
	set(key string, v V)
	close()
}

// rawStore keeps values as Go values, no encoding: the fastest a cache can
// be, and not what a shared cache can do (nor safe: a reader can change the
// cached value through its slices).
type rawStore struct {
	users kv[User]
	blobs kv[[]byte]
}

func (s rawStore) SetUser(key string, u *User) error { s.users.set(key, *u); return nil }
func (s rawStore) GetUser(key string, dst *User) (bool, error) {
	u, ok := s.users.get(key)
	*dst = u
	return ok, nil
}
func (s rawStore) SetBlob(key string, b []byte) error { s.blobs.set(key, b); return nil }
func (s rawStore) GetBlob(key string) ([]byte, bool, error) {
	b, ok := s.blobs.get(key)
	return b, ok, nil
}
func (s rawStore) Close() { s.users.close(); s.blobs.close() }

// codecStore keeps encoded bytes, as Ushka does and as a remote cache must:
// the fair comparison. "+json" peers use goccy/go-json, Ushka's default
// JSON codec; "+stdjson" encoding/json; "+msgpack" vmihailenco/msgpack.
type codecStore struct {
	kv kv[[]byte]
	c  codecFuncs
}

func (s codecStore) SetUser(key string, u *User) error {
	b, err := s.c.marshal(u)
	if err != nil {
		return err
	}
	s.kv.set(key, b)
	return nil
}

func (s codecStore) GetUser(key string, dst *User) (bool, error) {
	b, ok := s.kv.get(key)
	if !ok {
		return false, nil
	}
	return true, s.c.unmarshal(b, dst)
}

func (s codecStore) SetBlob(key string, b []byte) error {
	s.kv.set(key, append([]byte(nil), b...))
	return nil
}

func (s codecStore) GetBlob(key string) ([]byte, bool, error) {
	b, ok := s.kv.get(key)
	if !ok {
		return nil, false, nil
	}
	return append([]byte(nil), b...), true, nil // a copy, as Ushka returns
}

func (s codecStore) Close() { s.kv.close() }

type codecFuncs struct {
	name      string
	marshal   func(any) ([]byte, error)
	unmarshal func([]byte, any) error
}

var (
	stdJSON     = codecFuncs{"stdjson", json.Marshal, json.Unmarshal}
	msgpackFunc = codecFuncs{"msgpack", msgpack.Marshal, msgpack.Unmarshal}
	goJSON      = codecFuncs{"json", gojson.Marshal, gojson.Unmarshal}
)
