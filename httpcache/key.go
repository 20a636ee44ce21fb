package httpcache

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// keyPrefix starts every key the middleware writes in the cache.
const keyPrefix = "http:"

// maxKeyLen is the longest key kept as it is; a longer one is hashed (the
// cache takes keys of at most 1024 bytes).
const maxKeyLen = 900

// Key returns the cache key of the page r asks for: the method a HEAD is
// served from (GET), the scheme, the host (lower case), the path as sent,
// and the query with its parameters in canonical order (sorted by name,
// each name's values in the order sent). Each part is length-prefixed, so
// that no two different requests share a key however their parts are
// spelled. A response that varies on request headers is stored under a
// key that adds their values (see [Middleware]).
func Key(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return join(keyPrefix, "GET", scheme, lowerASCII(r.Host), r.URL.EscapedPath(), canonicalQuery(r.URL.RawQuery))
}

// lowerASCII lower-cases the ASCII letters of s and leaves every other
// byte as it is: strings.ToLower would map distinct bytes (invalid UTF-8,
// İ) to one, and so two hosts to one key.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// canonicalQuery sorts the parameters of raw by name. A query that does not
// parse is kept as it is, marked so that it cannot equal a canonical one.
func canonicalQuery(raw string) string {
	if raw == "" {
		return ""
	}
	if canonical(raw) {
		return raw // already in canonical order, with nothing to escape: the usual case, at no cost
	}
	v, err := url.ParseQuery(raw)
	if err != nil {
		return "\x00" + raw
	}
	return v.Encode()
}

// canonical reports whether raw is a query that url.Values.Encode would
// write back as it is: name=value pairs of unreserved characters only,
// their names in order.
func canonical(raw string) bool {
	prev := ""
	for raw != "" {
		pair := raw
		if i := strings.IndexByte(raw, '&'); i >= 0 {
			pair, raw = raw[:i], raw[i+1:]
			if raw == "" {
				return false // a trailing '&'
			}
		} else {
			raw = ""
		}
		name, _, ok := strings.Cut(pair, "=")
		if !ok || name < prev {
			return false
		}
		for i := 0; i < len(pair); i++ {
			switch c := pair[i]; {
			case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~':
			case c == '=' && i == len(name): // the one between name and value
			default:
				return false
			}
		}
		prev = name
	}
	return true
}

// variantKey is base plus the generation of its Vary marker and the values
// of the request headers a response varies on.
func variantKey(base, gen string, r *http.Request, names []string) string {
	parts := make([]string, 0, 2*len(names)+2)
	parts = append(parts, base, gen)
	for _, n := range names {
		parts = append(parts, strings.ToLower(n), strings.Join(r.Header.Values(n), ", "))
	}
	return join("", parts...)
}

// join length-prefixes each part after the first and hashes a result too
// long for a cache key.
func join(head string, parts ...string) string {
	var b strings.Builder
	n := len(head)
	for _, p := range parts {
		n += len(p) + 4
	}
	b.Grow(n)
	b.WriteString(head)
	for _, p := range parts {
		b.WriteString(strconv.Itoa(len(p)))
		b.WriteByte(':')
		b.WriteString(p)
	}
	k := b.String()
	if len(k) > maxKeyLen {
		sum := sha256.Sum256([]byte(k))
		return keyPrefix + "sha256:" + hex.EncodeToString(sum[:])
	}
	return k
}
