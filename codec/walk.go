package codec

import (
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"
)

// MaxDepth is the deepest nesting of arrays and objects (slices, arrays,
// maps and structs) that every codec encodes and decodes: a value or an entry
// nested deeper is an error matching [ErrTooDeep], never a crash of the
// process by stack overflow. It is encoding/json's own decoding limit, so a
// value at MaxDepth encodes and decodes with every codec.
//
// When encoding, a struct embedded without a name adds no level, as it adds
// none to the output; a value of a type that cannot hold a pointer or an
// interface counts for the levels its type would open, even when it is nil or
// empty (as goccy/go-json counts it); pointers and interface values add no
// level, but a value may not hold more than 3*MaxDepth of them in a chain.
// What a MarshalJSON, MarshalText or msgpack encoder method returns is not
// counted when encoding; a stored entry nested too deeply through one is an
// error when it is read.
const MaxDepth = 10000

// ErrTooDeep is returned (wrapped) by every codec's Marshal and Unmarshal for
// a value or an entry nested deeper than [MaxDepth].
var ErrTooDeep = errors.New("codec: nested deeper than MaxDepth")

// ErrCycle is returned (wrapped) by every codec's Marshal for a value that
// contains itself: a pointer, map or slice reached again from inside itself.
var ErrCycle = errors.New("codec: value contains a cycle")

// startTrackingAfter is how many pointers and containers a path through a
// value holds before the walk starts recording them to find a cycle, as
// encoding/json does: shallow values cost no bookkeeping, and a cycle is
// still found, since it repeats forever.
const startTrackingAfter = 1000

// maxIndirections bounds pointers, interface values and containers on one
// path, so that a chain of pointers cannot make the walk itself overflow.
const maxIndirections = 3 * MaxDepth

// flavour is what the walk needs to know about one family of encoders: which
// struct fields they encode and which types encode themselves.
type flavour struct {
	name      string
	skip      func(f reflect.StructField) (skip, inline bool)
	marshaler func(t reflect.Type) bool
	infos     sync.Map // reflect.Type -> *typeInfo
}

// typeInfo is what a type's definition tells about its values.
type typeInfo struct {
	// walk is set when the values of the type must be walked: they may
	// hold interfaces or cycles, or nest deeper than MaxDepth.
	walk bool
	// depth is the most levels a value of the type opens, when walk is
	// false.
	depth int
	// stdOnly is set (json only) when goccy/go-json writes a value of the
	// type otherwise than encoding/json does.
	stdOnly bool
	// leaf is set when the encoder does not look inside the value: a
	// scalar, or a type that encodes itself.
	leaf bool
	// fields are the struct fields to walk; inline ones add no level.
	fields []walkField
}

type walkField struct {
	index  int
	inline bool
}

var (
	jsonMarshalerType = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
	binMarshalerType  = reflect.TypeFor[encoding.BinaryMarshaler]()
	msgpCustomType    = reflect.TypeFor[msgpack.CustomEncoder]()
	msgpMarshalerType = reflect.TypeFor[msgpack.Marshaler]()
)

// implements reports whether t or *t implements one of ifaces: the encoders
// call a pointer method whenever they can, and when they cannot (a value
// that is not addressable), it is still a type written by its own method.
func implements(t reflect.Type, ifaces ...reflect.Type) bool {
	for _, i := range ifaces {
		if t.Implements(i) || (t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(i)) {
			return true
		}
	}
	return false
}

// ptrOnlyMarshaler reports whether only *t is a json.Marshaler or
// encoding.TextMarshaler.
func ptrOnlyMarshaler(t reflect.Type) bool {
	if t.Kind() == reflect.Pointer || t.Kind() == reflect.Interface {
		return false
	}
	p := reflect.PointerTo(t)
	return (!t.Implements(jsonMarshalerType) && p.Implements(jsonMarshalerType)) ||
		(!t.Implements(textMarshalerType) && p.Implements(textMarshalerType))
}

var jsonFlavour = &flavour{
	name: "json",
	skip: func(f reflect.StructField) (skip, inline bool) {
		tag := f.Tag.Get("json")
		if tag == "-" {
			return true, false
		}
		name, _, _ := strings.Cut(tag, ",")
		return embedded(f, name)
	},
	marshaler: func(t reflect.Type) bool { return implements(t, jsonMarshalerType, textMarshalerType) },
}

