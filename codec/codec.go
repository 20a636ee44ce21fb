// Package codec turns cache values into bytes and back.
//
// A [github.com/ushka-go/ushka/cache.Cache] encodes every value with its
// Codec before it reaches the store, except []byte and string values, which
// it stores as they are. JSON is the default because what it stores stays
// readable with redis-cli. It is github.com/goccy/go-json, which writes what
// encoding/json writes and, in this module's benchmarks (bench/README.md),
// decodes a small struct about four times faster; StdJSON is encoding/json
// itself. Msgpack is smaller than JSON, not readable.
package codec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	gojson "github.com/goccy/go-json"
	"github.com/vmihailenco/msgpack/v5"
)

// Codec encodes values to bytes and decodes them back. Implementations must
// be safe for concurrent use.
type Codec interface {
	// Name is the name that selects the codec in configuration ("json").
	Name() string
	// Marshal returns the encoding of v. The caller owns the returned slice.
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into the value v points to. It must not keep
	// data after it returns.
	Unmarshal(data []byte, v any) error
}

// JSON is the default codec: JSON as encoding/json writes and reads it
// (struct tags, Marshaler interfaces, sorted map keys), done by
// github.com/goccy/go-json, so that values stored in Redis are readable JSON
// and cheap to decode. Its name in configuration is "json".
var JSON Codec = jsonCodec{}

// StdJSON is encoding/json itself, for applications that want the standard
// library's exact behaviour at its speed. Its name is "stdjson".
var StdJSON Codec = stdJSONCodec{}

// Msgpack encodes values with MessagePack (github.com/vmihailenco/msgpack/v5).
// Struct fields are named by their json tags when they have no msgpack tag,
// so one set of tags serves both codecs.
var Msgpack Codec = msgpackCodec{}

var byName = map[string]Codec{
	JSON.Name():    JSON,
	StdJSON.Name(): StdJSON,
	Msgpack.Name(): Msgpack,
}

// ByName returns the built-in codec with the given name.
func ByName(name string) (Codec, error) {
	if c, ok := byName[name]; ok {
		return c, nil
	}
	return nil, fmt.Errorf("codec: unknown codec %q (known: %s)", name, strings.Join(Names(), ", "))
}

// Names returns the names of the built-in codecs, sorted.
func Names() []string {
	return slices.Sorted(maps.Keys(byName))
}

type jsonCodec struct{}

func (jsonCodec) Name() string { return "json" }

func (jsonCodec) Marshal(v any) (b []byte, err error) {
	defer recoverTo(&err)
	return gojson.Marshal(v)
}

func (jsonCodec) Unmarshal(data []byte, v any) (err error) {
	// A cache entry is untrusted input: a decoder bug must be an error for
	// this read, not a crash of the application.
	defer recoverTo(&err)
	return gojson.Unmarshal(data, v)
}

func recoverTo(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("codec: json: %v", r)
	}
}

type stdJSONCodec struct{}

func (stdJSONCodec) Name() string                       { return "stdjson" }
func (stdJSONCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (stdJSONCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

type msgpackCodec struct{}

func (msgpackCodec) Name() string { return "msgpack" }

func (msgpackCodec) Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(&buf)
	enc.SetCustomStructTag("json")
	enc.SetOmitEmpty(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return slices.Clip(buf.Bytes()), nil
}

func (msgpackCodec) Unmarshal(data []byte, v any) error {
	if err := checkMsgpack(data); err != nil {
		return err
	}
	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	dec.Reset(bytes.NewReader(data))
	dec.SetCustomStructTag("json")
	return dec.Decode(v)
}
