package redisurl_test

import (
	"testing"

	"pgregory.net/rapid"

	"github.com/ushka-go/ushka/internal/redisurl"
	"github.com/ushka-go/ushka/internal/redisurl/leaktest"
)

// checkNoLeak checks that neither Parse's error nor Redact shows c's
// password (the criterion is in package leaktest).
func checkNoLeak(t interface {
	Helper()
	Fatalf(string, ...any)
}, c leaktest.Case) {
	t.Helper()
	outs := map[string]string{"Redact": redisurl.Redact(c.URL)}
	if _, err := redisurl.Parse(c.URL); err != nil {
		outs["Parse error"] = err.Error()
	}
	for what, out := range outs {
		if w := c.Leak(out); w != "" {
			t.Fatalf("shape %q, password %q: %s shows %q:\n  URL: %q\n  out: %s", c.Shape, c.Password, what, w, c.URL, out)
		}
	}
}

// TestPasswordNeverShows is the property of issue 8, item 3: a password of
// any bytes, in any of many well-formed and malformed URL shapes, never
// appears in Parse's error nor in Redact.
func TestPasswordNeverShows(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		checkNoLeak(t, leaktest.Gen().Draw(t, "case"))
	})
}

// FuzzParseNeverLeaks puts a fixed token between fuzzed bytes, in every URL
// shape, and checks the same property.
func FuzzParseNeverLeaks(f *testing.F) {
	for i := range leaktest.Shapes() {
		f.Add(uint(i), "", "")
		f.Add(uint(i), "p/w", "#x")
		f.Add(uint(i), "a@b", "?c")
		f.Add(uint(i), ":%zz", "&db=1")
	}
	f.Fuzz(func(t *testing.T, shape uint, before, after string) {
		checkNoLeak(t, leaktest.FromFuzz(shape, before, after))
	})
}
