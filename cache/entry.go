package cache

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The stored layout of an entry that carries metadata.
//
// A value written by [Cache.Set] is stored as it is: its encoded bytes and
// nothing else, readable with redis-cli and by other languages. An entry
// written by [GetOrSet] with fail-safe or early refresh on, or by a
// cross-process load ([Locker]), needs to know more than its value: when it
// was written, until when it is fresh, whether a load of it is running and
// whose. Such an entry is a header line, then the value's bytes as they are:
//
//		"\xffushka1 " created " " fresh " " flags " " lock " " lockUntil "\n" value
//
//	  - created, fresh and lockUntil are Unix times in milliseconds, in
//	    decimal; fresh == 0 means fresh until the entry expires, lockUntil
//	    is 0 when lock is "-";
//	  - flags is "-" or letters: "p", a placeholder that holds no value (a
//	    load of a missing key is running); "s", a stale value served again by
//	    fail-safe while fresh ones cannot be had; "n", no value: the load
//	    found none and CacheMisses keeps that known (no value bytes); "t", a value written with
//	    tags, whose bytes start with a line of tags and their tokens, each
//	    tag Go-quoted, "=", and the token the tag had when the value's
//	    write (or load) began ("" when it had none), separated by spaces;
//	  - lock is "-" or the token of the load that holds the key's lease.
//
// The first byte, 0xff, never starts UTF-8 text, JSON or an entry of the
// msgpack codec, so a header cannot be mistaken for a value those write. A
// []byte or string value that itself starts with EntryMagic is stored inside
// a header, so that it reads back as it was written. An entry that starts
// with EntryMagic but has a version other than "1", or a header that does
// not parse, reads as a miss: never as garbage.
const (
	// EntryMagic starts every entry that has a header.
	EntryMagic = "\xffushka"
	// EntryVersion is the layout version this package writes and reads.
	EntryVersion = '1'
)

// entryPrefix is EntryMagic followed by the version and a space.
const entryPrefix = EntryMagic + "1 "

// maxHeader bounds a header line's length: five fields of at most 20
// characters, or a lock token of at most 64.
const maxHeader = len(entryPrefix) + 4*21 + 65 + 1

// Entry is an entry's metadata and value, as [ParseEntry] reads it and
// [Entry.Append] writes it.
type Entry struct {
	// Value is the encoded value; nil for a placeholder.
	Value []byte
	// Created is when the value was written; zero for a plain value.
	Created time.Time
	// Fresh is until when the value is fresh; zero means until the entry
	// expires.
	Fresh time.Time
	// Placeholder reports an entry that holds no value: a load of a missing
	// key is running.
	Placeholder bool
	// Absent reports an entry that records that the key has no value: a
	// GetOrSetMany's load left it out, and [CacheMisses] keeps that known
	// for a while. It reads as missing.
	Absent bool
	// Stale reports a value past its freshness that fail-safe serves again
	// while a fresh one cannot be had. [Cache.Get] never returns it.
	Stale bool
	// Lock is the token of the load that holds the key's lease, or "".
	Lock string
	// LockUntil is when that lease ends.
	LockUntil time.Time
	// Tags are the tags the value was written with, each with the token it
	// had then (see [Cache.InvalidateTags]).
	Tags []TagToken
	// header reports an entry that was stored with a header.
	header bool
}

// errEntryLayout reports an entry whose header does not parse.
var errEntryLayout = errors.New("unknown entry layout")

// ParseEntry reads b, a stored entry. A value without a header is an Entry
// with only Value set. An entry with a header of another layout version, or
// one that does not parse, is an error: callers treat it as a miss. Value
// shares b's memory.
func ParseEntry(b []byte) (Entry, error) {
	if len(b) == 0 || b[0] != EntryMagic[0] || !bytes.HasPrefix(b, []byte(EntryMagic)) {
		return Entry{Value: b}, nil
	}
	if !bytes.HasPrefix(b, []byte(entryPrefix)) {
		return Entry{}, errEntryLayout
	}
	nl := bytes.IndexByte(b[:min(len(b), maxHeader)], '\n')
	if nl < 0 {
		return Entry{}, errEntryLayout
	}
	var fields [5][]byte // not bytes.Fields: a read of a hit allocates nothing here
	rest := b[len(entryPrefix):nl]
	for i := range fields {
		var f []byte
		f, rest, _ = bytes.Cut(rest, []byte{' '})
		if len(f) == 0 {
			return Entry{}, errEntryLayout
		}
		fields[i] = f
	}
	if len(rest) != 0 {
		return Entry{}, errEntryLayout
	}
	e := Entry{header: true}
	var ok bool
	var created, fresh, lockUntil int64
	if created, ok = millis(fields[0]); !ok {
		return Entry{}, errEntryLayout
	}
	if fresh, ok = millis(fields[1]); !ok {
		return Entry{}, errEntryLayout
	}
	if lockUntil, ok = millis(fields[4]); !ok {
		return Entry{}, errEntryLayout
	}
	e.Created, e.Fresh, e.LockUntil = unixMilli(created), unixMilli(fresh), unixMilli(lockUntil)
	tagged := false
	if f := fields[2]; string(f) != "-" {
		for _, r := range f {
			switch r {
			case 'p':
				e.Placeholder = true
			case 's':
				e.Stale = true
			case 't':
				tagged = true
			case 'n':
				e.Absent = true
			default:
				return Entry{}, errEntryLayout
			}
		}
	}
	if l := fields[3]; string(l) != "-" {
		e.Lock = string(l)
	}
	if !e.Placeholder {
		e.Value = b[nl+1:]
		if tagged {
			var err error
			if e.Tags, e.Value, err = parseTags(e.Value); err != nil {
				return Entry{}, errEntryLayout
			}
		}
	}
	return e, nil
}

