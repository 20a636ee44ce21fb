package codec_test

import (
	"encoding/json"
	"errors"
	"maps"
	"math"
	"math/big"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ushka-go/ushka/codec"
)

// textKey is a map key and value that encodes itself as text.
type textKey struct{ A, B string }

func (k textKey) MarshalText() ([]byte, error) { return []byte(k.A + "-" + k.B), nil }

func (k *textKey) UnmarshalText(b []byte) error {
	k.A, k.B, _ = strings.Cut(string(b), "-")
	return nil
}

// ptrText encodes as text only through a pointer.
type ptrText struct{ S string }

func (p *ptrText) MarshalText() ([]byte, error) { return []byte("p:" + p.S), nil }

// selfJSON encodes itself as JSON, with a value receiver.
type selfJSON struct{ N int }

func (s selfJSON) MarshalJSON() ([]byte, error) {
	return []byte(`{ "n" : ` + strings.Repeat("1", s.N+1) + ` }`), nil
}

// ptrJSON encodes itself as JSON through a pointer only.
type ptrJSON struct{ N int }

func (p *ptrJSON) MarshalJSON() ([]byte, error) { return []byte(`["ptr"]`), nil }

// badJSON writes invalid JSON.
type badJSON struct{}

func (badJSON) MarshalJSON() ([]byte, error) { return []byte(`{nope`), nil }

// failJSON fails to encode.
type failJSON struct{}

func (failJSON) MarshalJSON() ([]byte, error) { return nil, errors.New("no") }

type Inner struct {
	A int    `json:"a"`
	B string `json:"b,omitempty"`
}

type inner2 struct {
	A int
	C int
}

type tagged struct {
	Inner
	*inner2
	X    int     `json:"x,string"`
	Y    bool    `json:",string"`
	Z    float64 `json:"z,string"`
	S    string  `json:"s,string"`
	P    *int    `json:"p,string"`
	Skip int     `json:"-"`
	//lint:ignore SA5008 a field named "-" is part of the corpus
	Dash  int               `json:"-,"`
	Omit  []int             `json:"omit,omitempty"`
	OmitM map[string]int    `json:"omitm,omitempty"`
	OmitP *int              `json:"omitp,omitempty"`
	OmitZ time.Time         `json:"omitz,omitzero"`
	Iface any               `json:"iface"`
	Named map[textKey]int   `json:"named"`
	Ptrs  map[string]*Inner `json:"ptrs"`
	priv  int
}

type omitUnsupported struct {
	F map[float64]int `json:"f,omitempty"`
	C chan int        `json:"c,omitempty"`
	A int             `json:"a"`
}

type wrapArray struct{ A [2]ptrText }

type floatMaps struct {
	F  map[float64]int `json:"f"`
	F3 map[float32]int `json:"f32"`
}

type boolMap struct {
	B map[bool]int `json:"b"`
}

type byteish []byte

type arrays struct {
	A [3]byte    `json:"a"`
	B byteish    `json:"b"`
	C []uint8    `json:"c"`
	D [0]int     `json:"d"`
	E [2][]int   `json:"e"`
	R [2]ptrText `json:"r"`
}

type withRaw struct {
	R  json.RawMessage  `json:"r"`
	RP *json.RawMessage `json:"rp"`
	N  json.Number      `json:"n"`
}

type conflict struct {
	A1 `json:""`
	A2
}

type A1 struct{ Name string }
type A2 struct{ Name string }

