package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/ushka-go/ushka/cache"
)

// Bulk and atomic calls: GetMany with one MGET (a pipeline of GETs on a
// Cluster, which rueidis sends to each node in one round trip), SetMany and
// DeleteMany as pipelines, Add with SET NX, Increment with INCRBY (and,
// with a ttl, SET NX PX before it in one MULTI/EXEC), in one round trip.

var (
	_ cache.Batcher = (*Store)(nil)
	_ cache.Adder   = (*Store)(nil)
	_ cache.Counter = (*Store)(nil)
)

// GetMany implements [cache.Batcher]. Keys the near cache holds are
// answered from it; the others are read with one MGET, or on a Cluster
// with a GET per key pipelined to each node (MGET takes keys of one slot
// only), and are not kept in the near cache.
func (s *Store) GetMany(ctx context.Context, keys []string, fn func(i int, value []byte, found bool, err error)) {
	todo := make([]int, 0, len(keys))
	if s.NearEnabled() && !s.closed.Load() {
		for i, k := range keys {
			if e, ok := s.near.get(k); ok {
				fn(i, e.value, !e.absent, nil)
			} else {
				todo = append(todo, i)
			}
		}
	} else {
		for i := range keys {
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		return
	}
	ctx, cancel, c, err := s.begin(ctx)
	defer cancel()
	if err != nil {
		err = s.fail("get", err)
		for _, i := range todo {
			fn(i, nil, false, err)
		}
		return
	}
	answer := func(i int, m rueidis.RedisMessage) {
		b, err := m.AsBytes()
		switch {
		case rueidis.IsRedisNil(err):
			fn(i, nil, false, nil)
		case err != nil:
			fn(i, nil, false, s.fail("get", err))
		default:
			if b == nil {
				b = []byte{}
			}
			fn(i, b, true, nil)
		}
	}
	if c.Mode() != rueidis.ClientModeCluster {
		cmd := c.B().Mget().Key(s.prefixed(keys, todo)...).Build()
		arr, err := c.Do(ctx, cmd).ToArray()
		if err == nil && len(arr) != len(todo) {
			err = errors.New("MGET answered " + strconv.Itoa(len(arr)) + " values for " + strconv.Itoa(len(todo)) + " keys")
		}
		if err != nil {
			err = s.fail("get", err)
			for _, i := range todo {
				fn(i, nil, false, err)
			}
			return
		}
		for j, i := range todo {
			answer(i, arr[j])
		}
		return
	}
	cmds := make(rueidis.Commands, len(todo))
	for j, i := range todo {
		cmds[j] = c.B().Get().Key(s.prefix + keys[i]).Build()
	}
	for j, r := range c.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil && !rueidis.IsRedisNil(err) {
			fn(todo[j], nil, false, s.fail("get", err))
			continue
		}
		m, _ := r.ToMessage()
		answer(todo[j], m)
	}
}

// prefixed returns the keys at the indexes todo, with the prefix.
func (s *Store) prefixed(keys []string, todo []int) []string {
	out := make([]string, len(todo))
	for j, i := range todo {
		out[j] = s.prefix + keys[i]
	}
	return out
}

// SetMany implements [cache.Batcher]: a SET [PX] per item, pipelined.
func (s *Store) SetMany(ctx context.Context, items []cache.Item, ttl time.Duration) error {
	keys := make([]string, len(items))
	for i, it := range items {
		keys[i] = it.Key
	}
	return s.writeMany(ctx, "set", keys, func(c rueidis.Client, i int) rueidis.Completed {
		set := c.B().Set().Key(s.prefix + items[i].Key).Value(rueidis.BinaryString(items[i].Value))
		if ttl > 0 {
			return set.PxMilliseconds(pxMillis(ttl)).Build()
		}
		return set.Build()
	})
}

// DeleteMany implements [cache.Batcher]: a DEL per key, pipelined.
func (s *Store) DeleteMany(ctx context.Context, keys []string) error {
	return s.writeMany(ctx, "delete", keys, func(c rueidis.Client, i int) rueidis.Completed {
		return c.B().Del().Key(s.prefix + keys[i]).Build()
	})
}

