//go:build !race

package cache_test

import (
	"testing"

	"github.com/ushka-go/ushka/cache"
)

// TestGetManyAllocatesOnlyTheValues: on in_memory, GetMany of 100 keys
// allocates the map and one value per key, and nothing else per key.
func TestGetManyAllocatesOnlyTheValues(t *testing.T) {
	c := newCache(t)
	ctx := t.Context()
	keys := keysN("k", 100)
	items := map[string]any{}
	for _, k := range keys {
		items[k] = 12345
	}
	if err := c.SetMany(ctx, items, 0); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(50, func() {
		m, err := cache.GetMany[int](ctx, c, keys)
		if err != nil || len(m) != 100 {
			t.Fatal(m, err)
		}
	})
	t.Logf("GetMany[int] of 100 keys: %.0f allocations", allocs)
	if allocs > 20 {
		t.Errorf("GetMany[int] of 100 in-memory keys: %.0f allocations, want the map's few: an int needs none", allocs)
	}
}
