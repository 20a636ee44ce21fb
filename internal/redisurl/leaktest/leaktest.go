// Package leaktest generates redis_url values holding a password, well
// formed and malformed, for property tests that check that no error, log
// line or printed URL ever shows the password.
//
// # The criterion
//
// A password is one to three tokens, "Zq" followed by 6 to 10 random letters
// and digits, between separators of up to 4 arbitrary bytes (random ones, or
// the "/", "#", "?", "@", ":", "%", "&" ... of generated passwords). A URL
// parser, and the redaction, cut a password only at such delimiters, never
// inside a token, and quoting or escaping (%q, JSON, TOML, percent-encoding)
// leaves letters and digits as they are. So any piece of the password longer
// than a separator that is printed shows a token; [Case.Leak] looks for any
// 6-byte window of a token, ignoring case (a scheme or a host may be
// lowercased), which also catches a token cut by position. A 6-byte window of random letters and
// digits matches fixed message text by chance about once in 2*10^9 tries,
// and "Zq" appears in no message, so a match is a leak and not a
// coincidence. Short passwords ("a") and common words are thus covered
// without false alarms: what is checked is the password's distinctive part.
//
// One exception is sound, not a loophole: when [redisurl.Parse] accepts the
// URL and a token landed in a field that the URL's own syntax makes public
// (a host, an addr=, the user name, master_set, client_name), the URL says
// that text is not a password, and printing it is allowed.
package leaktest

import (
	"slices"
	"strings"

	"pgregory.net/rapid"

	"github.com/ushka-go/ushka/internal/redisurl"
)

// Case is a redis_url holding a password.
type Case struct {
	// Shape names the URL form the password was put in.
	Shape string
	// URL is the redis_url.
	URL string
	// Password is what was put in it.
	Password string
	// Tokens are the distinctive parts of Password.
	Tokens []string
}

// A shape puts a password in a URL. noAt marks shapes whose password is not
// followed by "@host": there a password holding "@" makes a well-formed URL
// whose host comes from the password, which no parser can tell apart.
type shape struct {
	name  string
	build func(pw string) string
	noAt  bool
}

var shapes = []shape{
	{"user:pass@", func(pw string) string { return "redis://user:" + pw + "@cache.example.com:6379/0" }, false},
	{":pass@", func(pw string) string { return "redis://:" + pw + "@cache.example.com:6379/0" }, false},
	{"pass@ (no colon)", func(pw string) string { return "redis://" + pw + "@cache.example.com:6379" }, false},
	{"rediss ipv6", func(pw string) string { return "rediss://app:" + pw + "@[::1]:6380/2?dial_timeout=2s" }, false},
	{"missing // user:pass@", func(pw string) string { return "redis:user:" + pw + "@localhost:6379" }, false},
	{"missing // pass@", func(pw string) string { return "redis:" + pw + "@localhost:6379" }, false},
	{"one slash", func(pw string) string { return "redis:/:" + pw + "@localhost:6379" }, false},
	{"extra slash", func(pw string) string { return "redis:///user:" + pw + "@localhost:6379" }, false},
	{"no scheme user:pass@", func(pw string) string { return "default:" + pw + "@localhost:6379" }, false},
	{"no scheme :pass@", func(pw string) string { return ":" + pw + "@localhost:6379" }, false},
	{"no scheme pass@", func(pw string) string { return pw + "@localhost:6379" }, false},
	{"missing @host user:pass", func(pw string) string { return "redis://default:" + pw }, true},
	{"missing @host :pass", func(pw string) string { return "rediss://:" + pw }, true},
	{"sentinel_password last", func(pw string) string {
		return "redis://s1:26379?addr=s2:26379&master_set=mymaster&sentinel_password=" + pw
	}, false},
	{"sentinel_password first", func(pw string) string {
		return "redis://s1:26379?sentinel_password=" + pw + "&master_set=mymaster"
	}, false},
	{"sentinel_password without master_set", func(pw string) string { return "redis://s1:26379?sentinel_password=" + pw }, false},
	{"addr= holding it", func(pw string) string { return "redis://h:6379?addr=" + pw }, false},
	{"addr= after the password", func(pw string) string { return "redis://:" + pw + "@h:6379?addr=:secret2" }, false},
	{"fragment after", func(pw string) string { return "redis://:" + pw + "@h:6379/0#frag" }, false},
	{"fragment holding it", func(pw string) string { return "redis://:s@h:6379/0#" + pw }, false},
	{"unix", func(pw string) string { return "unix://:" + pw + "@/tmp/redis.sock?db=1" }, false},
	{"bad port", func(pw string) string { return "redis://user:" + pw + "@h:99999/0" }, false},
	{"bad db", func(pw string) string { return "redis://user:" + pw + "@h:6379/x" }, false},
	{"unknown parameter", func(pw string) string { return "redis://user:" + pw + "@h:6379?pool_size=10" }, false},
	{"unsupported scheme", func(pw string) string { return "http://user:" + pw + "@h:6379" }, false},
	{"password in both", func(pw string) string {
		return "redis://u:" + pw + "@s1?master_set=m&sentinel_password=" + pw
	}, false},
}

