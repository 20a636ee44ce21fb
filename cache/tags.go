package cache

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Tags: entries written with WithTags are invalidated together by
// InvalidateTags, in one round trip whatever their number, on a Cluster
// too, with no bookkeeping that grows with the entries.
//
// Each tag has a token, stored under TagKeyPrefix + tag: none until the tag
// is first invalidated, and a new random one at each invalidation. A
// tagged entry records, in its header, the token each of its tags had when
// its write (or its load) began. A read of a tagged entry reads its tags'
// tokens (one more round trip, or none from the near cache) and takes the
// entry for missing unless every token is the one it recorded. So an
// invalidation removes nothing: it changes one key per tag, and the
// entries written before it stop being read and expire as they would.
//
// A token lives TagLifetime after its invalidation, and a tagged entry at
// most TagLifetime: an entry never outlives the tokens it could be
// compared with, and the tokens of tags no longer invalidated go away.

// TagKeyPrefix starts the keys that hold the tags' tokens, under the
// cache's key_prefix. Keys starting with it are refused as a cache's own.
const TagKeyPrefix = "__ushka_tag:"

// TagLifetime is how long a tag's token lives after its invalidation, and
// the longest ttl of a tagged entry: a longer ttl, or 0, is cut to it.
const TagLifetime = 30 * 24 * time.Hour

// TagsOption is the option [WithTags] returns: it applies to [Cache.Set]
// and to [GetOrSet].
type TagsOption struct{ tags []string }

// SetOption changes one [Cache.Set] call.
type SetOption interface {
	applySet(*setOptions)
	String() string
}

type setOptions struct{ tags []string }

// WithTags writes the entry with tags, so that [Cache.InvalidateTags] of any
// of them invalidates it, in every process: on [Cache.Set], and on
// [GetOrSet] (and GetOrSetMany) for the values they load. A tagged entry
// costs a read one more round trip on Redis (the tags' tokens, in one
// MGET; none when the near cache holds them), and lives at most
// [TagLifetime]. A tag is 1 to 256 bytes.
func WithTags(tags ...string) TagsOption { return TagsOption{tags} }

func (o TagsOption) applySet(s *setOptions) { s.tags = append(s.tags, o.tags...) }
func (o TagsOption) applyGetOrSet(p *policy) {
	p.tags = append(p.tags[:len(p.tags):len(p.tags)], o.tags...)
}
func (o TagsOption) String() string { return fmt.Sprintf("WithTags(%q)", o.tags) }

// MaxTagLen is the longest tag.
const MaxTagLen = 256

// checkTags returns the error of a tag that is empty or too long.
func checkTags(op, key string, tags []string) error {
	for _, t := range tags {
		var p string
		switch {
		case t == "":
			p = "empty"
		case len(t) > MaxTagLen:
			p = fmt.Sprintf("%d bytes, longer than %d", len(t), MaxTagLen)
		default:
			continue
		}
		if key != "" {
			op = fmt.Sprintf("%s %q", op, key) // only on the error path: a tagged hit formats nothing
		}
		return sentinelf(ErrInvalidKey, "cache: %s: invalid tag: %s", op, p)
	}
	return nil
}

// InvalidateTags invalidates every entry written with any of tags, in every
// process, in one call to the store (one round trip per Cluster node on
// Redis), whatever the number of entries: once it has returned nil, no
// read returns, and no GetOrSet stores, an entry with one of the tags
// whose write or load began before it. Callers already waiting for such a
// load may get its value: they asked first.
//
// An InvalidateTags that fails for want of an answer returns its error and
// is queued, as a failed Delete is: the tags read as invalidated in this
// process at once, and in every process once the backend answers and the
// queue is replayed (it deletes the tags' tokens, which invalidates them as
// well). One the backend refused is not queued: the caller retries it.
func (c *Cache) InvalidateTags(ctx context.Context, tags ...string) error {
	if c.closed.Load() {
		return sentinelf(ErrClosed, "cache: invalidate tags: cache is closed")
	}
	if err := checkTags("invalidate tags", "", tags); err != nil {
		return err
	}
	if len(tags) == 0 {
		return nil
	}
	c.stopTagLoads(tags)
	token := []byte(newToken())
	items := make([]Item, len(tags))
	for i, t := range tags {
		items[i] = Item{TagKeyPrefix + t, token}
	}
	keys := make([]string, len(items))
	for i, it := range items {
		keys[i] = it.Key
	}
	// A write of the tokens whose outcome is unknown is queued as their
	// Deletes (as any failed Set is), replayed before this process reads
	// the store again: a token that is gone matches nothing, which
	// invalidates the tag as a new one does; meanwhile the tags read as
	// invalidated here.
	err := c.writeMany(ctx, "invalidate tag", "set_many", keys, func() error { return c.batcher.SetMany(ctx, items, TagLifetime) },
		func(i int) error { return c.store.Set(ctx, items[i].Key, items[i].Value, TagLifetime) })
	c.stopTagLoads(tags) // the loads that began while the tokens changed may have read the old ones
	if err != nil {
		return fmt.Errorf("cache: invalidate tags %q: %w", tags, err) // counted per token by writeMany
	}
	return nil
}

// stopTagLoads makes the flights loading values with any of tags
// unjoinable, and stops them from storing their values.
func (c *Cache) stopTagLoads(tags []string) {
	if c.nflights.Load() == 0 {
		return
	}
	var fs []*flight
	c.flightMu.Lock()
	for _, l := range c.flights {
		for _, f := range l {
			if hasAny(f.tags, tags) {
				f.unjoined = true
				fs = append(fs, f)
			}
		}
	}
	c.flightMu.Unlock()
	for _, f := range fs {
		f.write.Lock()
		f.invalidated = true
		f.write.Unlock()
	}
}