// TagToken is a tag of an entry and the token the tag had when the entry's
// write began.
type TagToken struct {
	Tag, Token string
}

// parseTags reads the tags line at the start of b, returning the tags and
// the value after the line.
func parseTags(b []byte) ([]TagToken, []byte, error) {
	nl := bytes.IndexByte(b, '\n')
	if nl < 0 {
		return nil, nil, errEntryLayout
	}
	line, value := string(b[:nl]), b[nl+1:]
	var tags []TagToken
	for line != "" {
		tag, err := strconv.QuotedPrefix(line)
		if err != nil {
			return nil, nil, errEntryLayout
		}
		rest := line[len(tag):]
		if !strings.HasPrefix(rest, "=") {
			return nil, nil, errEntryLayout
		}
		token, after, _ := strings.Cut(rest[1:], " ")
		unq, _ := strconv.Unquote(tag)
		tags = append(tags, TagToken{unq, token})
		line = after
	}
	if len(tags) == 0 {
		return nil, nil, errEntryLayout
	}
	return tags, value, nil
}

// appendTags appends the tags line of tags.
func appendTags(dst []byte, tags []TagToken) []byte {
	for i, t := range tags {
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = strconv.AppendQuote(dst, t.Tag)
		dst = append(dst, '=')
		dst = append(dst, t.Token...)
	}
	return append(dst, '\n')
}

// Append appends e in the stored layout to dst. An Entry with no metadata
// is its Value as it is, unless that starts with EntryMagic.
func (e Entry) Append(dst []byte) []byte {
	if !e.needsHeader() {
		return append(dst, e.Value...)
	}
	dst = e.appendIdentity(dst)
	dst = append(dst, ' ')
	if e.Lock == "" {
		dst = append(dst, '-')
	} else {
		dst = append(dst, e.Lock...)
	}
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, toMilli(e.LockUntil), 10)
	dst = append(dst, '\n')
	if !e.Placeholder {
		if len(e.Tags) > 0 {
			dst = appendTags(dst, e.Tags)
		}
		dst = append(dst, e.Value...)
	}
	return dst
}

// appendIdentity appends the start of e's header up to its flags: two
// entries whose headers start the same hold the same value.
func (e Entry) appendIdentity(dst []byte) []byte {
	dst = append(dst, entryPrefix...)
	dst = strconv.AppendInt(dst, toMilli(e.Created), 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, toMilli(e.Fresh), 10)
	dst = append(dst, ' ')
	return e.appendFlags(dst)
}

// appendFlags appends e's flags field.
func (e Entry) appendFlags(dst []byte) []byte {
	n := len(dst)
	if e.Placeholder {
		dst = append(dst, 'p')
	}
	if e.Stale {
		dst = append(dst, 's')
	}
	if len(e.Tags) > 0 && !e.Placeholder {
		dst = append(dst, 't')
	}
	if e.Absent {
		dst = append(dst, 'n')
	}
	if len(dst) == n {
		dst = append(dst, '-')
	}
	return dst
}

func (e Entry) needsHeader() bool {
	return e.header || !e.Created.IsZero() || !e.Fresh.IsZero() || e.Placeholder || e.Stale || e.Absent || e.Lock != "" || len(e.Tags) > 0 ||
		bytes.HasPrefix(e.Value, []byte(EntryMagic))
}

// freshAt reports whether e's value is fresh at now: a value (not a
// placeholder, not a record that the key has none), not a fail-safe value,
// and before its Fresh time if it has one.
func (e Entry) freshAt(now time.Time) bool {
	return !e.Placeholder && !e.Stale && !e.Absent && (e.Fresh.IsZero() || now.Before(e.Fresh))
}

// knownMissing reports whether e records, still at now, that its key has
// no value (CacheMisses): a read takes it for missing, and GetOrSet does
// not load it.
func (e Entry) knownMissing(now time.Time) bool {
	return e.Absent && (e.Fresh.IsZero() || now.Before(e.Fresh))
}

// errKnownMissing is GetOrSet's error for a key e records as known missing.
func errKnownMissing(key string) error {
	return fmt.Errorf("cache: get or set %q: %w (known missing: CacheMisses)", key, ErrNotLoaded)
}

// refreshDue reports whether a fresh e is past ratio of its freshness, so
// that an early refresh should start.
func (e Entry) refreshDue(now time.Time, ratio float64) bool {
	if ratio <= 0 || e.Fresh.IsZero() || e.Created.IsZero() {
		return false
	}
	life := e.Fresh.Sub(e.Created)
	return now.Sub(e.Created) >= time.Duration(float64(life)*ratio)
}

// millis parses a Unix time in milliseconds: 1 to 18 decimal digits.
func millis(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, d := range b {
		if d < '0' || d > '9' {
			return 0, false
		}
		n = n*10 + int64(d-'0')
	}
	return n, true
}

func unixMilli(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

func toMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}
