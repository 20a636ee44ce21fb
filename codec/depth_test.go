package codec_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/ushka-go/ushka/codec"
)

var allCodecs = []codec.Codec{codec.JSON, codec.StdJSON, codec.Msgpack}

// treeNode is a tree whose nodes point back at their parent.
type treeNode struct {
	Name     string      `json:"name"`
	Parent   *treeNode   `json:"parent"`
	Children []*treeNode `json:"children"`
}

// listNode nests one object per node.
type listNode struct {
	Next *listNode `json:"next"`
}

// ring holds its cycle behind an array or a map.
type ring struct {
	Arr [1]*ring         `json:"arr"`
	M   map[string]*ring `json:"m"`
	Any any              `json:"any"`
}

// parentSkipped is a tree whose parent pointer no codec encodes: no cycle.
type parentSkipped struct {
	Parent   *parentSkipped   `json:"-"`
	Children []*parentSkipped `json:"children"`
}

// cycles returns values that contain themselves, each in its own way.
func cycles() map[string]func() any {
	return map[string]func() any{
		"tree_with_parent_pointers": func() any {
			root := &treeNode{Name: "root"}
			root.Children = []*treeNode{{Name: "a", Parent: root}, {Name: "b", Parent: root}}
			return root
		},
		"map_containing_itself": func() any {
			m := map[string]any{"k": 1}
			m["self"] = m
			return m
		},
		"slice_containing_itself": func() any {
			s := []any{1, nil}
			s[1] = s
			return s
		},
		"pointer_to_interface_holding_it": func() any {
			var x any
			x = &x
			return x
		},
		"list_ring": func() any {
			a := &listNode{}
			a.Next = &listNode{Next: a}
			return a
		},
		"through_array": func() any {
			r := &ring{}
			r.Arr[0] = r
			return r
		},
		"through_typed_map": func() any {
			r := &ring{M: map[string]*ring{}}
			r.M["me"] = r
			return []any{r}
		},
		"after_deep_legal_nesting": func() any {
			m := map[string]any{}
			var v any = m
			for range 1500 {
				v = []any{v}
			}
			m["back"] = v
			return v
		},
		"map_of_slices_of_maps": func() any {
			m := map[string]any{}
			m["l"] = []any{map[string]any{"m": m}}
			return map[string]any{"top": m}
		},
	}
}

// nested returns a value nested depth levels deep, in several shapes.
func nested(shape string, depth int) any {
	switch shape {
	case "slices":
		var v any = "leaf"
		for range depth {
			v = []any{v}
		}
		return v
	case "maps":
		var v any = 1
		for range depth {
			v = map[string]any{"k": v}
		}
		return v
	case "structs":
		var l *listNode
		for range depth {
			l = &listNode{Next: l}
		}
		return l
	case "typed_maps":
		var v any = 1
		for range depth - 1 {
			v = map[string]any{"k": []any{v}[:1][0]}
		}
		return []map[string]any{{"k": v}}[0]
	}
	panic(shape)
}

// TestHostileValues is run by TestHostileValuesDoNotCrash in a child
// process: before the depth and cycle checks, msgpack overflowed the stack
// on these values, which kills the process, not just the test.
func TestHostileValues(t *testing.T) {
	if os.Getenv("USHKA_CODEC_HOSTILE") == "" {
		t.Skip("run in a child process by TestHostileValuesDoNotCrash")
	}
	// Keep a crash cheap: a legal value at MaxDepth needs a few MB.
	debug.SetMaxStack(256 << 20)
	for name, mk := range cycles() {
		for _, cd := range allCodecs {
			fmt.Printf("case cycle/%s/%s\n", name, cd.Name())
			if b, err := cd.Marshal(mk()); !errors.Is(err, codec.ErrCycle) {
				t.Errorf("%s.Marshal(%s) = (%.40q, %v), want an error matching ErrCycle", cd.Name(), name, b, err)
			}
		}
	}
	for _, shape := range []string{"slices", "maps", "structs"} {
		for _, cd := range allCodecs {
			fmt.Printf("case depth/%s/%s\n", shape, cd.Name())
			b, err := cd.Marshal(nested(shape, codec.MaxDepth))
			if err != nil {
				t.Errorf("%s.Marshal(%s nested MaxDepth deep) = %v", cd.Name(), shape, err)
			}
			var back any
			if err := cd.Unmarshal(b, &back); err != nil {
				t.Errorf("%s.Unmarshal(%s nested MaxDepth deep) = %v", cd.Name(), shape, err)
			}
			if b, err := cd.Marshal(nested(shape, codec.MaxDepth+1)); !errors.Is(err, codec.ErrTooDeep) {
				t.Errorf("%s.Marshal(%s nested MaxDepth+1 deep) = (%d bytes, %v), want ErrTooDeep", cd.Name(), shape, len(b), err)
			}
			fmt.Printf("case very_deep/%s/%s\n", shape, cd.Name())
			if _, err := cd.Marshal(nested(shape, 300000)); !errors.Is(err, codec.ErrTooDeep) {
				t.Errorf("%s.Marshal(%s nested 300000 deep) = %v, want ErrTooDeep", cd.Name(), shape, err)
			}
		}
	}
	for name, data := range hostileEntries() {
		for _, cd := range allCodecs {
			if cd == codec.Msgpack && strings.HasPrefix(name, "json") {
				continue // to msgpack, '[' and '{' are small integers
			}
			fmt.Printf("case entry/%s/%s\n", name, cd.Name())
			var v any
			if err := cd.Unmarshal(data, &v); err == nil {
				t.Errorf("%s.Unmarshal(%s) = nil error", cd.Name(), name)
			}
			var s []any
			if err := cd.Unmarshal(data, &s); err == nil {
				t.Errorf("%s.Unmarshal(%s) into []any = nil error", cd.Name(), name)
			}
		}
	}
	fmt.Println("case done")
}