// marshalCorpus is a set of values for which the default codec must write
// what encoding/json writes, or fail where it fails.
func marshalCorpus() map[string]any {
	seven := 7
	raw := json.RawMessage(`{ "spaced" : [ 1, 2 ] }`)
	loc := time.FixedZone("X", -(3*3600 + 30*60))
	return map[string]any{
		"map_float64_nil_in_struct":  floatMaps{},
		"unsupported_nil_omitempty":  omitUnsupported{A: 1},
		"unsupported_set_omitempty":  omitUnsupported{F: map[float64]int{1: 1}},
		"ptr_marshaler_array":        [2]ptrText{{"a"}, {"b"}},
		"ptr_marshaler_array_in_map": map[string]wrapArray{"k": {}},
		"ptr_marshaler_array_in_any": map[string]any{"x": []any{wrapArray{}}},
		"ptr_marshaler_array_by_ptr": &wrapArray{},
		"map_float64":                map[float64]int{1.5: 1, -0.25: 2, 1e21: 3, 1e-7: 4, 100: 5},
		"map_float64_nil":            map[float64]int(nil),
		"map_float32":                floatMaps{F3: map[float32]int{0.1: 1, 3: 2}},
		"map_float_nan_key":          map[float64]int{math.NaN(): 1},
		"map_int":                    map[int]string{-3: "a", 10: "b", 2: "c"},
		"map_int8":                   map[int8]bool{-128: true, 127: false},
		"map_uint64":                 map[uint64]int{math.MaxUint64: 1, 0: 2},
		"map_uintptr":                map[uintptr]int{5: 1},
		"map_bool":                   map[bool]int{true: 1},
		"map_bool_nil_in_struct":     boolMap{},
		"map_text_key":               map[textKey]int{{"a", "b"}: 1, {"c", ""}: 2},
		"map_ptr_text_key":           map[*textKey]int{{A: "x"}: 1},
		"map_named_string":           map[netip.Addr]int{netip.MustParseAddr("10.0.0.1"): 1},
		"map_any_key":                map[any]int{"a": 1},
		"map_string_any":             map[string]any{"b": 1, "a": []any{true, nil, 1.5, "x", map[string]any{}}},
		"map_empty":                  map[string]int{},
		"map_nil":                    map[string]int(nil),
		"slice_nil":                  []int(nil),
		"slice_empty":                []int{},
		"bytes_nil":                  []byte(nil),
		"bytes_empty":                []byte{},
		"bytes":                      []byte{0, 1, 254, 255},
		"arrays":                     arrays{A: [3]byte{1, 2, 3}, B: byteish("hi"), C: []uint8{9}, R: [2]ptrText{{"a"}, {"b"}}},
		"tagged_zero":                tagged{},
		"tagged":                     tagged{Inner: Inner{A: 1, B: "b"}, inner2: &inner2{A: 2, C: 3}, X: 5, Y: true, Z: 1.5, S: `q"uote`, P: &seven, Skip: 1, Dash: 2, Omit: []int{1}, OmitM: map[string]int{}, OmitZ: time.Unix(5, 0).UTC(), Iface: Inner{A: 9}, Named: map[textKey]int{{"k", "v"}: 1}, Ptrs: map[string]*Inner{"nil": nil, "x": {A: 1}}, priv: 3},
		"conflicting_embedded":       conflict{A1{"a"}, A2{"b"}},
		"marshal_json_value":         selfJSON{N: 2},
		"marshal_json_in_slice":      []selfJSON{{1}, {2}},
		"marshal_json_ptr":           &ptrJSON{},
		"marshal_json_ptr_by_value":  ptrJSON{},
		"marshal_json_ptr_in_slice":  []ptrJSON{{}},
		"marshal_json_ptr_in_struct": struct{ P ptrJSON }{},
		"marshal_json_invalid":       badJSON{},
		"marshal_json_error":         failJSON{},
		"marshal_json_nil_ptr":       (*selfJSON)(nil),
		"marshal_text":               textKey{"a", "b"},
		"marshal_text_ptr_by_value":  ptrText{"v"},
		"marshal_text_ptr":           &ptrText{"v"},
		"pointer_nil":                (*int)(nil),
		"pointer_to_pointer":         func() **int { p := &seven; return &p }(),
		"interface_nil_pointer":      []any{(*Inner)(nil), nil},
		"time":                       time.Date(2024, 2, 29, 13, 4, 5, 123456789, loc),
		"time_zero":                  time.Time{},
		"time_year_10000":            time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		"duration":                   90 * time.Second,
		"raw_message":                withRaw{R: raw, RP: &raw, N: "12.50"},
		"raw_message_nil":            withRaw{},
		"raw_message_invalid":        withRaw{R: json.RawMessage(`{`)},
		"number_invalid":             withRaw{N: "abc"},
		"number_top":                 json.Number("-0.5e10"),
		"big_int":                    new(big.Int).Lsh(big.NewInt(1), 100),
		"big_int_value":              struct{ B big.Int }{},
		"big_float":                  big.NewFloat(1.5),
		"big_rat":                    big.NewRat(1, 3),
		"nan":                        math.NaN(),
		"inf_in_struct":              struct{ F float64 }{math.Inf(-1)},
		"float32":                    []float32{0.1, 1e20, 1e-7, 3.4e38, -0},
		"float64":                    []float64{0.1, 1e20, 1e21, 1e-6, 1e-7, 5e-324, math.MaxFloat64, math.Copysign(0, -1)},
		"ints":                       []any{int8(-1), uint8(255), int64(math.MinInt64), uint64(math.MaxUint64), uintptr(8)},
		"html":                       "<script>&amp;</script>",
		"line_separators":            "a\u2028b\u2029c",
		"control_characters":         "\x00\x01\x1f\x7f\t\n\r\"\\/",
		"invalid_utf8":               "a\xffb\xc0\xafc\xed\xa0\x80d",
		"invalid_utf8_key":           map[string]int{"k\xff": 1},
		"long_string":                strings.Repeat("abc<&>\u00e9", 200000),
		"long_key":                   map[string]int{strings.Repeat("k", 70000): 1},
		"complex":                    complex(1, 2),
		"chan":                       make(chan int),
		"func":                       func() {},
		"unsafe_in_struct":           struct{ C chan int }{},
		"anonymous_struct":           struct{ A, b int }{1, 2},
		"netip":                      netip.MustParseAddrPort("[::1]:80"),
		"error_value":                errors.New("e"),
		"string_tag_on_nested_struct": struct {
			//lint:ignore SA5008 encoding/json ignores it here; so must the codec
			In Inner `json:",string"`
		}{},
		"nil": nil,
	}
}

