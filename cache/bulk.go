package cache

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"
)

// Bulk reads and writes: GetMany, SetMany, DeleteMany. A store that can
// do them in a few round trips implements Batcher (the redis store: MGET
// and pipelines, one round trip per Cluster node); the front end falls back
// on one call per key otherwise, which costs an in-process store nothing.

// Batcher is implemented by a [Store] that reads, writes and deletes many
// keys in a few round trips. The front end checks the keys and the ttl
// before it calls one, as for the single-key methods.
type Batcher interface {
	// GetMany calls fn exactly once for each of keys, in any order, on the
	// caller's goroutine, one call at a time (the front end's fn keeps no
	// lock): i is the key's index in keys, and value, found and err are
	// what Get would return for it. value is only valid during the call of fn: the store
	// may lend memory it reuses.
	GetMany(ctx context.Context, keys []string, fn func(i int, value []byte, found bool, err error))
	// SetMany stores each item's value under its key for ttl, as Set does,
	// taking ownership of the values. It returns nil when every item was
	// stored, a *[KeysError] naming the keys that failed when the others
	// were stored, and any other error when any of them may have failed.
	SetMany(ctx context.Context, items []Item, ttl time.Duration) error
	// DeleteMany removes each of keys, as Delete does, with SetMany's
	// errors.
	DeleteMany(ctx context.Context, keys []string) error
}

// Item is a key and its encoded value, for [Batcher.SetMany].
type Item struct {
	Key   string
	Value []byte
}

// KeysError is the error of a call on many keys that failed for some of
// them, and only those: the keys not in Errs succeeded. errors.Is matches
// it against each key's error.
type KeysError struct {
	Errs map[string]error
}

func (e *KeysError) Error() string {
	keys := slices.Sorted(maps.Keys(e.Errs))
	var b strings.Builder
	fmt.Fprintf(&b, "cache: %d of the keys failed", len(keys))
	for i, k := range keys {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", len(keys)-3)
			break
		}
		fmt.Fprintf(&b, "; %q: %v", k, e.Errs[k])
	}
	return b.String()
}

// Unwrap returns each key's error, in the order of the keys.
func (e *KeysError) Unwrap() []error {
	out := make([]error, 0, len(e.Errs))
	for _, k := range slices.Sorted(maps.Keys(e.Errs)) {
		out = append(out, e.Errs[k])
	}
	return out
}

// keysError returns errs as a *KeysError, or nil when it is empty.
func keysError(errs map[string]error) error {
	if len(errs) == 0 {
		return nil
	}
	return &KeysError{errs}
}

// checkKeys checks each key, for op.
func (c *Cache) checkKeys(op string, keys []string) error {
	for _, k := range keys {
		if err := c.check(op, k); err != nil {
			return err
		}
	}
	return nil
}

// GetMany reads keys in one call to the store (a few round trips on Redis,
// one per Cluster node) and decodes each value found into dst, a
// map[string]V or a pointer to one (made if nil), as [Cache.Get] decodes
// into a *V. Keys missing or expired are left out of the map; so are keys
// that failed, which the error, a *[KeysError], names: the other keys'
// values are in the map all the same. An invalid key fails the whole call
// before anything is read.
//
// [GetMany] (the function) does the same into a new map[string]T.
func (c *Cache) GetMany(ctx context.Context, keys []string, dst any) error {
	m, err := mapOf(dst)
	if err != nil {
		return err
	}
	elem := m.Type().Elem()
	return c.getMany(ctx, keys, func(i int, b []byte) error {
		v := reflect.New(elem)
		if err := c.decode(b, v.Interface(), true); err != nil {
			return err
		}
		m.SetMapIndex(reflect.ValueOf(keys[i]), v.Elem())
		return nil
	})
}

