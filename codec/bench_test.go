package codec_test

import (
	"testing"

	"github.com/ushka-go/ushka/codec"
)

// benchValue is a small flat struct, about 100 bytes as JSON: the typical
// cache value, whose cost the depth and cycle checks must not change much.
type benchValue struct {
	ID      int64    `json:"id"`
	Name    string   `json:"name"`
	Email   string   `json:"email"`
	Active  bool     `json:"active"`
	Roles   []string `json:"roles"`
	Balance float64  `json:"balance"`
}

var benchSample = benchValue{ID: 42, Name: "Ada Lovelace", Email: "ada@example.com", Active: true,
	Roles: []string{"admin", "ops"}, Balance: 1234.5}

func BenchmarkMarshal(b *testing.B) {
	for _, cd := range []codec.Codec{codec.JSON, codec.StdJSON, codec.Msgpack} {
		b.Run("codec="+cd.Name(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := cd.Marshal(benchSample); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	for _, cd := range []codec.Codec{codec.JSON, codec.StdJSON, codec.Msgpack} {
		b.Run("codec="+cd.Name(), func(b *testing.B) {
			data, err := cd.Marshal(benchSample)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				var v benchValue
				if err := cd.Unmarshal(data, &v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