// TestJSONMarshalMatchesEncodingJSON: on every value of the corpus, the
// default codec writes what encoding/json writes, byte for byte, or fails
// where it fails. goccy/go-json alone refused a nil omitempty field of a type
// encoding/json cannot encode (which it skips), and called a pointer method
// on the elements of an array that is not addressable.
func TestJSONMarshalMatchesEncodingJSON(t *testing.T) {
	corpus := marshalCorpus()
	for _, name := range slices.Sorted(maps.Keys(corpus)) {
		v := corpus[name]
		t.Run(name, func(t *testing.T) {
			want, wantErr := json.Marshal(v)
			got, err := codec.JSON.Marshal(v)
			if (err != nil) != (wantErr != nil) || string(got) != string(want) {
				t.Errorf("JSON.Marshal = (%.200q, %v), encoding/json = (%.200q, %v)", got, err, want, wantErr)
			}
			if wantErr != nil && !errors.Is(err, wantErr) && err.Error() != "codec: json: "+wantErr.Error() {
				t.Errorf("JSON.Marshal error = %v, want encoding/json's: %v", err, wantErr)
			}
		})
	}
}

// decodeTargets are the types the decode corpus is read into.
var decodeTargets = map[string]func() any{
	"any":            func() any { return new(any) },
	"map_string_any": func() any { return new(map[string]any) },
	"slice_any":      func() any { return new([]any) },
	"tagged":         func() any { return new(tagged) },
	"inner":          func() any { return new(Inner) },
	"int":            func() any { return new(int) },
	"int8":           func() any { return new(int8) },
	"uint":           func() any { return new(uint) },
	"float64":        func() any { return new(float64) },
	"float32":        func() any { return new(float32) },
	"string":         func() any { return new(string) },
	"bool":           func() any { return new(bool) },
	"ints":           func() any { return new([]int) },
	"array":          func() any { return new([2]int) },
	"map_int":        func() any { return new(map[int]string) },
	"map_text_key":   func() any { return new(map[textKey]int) },
	"number":         func() any { return new(json.Number) },
	"raw":            func() any { return new(json.RawMessage) },
	"time":           func() any { return new(time.Time) },
	"big_int":        func() any { return new(*big.Int) },
	"bytes":          func() any { return new([]byte) },
	"ptr_int":        func() any { return new(*int) },
	"conflict":       func() any { return new(conflict) },
	"with_raw":       func() any { return new(withRaw) },
	"string_tag": func() any {
		return new(struct {
			X int `json:",string"`
		})
	},
	"map_ptr": func() any { return new(map[string]*Inner) },
	"netip":   func() any { return new(netip.Addr) },
}

