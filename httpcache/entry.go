package httpcache

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// What the cache holds under a page's key: a response, a Vary marker (the
// response varies on request headers: the response itself is under a key
// that adds their values), or a pass marker (the page is not to be stored:
// requests go straight to the handler until it expires). Each is stored as
// bytes, so the cache's codec never touches a body:
//
//	"UHC1 R " status " " created-unix-ms "\n" header-lines "\r\n" body
//	"UHC1 V " header-names-comma-separated "\n"
//	"UHC1 P\n"
const magic = "UHC1 "

type kind byte

const (
	kindResponse kind = 'R'
	kindVary     kind = 'V'
	kindPass     kind = 'P'
)

// stored is a decoded entry.
type stored struct {
	kind    kind
	status  int
	created time.Time
	header  http.Header
	body    []byte
	vary    []string // kindVary: the request headers the response varies on
}

var errLayout = errors.New("httpcache: unknown entry layout")

func encodeResponse(status int, created time.Time, h http.Header, body []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(body) + 512)
	fmt.Fprintf(&b, "%sR %d %d\n", magic, status, created.UnixMilli())
	_ = h.Write(&b)
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}

func encodeVary(names []string) []byte {
	return []byte(magic + "V " + strings.Join(names, ",") + "\n")
}

var passEntry = []byte(magic + "P\n")

func decode(b []byte) (stored, error) {
	if !bytes.HasPrefix(b, []byte(magic)) || len(b) < len(magic)+2 {
		return stored{}, errLayout
	}
	nl := bytes.IndexByte(b, '\n')
	if nl < 0 {
		return stored{}, errLayout
	}
	line, rest := string(b[len(magic):nl]), b[nl+1:]
	switch kind(line[0]) {
	case kindPass:
		return stored{kind: kindPass}, nil
	case kindVary:
		names := strings.Split(strings.TrimPrefix(line[1:], " "), ",")
		return stored{kind: kindVary, vary: names}, nil
	case kindResponse:
		f := strings.Fields(line[1:])
		if len(f) != 2 {
			return stored{}, errLayout
		}
		status, err1 := strconv.Atoi(f[0])
		ms, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			return stored{}, errLayout
		}
		r := textproto.NewReader(bufio.NewReader(bytes.NewReader(rest)))
		mh, err := r.ReadMIMEHeader()
		if err != nil {
			return stored{}, errLayout
		}
		end := bytes.Index(rest, []byte("\r\n\r\n"))
		var body []byte
		switch {
		case bytes.HasPrefix(rest, []byte("\r\n")): // no header lines
			body = rest[2:]
		case end >= 0:
			body = rest[end+4:]
		default:
			return stored{}, errLayout
		}
		return stored{kind: kindResponse, status: status, created: time.UnixMilli(ms), header: http.Header(mh), body: body}, nil
	}
	return stored{}, errLayout
}