// hostileEntries are stored entries nested far too deeply.
func hostileEntries() map[string][]byte {
	const n = 2 << 20
	return map[string][]byte{
		"msgpack_fixarrays": append(bytes.Repeat([]byte{0x91}, n), 0x01),
		"msgpack_array16s":  append(bytes.Repeat([]byte{0xdc, 0x00, 0x01}, n/3), 0x01),
		"msgpack_maps":      append(bytes.Repeat([]byte{0x81, 0xa1, 'k'}, n/3), 0x01),
		"json_arrays":       append(bytes.Repeat([]byte("["), n), bytes.Repeat([]byte("]"), n)...),
		"json_objects":      []byte(strings.Repeat(`{"a":`, n/5) + "1" + strings.Repeat("}", n/5)),
	}
}

func TestHostileValuesDoNotCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("builds values MaxDepth deep in a child process")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHostileValues$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "USHKA_CODEC_HOSTILE=1")
	out, err := cmd.CombinedOutput()
	if err == nil && bytes.Contains(out, []byte("case done")) {
		return
	}
	last := "none"
	for line := range strings.Lines(string(out)) {
		if c, ok := strings.CutPrefix(line, "case "); ok {
			last = strings.TrimSpace(c)
		}
	}
	tail := out
	if i := bytes.Index(out, []byte("\ngoroutine ")); i > 0 {
		tail = out[:i] // the crash's own message, without its stacks
	}
	if len(tail) > 4000 {
		tail = tail[len(tail)-4000:]
	}
	t.Fatalf("child process: %v, last case started: %s\n%s", err, last, tail)
}

// FuzzUnmarshalNested decodes randomly nested entries, in JSON and msgpack,
// up to twice MaxDepth deep: never a crash, and an error exactly when an
// entry nests deeper than MaxDepth.
func FuzzUnmarshalNested(f *testing.F) {
	f.Add([]byte{0}, uint16(codec.MaxDepth))
	f.Add([]byte{1, 2, 3}, uint16(codec.MaxDepth+1))
	f.Add([]byte{3, 0, 7}, uint16(3))
	f.Fuzz(func(t *testing.T, shape []byte, depth uint16) {
		js, mp, d := nestedEntry(shape, int(depth)%(2*codec.MaxDepth+2))
		for _, c := range []struct {
			cd   codec.Codec
			data []byte
		}{{codec.JSON, js}, {codec.StdJSON, js}, {codec.Msgpack, mp}} {
			var v any
			err := c.cd.Unmarshal(c.data, &v)
			if d <= codec.MaxDepth && err != nil {
				t.Fatalf("%s: depth %d: %v", c.cd.Name(), d, err)
			}
			if d > codec.MaxDepth && err == nil {
				t.Fatalf("%s: depth %d: nil error", c.cd.Name(), d)
			}
		}
	})
}

// nestedEntry writes the same value, levels containers deep, as JSON and
// as msgpack; shape picks each level's container and extra elements. depth
// is how deep the entry nests: an empty array beside the next level counts.
func nestedEntry(shape []byte, levels int) (js, mp []byte, depth int) {
	var open, closing []byte
	var mpb []byte
	for i := range levels {
		depth = max(depth, i+1)
		s := byte(0)
		if len(shape) > 0 {
			s = shape[i%len(shape)]
		}
		switch s % 4 {
		case 0: // [v]
			open = append(open, '[')
			closing = append(closing, ']')
			mpb = append(mpb, 0x91)
		case 1: // {"k":v}
			open = append(open, `{"k":`...)
			closing = append(closing, '}')
			mpb = append(mpb, 0x81, 0xa1, 'k')
		case 2: // [1,v]
			open = append(open, `[1,`...)
			closing = append(closing, ']')
			mpb = append(mpb, 0xdc, 0, 2, 0x01)
		case 3: // {"a":[],"k":v}
			open = append(open, `{"a":[],"k":`...)
			closing = append(closing, '}')
			mpb = append(mpb, 0x82, 0xa1, 'a', 0x90, 0xa1, 'k')
			depth = max(depth, i+2)
		}
	}
	js = append(open, 'n', 'u', 'l', 'l')
	for i := len(closing) - 1; i >= 0; i-- {
		js = append(js, closing[i])
	}
	return js, append(mpb, 0xc0), depth
}

// The value passes for one codec's rules and not another's: a parent
// pointer no codec encodes is no cycle.
func TestSkippedFieldsAreNoCycle(t *testing.T) {
	root := &parentSkipped{}
	root.Children = []*parentSkipped{{Parent: root}}
	for _, cd := range allCodecs {
		if _, err := cd.Marshal(root); err != nil {
			t.Errorf("%s.Marshal(tree with a json:\"-\" parent) = %v", cd.Name(), err)
		}
	}
}