var msgpackFlavour = &flavour{
	name: "msgpack",
	skip: func(f reflect.StructField) (skip, inline bool) {
		tag := f.Tag.Get("msgpack")
		if tag == "" {
			tag = f.Tag.Get("json")
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			return true, false
		}
		if !f.Anonymous {
			return !f.IsExported(), false
		}
		// msgpack writes the fields of an embedded struct inline, named
		// or not, exported or not, unless told not to.
		t := f.Type
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		return false, t.Kind() == reflect.Struct && !strings.Contains(opts, "noinline")
	},
	marshaler: func(t reflect.Type) bool {
		return implements(t, msgpCustomType, msgpMarshalerType, binMarshalerType, textMarshalerType)
	},
}

// embedded reports whether an encoder skips the field f, or writes its
// fields inline in the enclosing object (an embedded struct without a name).
func embedded(f reflect.StructField, name string) (skip, inline bool) {
	if !f.Anonymous {
		return !f.IsExported(), false
	}
	t := f.Type
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if name == "" && t.Kind() == reflect.Struct {
		return false, true
	}
	return !f.IsExported(), false
}

// info returns what fl knows about t, working it out once.
func (fl *flavour) info(t reflect.Type) *typeInfo {
	if i, ok := fl.infos.Load(t); ok {
		return i.(*typeInfo)
	}
	a := analysis{fl: fl, done: map[reflect.Type]*typeInfo{}, busy: map[reflect.Type]bool{}}
	i := a.of(t)
	fl.infos.Store(t, i)
	return i
}

// analysis works out the typeInfo of a type and of the types it holds.
type analysis struct {
	fl   *flavour
	done map[reflect.Type]*typeInfo
	busy map[reflect.Type]bool // on the current path: a recursive type
}

func (a *analysis) of(t reflect.Type) *typeInfo {
	if i, ok := a.done[t]; ok {
		return i
	}
	if a.busy[t] {
		// A recursive type: its values may nest without bound or
		// contain themselves.
		return &typeInfo{walk: true}
	}
	if i, ok := a.fl.infos.Load(t); ok {
		return i.(*typeInfo)
	}
	a.busy[t] = true
	defer delete(a.busy, t)
	i := &typeInfo{}
	switch {
	case a.fl.marshaler(t):
		i.leaf = true
	case t.Kind() == reflect.Interface:
		i.walk = true
	case t.Kind() == reflect.Pointer:
		e := a.of(t.Elem())
		*i = typeInfo{walk: e.walk, depth: e.depth, stdOnly: e.stdOnly, leaf: e.leaf}
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 && !a.fl.marshaler(t.Elem()):
		i.leaf = true // a string of bytes, base64 in JSON
	case t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
		e := a.of(t.Elem())
		i.walk, i.depth, i.stdOnly = e.walk, e.depth+1, e.stdOnly
		if t.Kind() == reflect.Array && a.fl == jsonFlavour && byValueHasPtrMarshaler(t.Elem(), map[reflect.Type]bool{}) {
			// goccy/go-json calls a pointer method on the elements of
			// an array that is not addressable; encoding/json does not.
			i.stdOnly = true
		}
	case t.Kind() == reflect.Map:
		k, e := a.of(t.Key()), a.of(t.Elem())
		i.walk, i.depth, i.stdOnly = k.walk || e.walk, max(k.depth, e.depth)+1, k.stdOnly || e.stdOnly
	case t.Kind() == reflect.Struct:
		i.depth = 1
		for n := range t.NumField() {
			f := t.Field(n)
			skip, inline := a.fl.skip(f)
			if skip {
				continue
			}
			fi := a.of(f.Type)
			i.stdOnly = i.stdOnly || fi.stdOnly
			d := fi.depth + 1
			if inline {
				d = max(fi.depth, 1)
			}
			i.depth = max(i.depth, d)
			if fi.walk {
				i.walk = true
				i.fields = append(i.fields, walkField{index: n, inline: inline})
			}
		}
	default:
		i.leaf = true
	}
	if i.walk {
		i.depth = 0
	} else if i.depth > MaxDepth {
		i.walk = true
	}
	a.done[t] = i
	return i
}

