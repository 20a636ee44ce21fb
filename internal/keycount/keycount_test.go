package keycount

import (
	"strconv"
	"testing"
)

// TestCounts: a key's count moves with its own changes and with changes of
// every key, and not with reads.
func TestCounts(t *testing.T) {
	var c Counts
	before := c.Of("k")
	c.Changed("k")
	if c.Of("k") == before {
		t.Error("Changed(k) did not move k's count")
	}
	before = c.Of("k")
	c.ChangedAll()
	if c.Of("k") == before {
		t.Error("ChangedAll did not move k's count")
	}
	before = c.Of("k")
	moved := 0
	for i := range 100 {
		c.Changed("other:" + strconv.Itoa(i))
		if c.Of("k") != before {
			moved++
			before = c.Of("k")
		}
	}
	if moved > 10 {
		t.Errorf("k's count moved with %d of 100 other keys' changes; its shard holds 1/%d of the keys", moved, Shards)
	}
	first, again := c.Shard("k"), c.Shard("k")
	if first != again || c.All() != &c.all {
		t.Error("Shard or All is not stable")
	}
}
