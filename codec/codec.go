// Package codec turns cache values into bytes and back.
//
// A [github.com/ushka-go/ushka/cache.Cache] encodes every value with its
// Codec before it reaches the store, except []byte and string values, which
// it stores as they are. JSON is the default because what it stores stays
// readable with redis-cli. It is github.com/goccy/go-json, which writes what
// encoding/json writes and, in this module's benchmarks (bench/README.md),
// decodes a small struct about four times faster; for the few values goccy
// would write otherwise, or refuses where encoding/json does not, and for the
// entries it cannot decode, encoding/json does the work, so the output and
// the errors are encoding/json's. StdJSON is encoding/json itself. Msgpack is
// smaller than JSON, not readable.
//
// No codec crashes the process: a value that contains itself is an error
// matching [ErrCycle] at Marshal, and a value or an entry nested deeper than
// [MaxDepth] an error matching [ErrTooDeep] (for JSON entries, encoding/json's
// own depth error) where Go would otherwise overflow the stack.
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

// Marshal writes what encoding/json writes. goccy/go-json does it faster, but
// for the few values it writes otherwise (see check) or refuses while
// encoding/json accepts them (an unsupported type in a nil omitempty field),
// encoding/json writes them itself.
func (jsonCodec) Marshal(v any) ([]byte, error) {
	stdOnly, err := check(jsonFlavour, v)
	if err != nil {
		return nil, err
	}
	if !stdOnly {
		if b, err := goccyMarshal(v); err == nil {
			return b, nil
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("codec: json: %w", err)
	}
	return b, nil
}

// Unmarshal decodes with goccy/go-json and, where it fails, with encoding/json,
// so that whatever encoding/json decodes, this codec decodes too; an error is
// encoding/json's.
func (jsonCodec) Unmarshal(data []byte, v any) error {
	if goccyUnmarshal(data, v) == nil {
		return nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("codec: json: %w", err)
	}
	return nil
}

func goccyMarshal(v any) (b []byte, err error) {
	defer recoverTo(&err)
	return gojson.Marshal(v)
}

func goccyUnmarshal(data []byte, v any) (err error) {
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

func (stdJSONCodec) Name() string { return "stdjson" }

func (stdJSONCodec) Marshal(v any) ([]byte, error) {
	if _, err := check(jsonFlavour, v); err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("codec: stdjson: %w", err)
	}
	return b, nil
}

func (stdJSONCodec) Unmarshal(data []byte, v any) error {
	// encoding/json checks the whole input, iteratively and to MaxDepth,
	// before it decodes.
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("codec: stdjson: %w", err)
	}
	return nil
}

type msgpackCodec struct{}

func (msgpackCodec) Name() string { return "msgpack" }

func (msgpackCodec) Marshal(v any) (_ []byte, err error) {
	// msgpack/v5 neither finds cycles nor bounds depth: it recurses until
	// the stack overflows, which kills the process.
	if _, err := check(msgpackFlavour, v); err != nil {
		return nil, err
	}
	defer recoverMsgpack(&err)
	var buf bytes.Buffer
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(&buf)
	enc.SetCustomStructTag("json")
	enc.SetOmitEmpty(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("codec: msgpack: %w", err)
	}
	// An exact-size copy: the buffer's array is larger than what it holds,
	// and the in-memory store weighs a value by its capacity, which
	// slices.Clip would hide.
	return bytes.Clone(buf.Bytes()), nil
}

func (msgpackCodec) Unmarshal(data []byte, v any) (err error) {
	if err := checkMsgpack(data); err != nil {
		return fmt.Errorf("codec: %w", err)
	}
	defer recoverMsgpack(&err)
	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	dec.Reset(bytes.NewReader(data))
	dec.SetCustomStructTag("json")
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("codec: msgpack: %w", err)
	}
	return nil
}

func recoverMsgpack(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("codec: msgpack: %v", r)
	}
}