// byValueHasPtrMarshaler reports whether a value of t holds, by value (not
// behind a pointer, slice, map or interface), a value whose type is a
// json.Marshaler or encoding.TextMarshaler through its pointer only.
func byValueHasPtrMarshaler(t reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[t] {
		return false
	}
	seen[t] = true
	if ptrOnlyMarshaler(t) {
		return true
	}
	if t.Implements(jsonMarshalerType) || t.Implements(textMarshalerType) {
		return false
	}
	switch t.Kind() {
	case reflect.Array:
		return byValueHasPtrMarshaler(t.Elem(), seen)
	case reflect.Struct:
		for n := range t.NumField() {
			f := t.Field(n)
			if skip, _ := jsonFlavour.skip(f); !skip && byValueHasPtrMarshaler(f.Type, seen) {
				return true
			}
		}
	}
	return false
}

// check walks v as fl's encoders would, and returns an error wrapping
// ErrTooDeep or ErrCycle if encoding it could overflow the stack. stdOnly
// (json only) reports a value that goccy/go-json writes otherwise than
// encoding/json. A flat value costs a type switch or one map look-up.
func check(fl *flavour, v any) (stdOnly bool, err error) {
	switch v.(type) {
	case nil, string, []byte, bool, int, int64, float64, map[string]string, []string:
		return false, nil
	}
	w := walker{fl: fl}
	switch x := v.(type) {
	case map[string]any:
		err := w.anyMap(x, 0)
		return w.stdOnly, err
	case []any:
		err := w.anyValue(x, 0)
		return w.stdOnly, err
	}
	t := reflect.TypeOf(v)
	i := fl.info(t)
	if !i.walk {
		return i.stdOnly, nil
	}
	err = w.value(reflect.ValueOf(v), i, 0)
	return w.stdOnly, err
}

// walker walks one value.
type walker struct {
	fl      *flavour
	steps   int // pointers, interface values and containers on the path
	seen    map[seen]struct{}
	stdOnly bool
}

// seen identifies a pointer, map or slice on the path.
type seen struct {
	ptr unsafe.Pointer
	typ reflect.Type
	len int
}

func (w *walker) tooDeep(t reflect.Type) error {
	return fmt.Errorf("codec: %s: %w (%d) at %s", w.fl.name, ErrTooDeep, MaxDepth, t)
}

// enter records one more step on the path, and the pointer p of type t
// from startTrackingAfter on; leave must undo it.
func (w *walker) enter(p unsafe.Pointer, t reflect.Type, n int) (tracked bool, err error) {
	w.steps++
	if w.steps > maxIndirections {
		return false, w.tooDeep(t)
	}
	if w.steps <= startTrackingAfter || p == nil {
		return false, nil
	}
	if w.seen == nil {
		w.seen = map[seen]struct{}{}
	}
	k := seen{p, t, n}
	if _, ok := w.seen[k]; ok {
		return false, fmt.Errorf("codec: %s: %w through %s", w.fl.name, ErrCycle, t)
	}
	w.seen[k] = struct{}{}
	return true, nil
}

func (w *walker) leave(p unsafe.Pointer, t reflect.Type, n int, tracked bool) {
	w.steps--
	if tracked {
		delete(w.seen, seen{p, t, n})
	}
}

// value walks v, of a type described by i, found at depth levels.
func (w *walker) value(v reflect.Value, i *typeInfo, depth int) (err error) {
	if i.stdOnly {
		w.stdOnly = true
	}
	if !i.walk {
		if depth+i.depth > MaxDepth {
			return w.tooDeep(v.Type())
		}
		return nil
	}
	t := v.Type()
	var p unsafe.Pointer
	n := 0
	switch t.Kind() {
	case reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return w.iface(v.Elem(), depth)
	case reflect.Pointer, reflect.Map:
		if v.IsNil() {
			return nil
		}
		p = v.UnsafePointer()
	case reflect.Slice:
		if v.Len() == 0 {
			return w.container(t, depth)
		}
		p, n = v.UnsafePointer(), v.Len()
	}
	tracked, err := w.enter(p, t, n)
	if err != nil {
		return err
	}
	defer w.leave(p, t, n, tracked)
	switch t.Kind() {
	case reflect.Pointer:
		return w.value(v.Elem(), w.fl.info(t.Elem()), depth)
	case reflect.Slice, reflect.Array:
		if err := w.container(t, depth); err != nil {
			return err
		}
		ei := w.fl.info(t.Elem())
		for k := range v.Len() {
			if err := w.value(v.Index(k), ei, depth+1); err != nil {
				return err
			}
		}
	case reflect.Map:
		if err := w.container(t, depth); err != nil {
			return err
		}
		ki, ei := w.fl.info(t.Key()), w.fl.info(t.Elem())
		for it := v.MapRange(); it.Next(); {
			if ki.walk {
				if err := w.value(it.Key(), ki, depth+1); err != nil {
					return err
				}
			}
			if err := w.value(it.Value(), ei, depth+1); err != nil {
				return err
			}
		}
	case reflect.Struct:
		return w.structFields(v, i, depth)
	}
	return nil
}

