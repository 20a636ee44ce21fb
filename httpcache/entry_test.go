package httpcache

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestEntryRoundTrip: a response with or without headers, whose body holds
// a blank line, reads back as written.
func TestEntryRoundTrip(t *testing.T) {
	created := time.UnixMilli(1_700_000_000_123)
	for _, h := range []http.Header{{}, {"Content-Type": {"text/plain"}, "X-Two": {"a", "b"}}} {
		body := []byte("line\r\n\r\nafter a blank line")
		s, err := decode(encodeResponse(203, created, time.Minute, h, body))
		p := newPage(&s)
		get := func(k string) string {
			for _, f := range p.fields {
				if f.k == k {
					return strings.Join(p.values[f.from:f.to], ", ")
				}
			}
			return ""
		}
		if err != nil || s.kind != kindResponse || s.status != 203 || !s.created.Equal(created) || string(s.body) != string(body) ||
			len(p.values) != len(h.Values("Content-Type"))+len(h.Values("X-Two"))+1 || get("X-Two") != strings.Join(h.Values("X-Two"), ", ") ||
			get("Content-Length") != "26" || !p.length || !s.fresh.Equal(created.Add(time.Minute)) {
			t.Fatalf("round trip of %v = %+v, %v", h, s, err)
		}
	}
	if s, err := decode(encodeVary([]string{"Accept-Encoding", "Accept-Language"}, "g1")); err != nil || len(s.vary) != 2 ||
		s.vary[1] != "Accept-Language" || s.gen != "g1" {
		t.Fatalf("vary marker = %+v, %v", s, err)
	}
	// A marker of the layout before generations reads with none.
	if s, err := decode([]byte(magic + "V Accept-Encoding\n")); err != nil || len(s.vary) != 1 || s.gen != "" {
		t.Fatalf("marker without a generation = %+v, %v", s, err)
	}
	if _, err := decode([]byte("not an entry")); err == nil {
		t.Fatal("garbage decoded")
	}
}