// mapOf returns the map dst is, or points to (made if nil).
func mapOf(dst any) (reflect.Value, error) {
	v := reflect.ValueOf(dst)
	if v.Kind() == reflect.Pointer && !v.IsNil() && v.Elem().Kind() == reflect.Map {
		if v.Elem().IsNil() {
			v.Elem().Set(reflect.MakeMap(v.Elem().Type()))
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Map || v.IsNil() || v.Type().Key().Kind() != reflect.String {
		return reflect.Value{}, fmt.Errorf("cache: get many: destination %T: want a map[string]V or a pointer to one", dst)
	}
	return v, nil
}

// GetMany reads keys in one call to the store and returns the values
// found, decoded as T, by key: see [Cache.GetMany]. The map holds what was
// found even when the error, a *[KeysError], names keys that failed.
func GetMany[T any](ctx context.Context, c *Cache, keys []string) (map[string]T, error) {
	out := make(map[string]T, len(keys))
	vals := make([]T, len(keys)) // decoded into in place: one allocation, not one per key
	err := c.getMany(ctx, keys, func(i int, b []byte) error {
		if err := c.decode(b, &vals[i], true); err != nil {
			return err
		}
		out[keys[i]] = vals[i]
		return nil
	})
	return out, err
}

// getMany reads keys and calls hit with the value of each that is there
// and fresh (without its header), counting hits and misses. An error of
// hit counts as that key's failure.
func (c *Cache) getMany(ctx context.Context, keys []string, hit func(i int, b []byte) error) error {
	if err := c.checkKeys("get", keys); err != nil {
		return err
	}
	var errs map[string]error
	fail := func(key string, err error) {
		if errs == nil {
			errs = make(map[string]error)
		}
		errs[key] = fmt.Errorf("cache: get %q: %w", key, err)
	}
	var now time.Time
	var tagged []taggedHit // checked together, after the reads
	var taggedAt []int     // their indexes in keys
	c.readMany(ctx, keys, func(i int, b []byte, found bool, err error) {
		key := keys[i]
		switch {
		case err != nil:
			c.failed(ctx, err)
			fail(key, err)
			return
		case found && len(b) > 0 && b[0] == EntryMagic[0]:
			e, perr := ParseEntry(b)
			if now.IsZero() {
				now = time.Now()
			}
			if found = perr == nil && e.freshAt(now); found {
				b = e.Value
				if len(e.Tags) > 0 {
					e.Value = slices.Clone(e.Value) // b is lent for the call only
					tagged = append(tagged, taggedHit{key, e})
					taggedAt = append(taggedAt, i)
					return
				}
			}
		}
		if !found {
			c.stats.misses.add()
			return
		}
		if err := hit(i, b); err != nil {
			c.stats.errors.add()
			fail(key, err)
			return
		}
		c.stats.hits.add()
	})
	if len(tagged) > 0 {
		hold, err := c.holdMany(ctx, tagged)
		for i, t := range tagged {
			switch {
			case err != nil:
				c.failed(ctx, err)
				fail(t.key, err)
			case !hold[i]:
				c.stats.misses.add()
			default:
				if err := hit(taggedAt[i], t.e.Value); err != nil {
					c.stats.errors.add()
					fail(t.key, err)
					continue
				}
				c.stats.hits.add()
			}
		}
	}
	return keysError(errs)
}

// taggedHit is a fresh tagged entry a bulk read found, its tags yet to be
// checked.
type taggedHit struct {
	key string
	e   Entry
}

// holdMany reports, for each entry, whether its tags still have the
// tokens it recorded, reading every tag's token once.
func (c *Cache) holdMany(ctx context.Context, hits []taggedHit) ([]bool, error) {
	var tags []string
	seen := map[string]bool{}
	for _, h := range hits {
		for _, t := range h.e.Tags {
			if !seen[t.Tag] {
				seen[t.Tag] = true
				tags = append(tags, t.Tag)
			}
		}
	}
	tokens, err := c.tagTokens(ctx, tags)
	if err != nil {
		return nil, err
	}
	now := make(map[string]string, len(tokens))
	for _, t := range tokens {
		now[t.Tag] = t.Token
	}
	out := make([]bool, len(hits))
	for i, h := range hits {
		out[i] = true
		for _, t := range h.e.Tags {
			if !sameToken([]byte(now[t.Tag]), t.Token) {
				out[i] = false
			}
		}
	}
	return out, nil
}

// readMany reads keys from the store, calling fn once per key: through
// the store's Batcher, past the breaker, when it has one; key by key
// otherwise.
func (c *Cache) readMany(ctx context.Context, keys []string, fn func(i int, b []byte, found bool, err error)) {
	if c.batcher != nil && c.borrow == nil {
		c.brkMany(ctx, "get_many", keys, func(todo []string, index []int) {
			c.batcher.GetMany(ctx, todo, func(j int, b []byte, found bool, err error) { fn(at(index, j), b, found, err) })
		}, func(i int, err error) { fn(i, nil, false, err) })
		return
	}
	for i, k := range keys {
		b, found, _, err := c.raw(ctx, k)
		fn(i, b, found, err)
	}
}

// brkMany runs a read of many keys past the breaker, if c has one. Keys
// whose invalidation waits to be replayed read as missing in this process:
// they are left out of the read (do receives the others and, for each,
// its index in keys) and reported through skip with a nil error. A read
// the breaker refuses reports every other key through skip with its error.
func (c *Cache) brkMany(ctx context.Context, op string, keys []string,
	do func(todo []string, index []int), skip func(i int, err error)) {
	var todo []string
	var index []int
	if c.brk == nil || c.brk.q.len() == 0 {
		todo = keys
	} else {
		for i, k := range keys {
			if c.brk.q.holds(k) {
				skip(i, nil)
				continue
			}
			todo, index = append(todo, k), append(index, i)
		}
	}
	if len(todo) == 0 {
		return
	}
	// do reports each key's outcome itself: an error here is the breaker's
	// refusal, made before the store was asked.
	if err := c.pastBreaker(ctx, op, "", func() error { do(todo, index); return nil }); err != nil {
		for j := range todo {
			skip(at(index, j), err)
		}
	}
}

// at is index[j], or j when index is nil (the keys were all taken).
func at(index []int, j int) int {
	if index == nil {
		return j
	}
	return index[j]
}

// SetMany stores each of items' values under its key for ttl, as
// [Cache.Set] does, in one call to the store (a pipeline on Redis, one
// round trip per Cluster node). Every key and value is checked and encoded
// before anything is written: an invalid key or ttl, or a value that
// cannot be encoded, fails the whole call. A *[KeysError] names the keys
// that could not be written when the others were.
func (c *Cache) SetMany(ctx context.Context, items map[string]any, ttl time.Duration) error {
	return SetMany(ctx, c, items, ttl)
}

// SetMany stores items as [Cache.SetMany] does, from a map of one type.
func SetMany[T any](ctx context.Context, c *Cache, items map[string]T, ttl time.Duration) error {
	batch := make([]Item, 0, len(items))
	for k, v := range items {
		if err := c.check("set", k); err != nil {
			return err
		}
		if err := checkTTL(k, ttl); err != nil {
			return err
		}
		b, err := c.encode(v)
		if err != nil {
			c.stats.errors.add()
			return fmt.Errorf("cache: set %q: encode %T: %w", k, v, err)
		}
		batch = append(batch, Item{k, b})
	}
	if ttl == 0 {
		ttl = c.defaultTTL
	}
	keys := make([]string, len(batch))
	for i, it := range batch {
		keys[i] = it.Key
	}
	return c.invalidateMany(ctx, "set", "set_many", keys, func() error { return c.batcher.SetMany(ctx, batch, ttl) },
		func(i int) error { return c.store.Set(ctx, batch[i].Key, batch[i].Value, ttl) })
}

// DeleteMany removes keys, as [Cache.Delete] does, in one call to the
// store (one round trip per Cluster node on Redis). Deleting a missing key
// is not an error; a *[KeysError] names the keys that could not be deleted
// when the others were. Like Delete, it is final for every load of those
// keys that began before it.
func (c *Cache) DeleteMany(ctx context.Context, keys []string) error {
	if err := c.checkKeys("delete", keys); err != nil {
		return err
	}
	return c.invalidateMany(ctx, "delete", "delete_many", keys, func() error { return c.batcher.DeleteMany(ctx, keys) },
		func(i int) error { return c.store.Delete(ctx, keys[i]) })
}

// invalidateMany is writeMany for the writes that invalidate (SetMany,
// DeleteMany): final, as a Set or a Delete is, for the loads of the keys
// that began before it (see stopLoads).
func (c *Cache) invalidateMany(ctx context.Context, op, call string, keys []string, batch func() error, one func(i int) error) error {
	for _, k := range keys {
		c.stopLoads(k, false)
	}
	err := c.writeMany(ctx, op, call, keys, batch, one)
	for _, k := range keys {
		c.endInvalidation(k, false)
	}
	return err
}

// writeMany writes keys (a Set or Delete of each, op in errors): with one
// call of the store's Batcher, batch (call, for metrics and traces), past
// the breaker, or key by key with one (each past the breaker already)
// otherwise. It counts, queues what failed
// with its outcome unknown (as a single write does), and returns a
// *KeysError naming the keys that failed.
func (c *Cache) writeMany(ctx context.Context, op, call string, keys []string, batch func() error, one func(i int) error) error {
	if len(keys) == 0 {
		return nil
	}
	errs := make(map[string]error)
	note := func(k string, err error) {
		if err != nil {
			c.failed(ctx, err)
			errs[k] = fmt.Errorf("cache: %s %q: %w", op, k, err)
		} else {
			c.countWrite(op)
		}
	}
	if c.batcher == nil || c.borrow != nil {
		for i, k := range keys {
			note(k, one(i))
		}
		return keysError(errs)
	}
	var mark uint64
	if c.brk != nil {
		mark = c.brk.q.mark()
	}
	err := c.pastBreaker(ctx, call, "", batch)
	ke, partial := errors.AsType[*KeysError](err)
	for _, k := range keys {
		kerr := err
		if partial {
			kerr = ke.Errs[k]
		}
		if c.brk != nil {
			kerr = c.brk.settleWrite(ctx, k, false, mark, kerr)
		}
		note(k, kerr)
	}
	return keysError(errs)
}

// countWrite counts a write that succeeded: a tag's token is bookkeeping,
// not a value.
func (c *Cache) countWrite(op string) {
	switch op {
	case "delete":
		c.stats.deletes.add()
	case "set":
		c.stats.sets.add()
	}
}