// decodeInputs are valid and invalid JSON documents.
var decodeInputs = []string{
	`null`, `true`, `1`, `-0`, `1.5`, `1e400`, `12345678901234567890`, `"s"`, `"\ud800"`,
	`"a\u00e9\"\\"`, `"2024-01-02T03:04:05Z"`, `"AQI="`, `"aGk"`, `"10.0.0.1"`, `[]`, `[1,2,3]`,
	`[1,"a",null]`, `{}`, `{"a":1}`, `{"A":1,"a":2}`, `{"a":1,"a":3}`, `{"x":5}`, `{"X":"7"}`,
	`{"x":"5","Y":"true","z":"1.5","s":"\"q\"","p":"7"}`, `{"1":"a","-2":"b"}`, `{"a-b":1}`,
	`{"Inner":{"a":1}}`, `{"b":"x","B":"y"}`, ` {"a" : [ 1 , {"b":null} ] } `, `[1e2, 0.1, -1E-2]`,
	`{"iface":{"a":[1,2]},"named":{"k-v":3},"ptrs":{"n":null,"x":{"a":2}}}`, "\"\xff\"", `"\u0000"`,
	`{"r":{"x":[1]},"n":12.5}`, `{"n":"12"}`, `{"Name":"n"}`,
	`{"a":1}x`, `123abc`, `[1,]`, `{"a":1,}`, `01`, "\"\t\"", `{"a":`, `[`, ``, ` `,
}

// TestJSONUnmarshalMatchesEncodingJSON: whatever encoding/json decodes, the
// default codec decodes to the same value; where it fails, the error is
// encoding/json's, so that callers can match *json.SyntaxError and
// *json.UnmarshalTypeError.
func TestJSONUnmarshalMatchesEncodingJSON(t *testing.T) {
	for _, name := range slices.Sorted(maps.Keys(decodeTargets)) {
		mk := decodeTargets[name]
		for _, in := range decodeInputs {
			got, want := mk(), mk()
			err := codec.JSON.Unmarshal([]byte(in), got)
			wantErr := json.Unmarshal([]byte(in), want)
			if wantErr == nil && (err != nil || !reflect.DeepEqual(got, want)) {
				t.Errorf("JSON.Unmarshal(%q) into %s = (%#v, %v), encoding/json = %#v",
					in, name, reflect.ValueOf(got).Elem(), err, reflect.ValueOf(want).Elem())
			}
			if wantErr != nil && (err == nil || err.Error() != "codec: json: "+wantErr.Error()) {
				t.Errorf("JSON.Unmarshal(%q) into %s = %v, want encoding/json's error %v", in, name, err, wantErr)
			}
		}
	}
}

func TestJSONErrorsAreEncodingJSONs(t *testing.T) {
	var syntax *json.SyntaxError
	if err := codec.JSON.Unmarshal([]byte(`{"a":`), new(any)); !errors.As(err, &syntax) {
		t.Errorf("JSON.Unmarshal(truncated) = %T %v, want a *json.SyntaxError", err, err)
	}
	var typ *json.UnmarshalTypeError
	if err := codec.JSON.Unmarshal([]byte(`{"a":"x"}`), new(Inner)); !errors.As(err, &typ) || typ.Field != "a" {
		t.Errorf("JSON.Unmarshal(string into int) = %T %v, want a *json.UnmarshalTypeError for field a", err, err)
	}
	var unsupported *json.UnsupportedTypeError
	if _, err := codec.JSON.Marshal(make(chan int)); !errors.As(err, &unsupported) {
		t.Errorf("JSON.Marshal(chan) = %T %v, want a *json.UnsupportedTypeError", err, err)
	}
}
