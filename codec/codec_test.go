package codec_test

import (
	"reflect"
	"testing"

	"github.com/ushka-go/ushka/codec"
)

type sample struct {
	Name  string            `json:"name"`
	Count int               `json:"count"`
	Tags  []string          `json:"tags"`
	Attrs map[string]string `json:"attrs"`
	Blob  []byte            `json:"blob"`
	Ptr   *float64          `json:"ptr"`
}

func TestRoundTrip(t *testing.T) {
	f := 2.5
	in := sample{Name: "ada", Count: 3, Tags: []string{"a"}, Attrs: map[string]string{"k": "v"}, Blob: []byte{0, 1}, Ptr: &f}
	for _, cd := range []codec.Codec{codec.JSON, codec.StdJSON, codec.Msgpack} {
		b, err := cd.Marshal(in)
		if err != nil {
			t.Fatalf("%s: Marshal = %v", cd.Name(), err)
		}
		var out sample
		if err := cd.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s: Unmarshal = %v", cd.Name(), err)
		}
		if !reflect.DeepEqual(in, out) {
			t.Fatalf("%s: round trip = %+v, want %+v", cd.Name(), out, in)
		}
		// Decoding must not alias the input: the cache lends its stored bytes.
		for i := range b {
			b[i] = 0
		}
		if out.Name != "ada" || out.Blob[1] != 1 {
			t.Fatalf("%s: decoded value changed with its input bytes: %+v", cd.Name(), out)
		}
	}
}

func TestMsgpackUsesJSONTags(t *testing.T) {
	b, err := codec.Msgpack.Marshal(sample{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := codec.Msgpack.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["name"]; !ok {
		t.Fatalf("msgpack keys = %v, want the json tag names", m)
	}
}

func TestByName(t *testing.T) {
	for _, n := range codec.Names() {
		cd, err := codec.ByName(n)
		if err != nil || cd.Name() != n {
			t.Fatalf("ByName(%q) = (%v, %v)", n, cd, err)
		}
	}
	if _, err := codec.ByName("xml"); err == nil || err.Error() != `codec: unknown codec "xml" (known: json, msgpack, stdjson)` {
		t.Fatalf("ByName(xml) = %v", err)
	}
}

// FuzzDecode feeds arbitrary bytes to each codec's decoder, as a corrupted or
// foreign cache entry would: it must return an error, never panic.
func FuzzDecode(f *testing.F) {
	for _, cd := range []codec.Codec{codec.JSON, codec.StdJSON, codec.Msgpack} {
		b, _ := cd.Marshal(sample{Name: "ada", Tags: []string{"a"}, Attrs: map[string]string{"k": "v"}})
		f.Add(b)
	}
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff}) // msgpack array32 claiming 4G elements
	f.Add([]byte(`{"name":`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, cd := range []codec.Codec{codec.JSON, codec.StdJSON, codec.Msgpack} {
			var s sample
			_ = cd.Unmarshal(data, &s)
			var v any
			_ = cd.Unmarshal(data, &v)
		}
	})
}

func TestMsgpackRejectsHostileLengths(t *testing.T) {
	for _, data := range [][]byte{
		{0xdd, 0xff, 0xff, 0xff, 0xff},       // array32 of 4G elements
		{0xdf, 0xff, 0xff, 0xff, 0xff},       // map32
		{0xdb, 0xff, 0xff, 0xff, 0xff, 'a'},  // str32
		{0xc6, 0x00, 0x10, 0x00, 0x00},       // bin32 of 1 MiB, no bytes
		{0x92, 0x01},                         // fixarray of 2, one given
		{0xc1},                               // never used
		{},                                   // nothing
		{0x91, 0xdd, 0x7f, 0xff, 0xff, 0xff}, // nested
	} {
		var v any
		if err := codec.Msgpack.Unmarshal(data, &v); err == nil {
			t.Errorf("Unmarshal(% x) = nil error", data)
		}
	}
}

func TestMsgpackCheckAcceptsEveryKind(t *testing.T) {
	in := map[string]any{
		"i": int64(-1 << 40), "u": uint64(1 << 63), "f": 1.5, "f32": float32(2.5), "s": "str",
		"long": string(make([]byte, 70000)), "b": []byte{1, 2}, "nil": nil, "t": true,
		"arr": []any{int8(-3), uint16(500), int32(-70000), map[string]any{"x": "y"}},
	}
	b, err := codec.Msgpack.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := codec.Msgpack.Unmarshal(b, &out); err != nil {
		t.Fatalf("Unmarshal of a valid document = %v", err)
	}
	if len(out) != len(in) {
		t.Fatalf("decoded %d keys, want %d", len(out), len(in))
	}
}

// The default codec must write what encoding/json writes, so that values
// stay readable and any JSON reader agrees.
func TestJSONMatchesEncodingJSON(t *testing.T) {
	f := 0.1
	values := []any{
		sample{Name: "<ada & \"bob\">", Count: -3, Tags: []string{"a", "ü"}, Attrs: map[string]string{"z": "1", "a": "2"}, Blob: []byte{0, 255}, Ptr: &f},
		map[string]any{"b": 1, "a": []any{true, nil, 1.5, "x"}},
		[]int{}, "plain", 42, nil,
	}
	for _, v := range values {
		got, err := codec.JSON.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := codec.StdJSON.Marshal(v)
		if string(got) != string(want) {
			t.Errorf("JSON.Marshal(%#v) = %s, encoding/json writes %s", v, got, want)
		}
	}
}
