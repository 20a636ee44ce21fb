// Package keycount counts the changes of keys by shard of keys, so that a
// reader can tell cheaply that no change reached a key since it looked: it
// reads the key's count, then the key, and later compares the count.
package keycount

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// Shards is how many counters the keys share: a key's count also moves
// with the changes of 1/Shards of the other keys.
const Shards = 1024

// Counts counts changes by shard of keys, and changes of every key at
// once. Its zero value is ready to use; it must not be copied.
type Counts struct {
	once   sync.Once
	seed   maphash.Seed
	all    atomic.Uint64
	shards [Shards]atomic.Uint64
}

// Shard returns the counter of key's shard.
func (c *Counts) Shard(key string) *atomic.Uint64 {
	c.once.Do(func() { c.seed = maphash.MakeSeed() })
	return &c.shards[maphash.String(c.seed, key)%Shards]
}

// All returns the counter of the changes of every key.
func (c *Counts) All() *atomic.Uint64 { return &c.all }

// Of returns key's count: it moves with every change of key counted after
// it is read.
func (c *Counts) Of(key string) uint64 { return c.Shard(key).Load() + c.all.Load() }

// Changed counts a change of key. A writer counts it once the change is
// done, so that a reader that read the count before sees it move.
func (c *Counts) Changed(key string) { c.Shard(key).Add(1) }

// ChangedAll counts a change of every key.
func (c *Counts) ChangedAll() { c.all.Add(1) }