// structFields walks the fields of the struct v that may need it.
func (w *walker) structFields(v reflect.Value, i *typeInfo, depth int) error {
	if err := w.container(v.Type(), depth); err != nil {
		return err
	}
	for _, f := range i.fields {
		fv := v.Field(f.index)
		var err error
		if f.inline {
			// Its fields are written in this object.
			err = w.inline(fv, depth)
		} else {
			err = w.value(fv, w.fl.info(fv.Type()), depth+1)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// inline walks the fields of fv, an embedded struct or pointer to one,
// whose fields are written in the object of the struct at depth.
func (w *walker) inline(fv reflect.Value, depth int) error {
	var p unsafe.Pointer
	t := fv.Type()
	if fv.Kind() == reflect.Pointer {
		if fv.IsNil() {
			return nil
		}
		p, fv = fv.UnsafePointer(), fv.Elem()
	}
	fi := w.fl.info(fv.Type())
	if !fi.walk {
		if depth+max(fi.depth, 1) > MaxDepth {
			return w.tooDeep(t)
		}
		return nil
	}
	tracked, err := w.enter(p, t, 0)
	if err != nil {
		return err
	}
	defer w.leave(p, t, 0, tracked)
	return w.structFields(fv, fi, depth)
}

// container checks that one more level at depth is allowed.
func (w *walker) container(t reflect.Type, depth int) error {
	if depth+1 > MaxDepth {
		return w.tooDeep(t)
	}
	return nil
}

// iface walks the value an interface holds, with fast paths for what JSON
// decoding produces.
func (w *walker) iface(e reflect.Value, depth int) error {
	switch e.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.String:
		// Scalars, or types that encode themselves as they like.
		return nil
	case reflect.Map:
		if e.Type() == mapStringAnyType && e.CanInterface() {
			return w.anyMap(e.Interface().(map[string]any), depth)
		}
	}
	return w.value(e, w.fl.info(e.Type()), depth)
}

var (
	mapStringAnyType = reflect.TypeFor[map[string]any]()
	sliceAnyType     = reflect.TypeFor[[]any]()
)

// anyValue walks x without reflection when it is what JSON decoding
// produces.
func (w *walker) anyValue(x any, depth int) error {
	switch x := x.(type) {
	case nil, string, float64, bool, int, int64, json.Number:
		return nil
	case map[string]any:
		return w.anyMap(x, depth)
	case []any:
		if len(x) == 0 {
			return w.container(sliceAnyType, depth)
		}
		p := unsafe.Pointer(unsafe.SliceData(x))
		tracked, err := w.enter(p, sliceAnyType, len(x))
		if err != nil {
			return err
		}
		defer w.leave(p, sliceAnyType, len(x), tracked)
		if err := w.container(sliceAnyType, depth); err != nil {
			return err
		}
		for _, e := range x {
			if err := w.anyValue(e, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	v := reflect.ValueOf(x)
	return w.value(v, w.fl.info(v.Type()), depth)
}

func (w *walker) anyMap(m map[string]any, depth int) error {
	if m == nil {
		return nil
	}
	p := reflect.ValueOf(m).UnsafePointer()
	tracked, err := w.enter(p, mapStringAnyType, 0)
	if err != nil {
		return err
	}
	defer w.leave(p, mapStringAnyType, 0, tracked)
	if err := w.container(mapStringAnyType, depth); err != nil {
		return err
	}
	for _, e := range m {
		if err := w.anyValue(e, depth+1); err != nil {
			return err
		}
	}
	return nil
}