func hasAny(have, tags []string) bool {
	for _, h := range have {
		for _, t := range tags {
			if h == t {
				return true
			}
		}
	}
	return false
}

// writeTokens returns the tokens tags have now, for a write: a tag that
// has none is given one first (SET NX, so that concurrent writers agree).
// An entry thus always records real tokens, and a token that is missing
// when the entry is read (expired, or evicted by a store short of memory)
// never matches: the entry reads as missing rather than come back.
func (c *Cache) writeTokens(ctx context.Context, tags []string) ([]TagToken, error) {
	tokens, err := c.tagTokens(ctx, tags)
	if err != nil {
		return nil, err
	}
	for i := range tokens {
		if tokens[i].Token != "" {
			continue
		}
		key, token := TagKeyPrefix+tokens[i].Tag, newToken()
		added, err := c.addBytes(ctx, key, []byte(token), TagLifetime)
		if err != nil {
			return nil, err
		}
		if added {
			tokens[i].Token = token
			continue
		}
		again, err := c.tagTokens(ctx, tags[i:i+1]) // another writer's, made meanwhile
		if err != nil {
			return nil, err
		}
		if tokens[i].Token = again[0].Token; tokens[i].Token == "" {
			return nil, fmt.Errorf("the token of tag %q vanished as it was made", tags[i])
		}
	}
	return tokens, nil
}

// tagTokens returns the tokens tags have now ("" for a tag that has none:
// never written or invalidated, expired, or evicted): one call to the
// store, or, with a near cache, one read per tag that it usually answers.
func (c *Cache) tagTokens(ctx context.Context, tags []string) ([]TagToken, error) {
	out := make([]TagToken, len(tags))
	for i, t := range tags {
		out[i].Tag = t
	}
	if len(tags) == 1 || c.nearOn() { // readMany would read the near cache's keys from Redis
		for i, t := range tags {
			b, found, _, err := c.raw(ctx, TagKeyPrefix+t)
			if err != nil {
				return nil, err
			}
			if found {
				out[i].Token = string(b)
			}
		}
		return out, nil
	}
	keys := make([]string, len(tags))
	for i, t := range tags {
		keys[i] = TagKeyPrefix + t
	}
	var first error
	c.readMany(ctx, keys, func(i int, b []byte, found bool, err error) {
		switch {
		case err != nil:
			first = err
		case found:
			out[i].Token = string(b)
		}
	})
	return out, first
}

// tagsHold reports whether every tag of e still has the token e recorded:
// whether no InvalidateTags of them came since e's write began.
func (c *Cache) tagsHold(ctx context.Context, e Entry) (bool, error) {
	if len(e.Tags) > 1 && !c.nearOn() {
		hold, err := c.holdMany(ctx, []taggedHit{{e: e}}) // one read of every token
		return err == nil && hold[0], err
	}
	// A tag at a time, from the near cache when it holds the token:
	// compared where it lies, without copying it out.
	for _, t := range e.Tags {
		b, found, _, err := c.raw(ctx, TagKeyPrefix+t.Tag)
		if err != nil {
			return false, err
		}
		if !found || !sameToken(b, t.Token) {
			return false, nil
		}
	}
	return true, nil
}

// sameToken reports whether a token read, cur, is the one recorded: a
// missing or empty token matches nothing (see writeTokens).
func sameToken(cur []byte, recorded string) bool {
	return len(cur) > 0 && string(cur) == recorded
}

// tagged returns b as a tagged entry of key, with the tokens tags have
// now, and its ttl (0: the cache's default) cut to TagLifetime.
func (c *Cache) tagged(ctx context.Context, key string, b []byte, ttl time.Duration, tags []string) ([]byte, time.Duration, error) {
	if err := checkTags("set", key, tags); err != nil {
		return nil, 0, err
	}
	tokens, err := c.writeTokens(ctx, tags)
	if err != nil {
		c.failed(ctx, err)
		return nil, 0, fmt.Errorf("cache: set %q: reading its tags: %w", key, err)
	}
	if ttl == 0 {
		ttl = c.defaultTTL
	}
	return Entry{Value: b, Tags: tokens}.Append(nil), taggedTTL(ttl), nil
}

// tagsMovedSince reports whether a tag of f's changed token since f's
// load read them: an InvalidateTags, maybe by another process, came after
// its load began. A flight that has not read them yet will read the new
// ones.
func (c *Cache) tagsMovedSince(ctx context.Context, f *flight) bool {
	c.flightMu.Lock()
	tokens := f.tokens
	c.flightMu.Unlock()
	if len(tokens) == 0 {
		return false
	}
	ok, err := c.tagsHold(ctx, Entry{Tags: tokens})
	return err == nil && !ok
}

// leaveFlight makes the caller no longer one of f's waiters, and f
// unjoinable: its value is of before an invalidation.
func (c *Cache) leaveFlight(f *flight) {
	c.flightMu.Lock()
	f.waiters--
	f.unjoined = true
	c.flightMu.Unlock()
}

// tagsStillHold is tagsHold, false when the tokens cannot be read.
func (c *Cache) tagsStillHold(ctx context.Context, e Entry) bool {
	ok, err := c.tagsHold(ctx, e)
	return err == nil && ok
}

// taggedTTL is ttl for a tagged entry: at most TagLifetime (0 too).
func taggedTTL(ttl time.Duration) time.Duration {
	if ttl == 0 || ttl > TagLifetime {
		return TagLifetime
	}
	return ttl
}

// reserved reports whether key is one of the cache's own (a tag's token).
func reserved(key string) bool { return strings.HasPrefix(key, TagKeyPrefix) }