// Token returns a generator of distinctive password parts: "Zq" and 6 to 10
// letters and digits.
func Token() *rapid.Generator[string] {
	return rapid.Custom(func(t *rapid.T) string {
		return "Zq" + rapid.StringMatching(`[A-Za-z0-9]{6,10}`).Draw(t, "tail")
	})
}

// specials are the bytes generated passwords hold that URLs treat specially.
const specials = "/#?@:%&=+;[] !$'()*,.~-_\"\\"

// Separator returns a generator of what goes around tokens: up to 4 random
// bytes, or up to 4 of the characters generated passwords hold.
func Separator() *rapid.Generator[string] {
	return rapid.OneOf(
		rapid.Custom(func(t *rapid.T) string { return string(rapid.SliceOfN(rapid.Byte(), 0, 4).Draw(t, "bytes")) }),
		rapid.StringOfN(rapid.RuneFrom([]rune(specials)), 0, 4, -1),
	)
}

// Gen returns a generator of cases: every shape, with passwords of one to
// three tokens between separators.
func Gen() *rapid.Generator[Case] {
	return rapid.Custom(func(t *rapid.T) Case {
		sh := rapid.SampledFrom(shapes).Draw(t, "shape")
		n := rapid.IntRange(1, 3).Draw(t, "tokens")
		seps := make([]string, n+1)
		toks := make([]string, n)
		for i := range seps {
			seps[i] = Separator().Draw(t, "sep")
		}
		for i := range toks {
			toks[i] = Token().Draw(t, "token")
		}
		return build(sh, seps, toks)
	})
}

// FromFuzz makes a case from fuzzer input: a shape number, the bytes before
// and after one fixed token.
func FromFuzz(shapeN uint, before, after string) Case {
	return build(shapes[shapeN%uint(len(shapes))], []string{before, after}, []string{"ZqFuzzTok3n"})
}

func build(sh shape, seps, toks []string) Case {
	if sh.noAt {
		for i := range seps {
			seps[i] = strings.ReplaceAll(seps[i], "@", "")
		}
	}
	var b strings.Builder
	for i, tok := range toks {
		b.WriteString(seps[i])
		b.WriteString(tok)
	}
	b.WriteString(seps[len(seps)-1])
	pw := b.String()
	return Case{Shape: sh.name, URL: sh.build(pw), Password: pw, Tokens: toks}
}

// window is the length of the token parts Leak looks for.
const window = 6

// Leak returns the part of a token of c that out shows, or "" when it shows
// none. A token part that [redisurl.Parse] put in a public field of c.URL
// (see the package documentation) is not a leak.
func (c Case) Leak(out string) string {
	out = strings.ToLower(out)
	var public []string
	if o, err := redisurl.Parse(c.URL); err == nil {
		public = append(slices.Clone(o.Addrs), o.ServerName, o.Username, o.SentinelUsername, o.MasterSet, o.ClientName)
	}
	for _, tok := range c.Tokens {
		tok = strings.ToLower(tok)
		for i := 0; i+window <= len(tok); i++ {
			w := tok[i : i+window]
			if !strings.Contains(out, w) {
				continue
			}
			if !slices.ContainsFunc(public, func(p string) bool { return strings.Contains(strings.ToLower(p), w) }) {
				return w
			}
		}
	}
	return ""
}

// AsText returns c with its URL as a text file or the environment can hold
// it: invalid UTF-8 replaced, NUL bytes removed. The tokens are untouched,
// and Leak then judges the URL as it is fed (without its NUL, a token may
// form a valid host name, which may be shown).
func (c Case) AsText() Case {
	c.URL = strings.ReplaceAll(strings.ToValidUTF8(c.URL, "\uFFFD"), "\x00", "")
	return c
}

// Shapes returns the number of URL shapes, for fuzz targets.
func Shapes() int { return len(shapes) }
