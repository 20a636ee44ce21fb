package httpcache

import (
	"net/http"
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
		fields := 0
		s.eachHeader(func(k, v string) { fields++ })
		if err != nil || s.kind != kindResponse || s.status != 203 || !s.created.Equal(created) || string(s.body) != string(body) ||
			fields != len(h.Values("Content-Type"))+len(h.Values("X-Two"))+1 || s.get("X-Two") != h.Get("X-Two") ||
			s.get("Content-Length") != "26" || !s.fresh.Equal(created.Add(time.Minute)) {
			t.Fatalf("round trip of %v = %+v, %v", h, s, err)
		}
	}
	if s, err := decode(encodeVary([]string{"Accept-Encoding", "Accept-Language"})); err != nil || len(s.vary) != 2 {
		t.Fatalf("vary marker = %+v, %v", s, err)
	}
	if _, err := decode([]byte("not an entry")); err == nil {
		t.Fatal("garbage decoded")
	}
}
