package codec

import "testing"

type flat struct {
	ID      int64    `json:"id"`
	Name    string   `json:"name"`
	Email   string   `json:"email"`
	Active  bool     `json:"active"`
	Roles   []string `json:"roles"`
	Balance float64  `json:"balance"`
}

// BenchmarkCheck is what the depth and cycle walk adds to a Marshal.
func BenchmarkCheck(b *testing.B) {
	values := map[string]any{
		"flat_struct": flat{ID: 42, Name: "Ada", Roles: []string{"a"}},
		"map_any_10": map[string]any{"a": 1.0, "b": "x", "c": true, "d": nil, "e": []any{1.0, "y"},
			"f": map[string]any{"g": 2.0}, "h": 3.0, "i": "z", "j": []any{}, "k": false},
	}
	for name, v := range values {
		for _, fl := range []*flavour{jsonFlavour, msgpackFlavour} {
			b.Run("value="+name+"/flavour="+fl.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := check(fl, v); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkCheckMsgpack is what the entry check adds to a msgpack Unmarshal.
func BenchmarkCheckMsgpack(b *testing.B) {
	data, err := Msgpack.Marshal(flat{ID: 42, Name: "Ada Lovelace", Email: "ada@example.com", Roles: []string{"admin", "ops"}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := checkMsgpack(data); err != nil {
			b.Fatal(err)
		}
	}
}