// writeMany sends cmd of each key in one pipeline (one round trip per
// Cluster node) and returns a *cache.KeysError naming the keys that failed
// when others did not. Every key is forgotten by the near cache afterwards,
// whatever the outcome, as after a single write.
func (s *Store) writeMany(ctx context.Context, op string, keys []string, cmd func(c rueidis.Client, i int) rueidis.Completed) error {
	if len(keys) == 0 {
		return nil
	}
	defer func() {
		for _, k := range keys {
			s.forget(k)
		}
	}()
	ctx, cancel, c, err := s.begin(ctx)
	defer cancel()
	if err != nil {
		return s.fail(op, err)
	}
	cmds := make(rueidis.Commands, len(keys))
	for i := range keys {
		cmds[i] = cmd(c, i)
	}
	var errs map[string]error
	var first error
	for i, r := range c.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			if errs == nil {
				errs = make(map[string]error)
			}
			errs[keys[i]] = s.fail(op, err)
			first = errs[keys[i]]
		}
	}
	switch {
	case len(errs) == 0:
		return nil
	case len(errs) == len(keys):
		return first // all failed: one error, as a single call's
	}
	return &cache.KeysError{Errs: errs}
}

// Add implements [cache.Adder] with SET key value NX [PX ms].
func (s *Store) Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	defer s.forget(key)
	ctx, cancel, c, err := s.begin(ctx)
	defer cancel()
	if err != nil {
		return false, s.fail("add", err)
	}
	set := c.B().Set().Key(s.prefix + key).Value(rueidis.BinaryString(value)).Nx()
	var cmd rueidis.Completed
	if ttl > 0 {
		cmd = set.PxMilliseconds(pxMillis(ttl)).Build()
	} else {
		cmd = set.Build()
	}
	err = c.Do(ctx, cmd).Error()
	switch {
	case rueidis.IsRedisNil(err):
		return false, nil // the key is there
	case err != nil:
		return false, s.fail("add", err)
	}
	return true, nil
}

// Increment implements [cache.Counter]: INCRBY alone for a ttl of 0; with
// a ttl, SET key 0 NX PX ttl and INCRBY in one MULTI/EXEC transaction, so
// that only a key it creates gets the ttl. Either way one round trip, and
// no script, which costs the server ten times an INCRBY.
func (s *Store) Increment(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	defer s.forget(key)
	ctx, cancel, c, err := s.begin(ctx)
	defer cancel()
	if err != nil {
		return 0, s.fail("increment", err)
	}
	k := s.prefix + key
	incr := c.B().Incrby().Key(k).Increment(delta).Build()
	var n int64
	if ttl <= 0 {
		n, err = c.Do(ctx, incr).AsInt64()
	} else {
		rs := c.DoMulti(ctx,
			c.B().Multi().Build(),
			c.B().Set().Key(k).Value("0").Nx().PxMilliseconds(pxMillis(ttl)).Build(),
			incr,
			c.B().Exec().Build())
		var arr []rueidis.RedisMessage
		if arr, err = rs[3].ToArray(); err == nil {
			if len(arr) != 2 {
				err = errors.New("EXEC answered " + strconv.Itoa(len(arr)) + " replies for 2 commands")
			} else {
				n, err = arr[1].AsInt64()
			}
		}
	}
	if err != nil {
		if re, ok := rueidis.IsRedisErr(err); ok && notInteger(re.Error()) {
			return 0, fmt.Errorf("%w (%w)", cache.ErrNotInteger, s.fail("increment", err))
		}
		return 0, s.fail("increment", err)
	}
	return n, nil
}

// notInteger reports whether a Redis error reply is INCRBY's refusal of a
// value that is not an integer, or of a sum that overflows.
func notInteger(msg string) bool {
	return strings.Contains(msg, "not an integer") || strings.Contains(msg, "overflow")
}
