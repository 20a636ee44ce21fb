package httpcache

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/ushka-go/ushka/cache"
)

// What the cache holds under a page's key: a response, a Vary marker (the
// response varies on request headers: the response itself is under a key
// that adds their values), or a pass marker (the page is not to be stored:
// requests go straight to the handler until it expires). Each is stored as
// bytes, so the cache's codec never touches a body:
//
//	"UHC1 R " status " " created-unix-ms " " fresh-until-unix-ms "\n" header-lines "\r\n" body
//	"UHC1 V " header-names-comma-separated " " generation "\n"
//	"UHC1 P\n"
const magic = "UHC1 "

type kind byte

const (
	kindResponse kind = 'R'
	kindVary     kind = 'V'
	kindPass     kind = 'P'
)

// stored is a decoded entry. A response read from the cache keeps its
// header lines as stored (rawHeader), written to the client as they are
// parsed; one this process recorded has them in header.
type stored struct {
	kind      kind
	status    int
	created   time.Time
	fresh     time.Time // until when it is fresh: past it, it is served only as stale
	header    http.Header
	rawHeader []byte // "Key: value\r\n" lines, when header is nil
	body      []byte
	vary      []string          // kindVary: the request headers the response varies on
	gen       string            // kindVary: the generation of the variants
	raw       cache.SharedBytes // the entry it was decoded from, when read from the cache
}

// view returns b as a string without copying it: b is part of an entry's
// bytes, which nothing ever changes (cache.SharedBytes), so the string
// stays what it was for as long as anyone holds it.
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

var errLayout = errors.New("httpcache: unknown entry layout")

func encodeResponse(status int, created time.Time, ttl time.Duration, h http.Header, body []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(body) + 512)
	fmt.Fprintf(&b, "%sR %d %d %d\n", magic, status, created.UnixMilli(), created.Add(ttl).UnixMilli())
	if h.Get("Content-Length") == "" && status != http.StatusNoContent && status != http.StatusNotModified {
		h = h.Clone()
		h.Set("Content-Length", strconv.Itoa(len(body))) // written once here, not on every hit
	}
	_ = h.Write(&b)
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}

// encodeVary is a Vary marker: the names of the request headers the page
// varies on, and the generation of its variants. A marker made anew (after
// a Delete of the page, or its expiry) has a new generation, so that the
// variants stored under the one before are never reached again.
func encodeVary(names []string, gen string) []byte {
	return []byte(magic + "V " + strings.Join(names, ",") + " " + gen + "\n")
}

// newGeneration returns a generation for a new Vary marker.
func newGeneration() string { return strconv.FormatUint(rand.Uint64(), 36) }

var passEntry = []byte(magic + "P\n")

func decode(b []byte) (stored, error) {
	if !bytes.HasPrefix(b, []byte(magic)) || len(b) < len(magic)+2 {
		return stored{}, errLayout
	}
	nl := bytes.IndexByte(b, '\n')
	if nl < 0 {
		return stored{}, errLayout
	}
	rest := b[nl+1:]
	switch kind(b[len(magic)]) {
	case kindPass:
		return stored{kind: kindPass}, nil
	case kindVary:
		// Header names hold no space: the generation is after the last one.
		list, gen, _ := strings.Cut(strings.TrimPrefix(string(b[len(magic)+1:nl]), " "), " ")
		return stored{kind: kindVary, vary: strings.Split(list, ","), gen: gen}, nil
	case kindResponse:
		f := b[len(magic)+1 : nl] // " status created fresh", without allocating
		var n [3]int64
		for i := range n {
			if len(f) < 2 || f[0] != ' ' {
				return stored{}, errLayout
			}
			f = f[1:]
			j := 0
			for j < len(f) && f[j] >= '0' && f[j] <= '9' && j < 18 {
				n[i] = n[i]*10 + int64(f[j]-'0')
				j++
			}
			if j == 0 {
				return stored{}, errLayout
			}
			f = f[j:]
		}
		if len(f) != 0 {
			return stored{}, errLayout
		}
		status, ms, fresh := int(n[0]), n[1], n[2]
		var head, body []byte
		switch end := bytes.Index(rest, []byte("\r\n\r\n")); {
		case bytes.HasPrefix(rest, []byte("\r\n")): // no header lines
			body = rest[2:]
		case end >= 0:
			head, body = rest[:end+2], rest[end+4:]
		default:
			return stored{}, errLayout
		}
		return stored{kind: kindResponse, status: status, created: time.UnixMilli(ms), fresh: time.UnixMilli(fresh), rawHeader: head, body: body, raw: cache.SharedBytes(b)}, nil
	}
	return stored{}, errLayout
}
