package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// checkMsgpack walks the MessagePack value in data and rejects it if any
// length it declares (of a string, binary, extension, array or map) exceeds
// the bytes that remain, or if its arrays and maps nest deeper than MaxDepth.
// msgpack/v5 allocates a []any of the declared length before reading its
// elements, so five hostile bytes (an array32 header of 4G elements) would
// make it allocate 64 GiB; and it decodes nested arrays and maps by
// recursion, so 2 MB of one-element arrays overflow the stack, which kills
// the process. A cache entry is untrusted input, and a corrupt one must be
// an error, not a crash. The walk is linear, and allocates nothing for an
// entry that nests at most len(small) levels.
func checkMsgpack(data []byte) error {
	// open[i] is how many elements the container at depth i+1 still
	// holds; pending counts the elements all of them still hold plus the
	// top-level value, and each takes at least one byte.
	var small [32]uint64
	open := small[:0]
	pos, pending := 0, uint64(1)
	need := func(n uint64) error {
		if n > uint64(len(data)-pos) {
			return fmt.Errorf("msgpack: truncated or corrupt data: %d bytes declared at offset %d, %d left", n, pos, len(data)-pos)
		}
		return nil
	}
	length := func(size int) (uint64, error) {
		if err := need(uint64(size)); err != nil {
			return 0, err
		}
		var n uint64
		switch size {
		case 1:
			n = uint64(data[pos])
		case 2:
			n = uint64(binary.BigEndian.Uint16(data[pos:]))
		case 4:
			n = uint64(binary.BigEndian.Uint32(data[pos:]))
		}
		pos += size
		return n, nil
	}
	for ; pending > 0; pending-- {
		for len(open) > 0 && open[len(open)-1] == 0 {
			open = open[:len(open)-1]
		}
		if len(open) > 0 {
			open[len(open)-1]--
		}
		if pos >= len(data) {
			return errors.New("msgpack: truncated data")
		}
		c := data[pos]
		pos++
		var skip, items uint64
		var container bool
		var err error
		switch {
		case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
			// fixint, nil, bool: the byte is the value
		case c >= 0x80 && c <= 0x8f:
			items, container = 2*uint64(c&0x0f), true
		case c >= 0x90 && c <= 0x9f:
			items, container = uint64(c&0x0f), true
		case c >= 0xa0 && c <= 0xbf:
			skip = uint64(c & 0x1f)
		case c == 0xc4 || c == 0xd9: // bin8, str8
			skip, err = length(1)
		case c == 0xc5 || c == 0xda: // bin16, str16
			skip, err = length(2)
		case c == 0xc6 || c == 0xdb: // bin32, str32
			skip, err = length(4)
		case c == 0xc7: // ext8: length, type, data
			skip, err = length(1)
			skip++
		case c == 0xc8:
			skip, err = length(2)
			skip++
		case c == 0xc9:
			skip, err = length(4)
			skip++
		case c == 0xca, c == 0xce, c == 0xd2: // 4-byte numbers
			skip = 4
		case c == 0xcb, c == 0xcf, c == 0xd3: // 8-byte numbers
			skip = 8
		case c == 0xcc, c == 0xd0:
			skip = 1
		case c == 0xcd, c == 0xd1:
			skip = 2
		case c >= 0xd4 && c <= 0xd8: // fixext 1, 2, 4, 8, 16, plus the type byte
			skip = 1 + 1<<(c-0xd4)
		case c == 0xdc:
			items, err = length(2)
			container = true
		case c == 0xdd:
			items, err = length(4)
			container = true
		case c == 0xde:
			items, err = length(2)
			items, container = 2*items, true
		case c == 0xdf:
			items, err = length(4)
			items, container = 2*items, true
		default: // 0xc1 is never used
			return fmt.Errorf("msgpack: invalid code %#x at offset %d", c, pos-1)
		}
		if err != nil {
			return err
		}
		if err := need(skip); err != nil {
			return err
		}
		pos += int(skip)
		if !container {
			continue
		}
		if len(open)+1 > MaxDepth {
			return fmt.Errorf("msgpack: %w (%d) at offset %d", ErrTooDeep, MaxDepth, pos)
		}
		// Every element takes at least one byte.
		if err := need(pending - 1 + items); err != nil {
			return err
		}
		pending += items
		open = append(open, items)
	}
	return nil
}
