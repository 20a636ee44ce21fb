package cli_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/internal/redistest"
	"github.com/ushka-go/ushka/internal/testutil"
)

// TestCacheInvalidateTag: the built binary, another process, invalidates a
// tag; this process's cache then reads the tagged entries as missing and
// the others as they were. A bad tag is a usage error.
func TestCacheInvalidateTag(t *testing.T) {
	srv := redistest.Start(t)
	url := "redis://" + srv.Addr
	cfgPath := testutil.WriteConfig(t, fmt.Sprintf("[cache]\nenabled = true\nbackend = \"redis\"\nredis_url = %q\ntimeout = \"2s\"\n", url))
	c, err := cache.Open(t.Context(), cache.Config{Enabled: true, Backend: "redis", RedisURL: cache.SecretURL(url), NearCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := t.Context()
	for k, tags := range map[string][]string{"a": {"user:1"}, "b": {"user:2", "team:x"}, "c": {"user:3"}} {
		if err := c.Set(ctx, k, k, 0, cache.WithTags(tags...)); err != nil {
			t.Fatal(err)
		}
	}
	expect(t, run(t, "cache", "invalidate-tag", "--config", cfgPath, "user:1", "team:x"), 0, `invalidated the entries tagged "user:1", "team:x"`, "")
	eventually(t, func() bool {
		got, err := cache.GetMany[string](ctx, c, []string{"a", "b", "c"})
		return err == nil && len(got) == 1 && got["c"] == "c"
	}, "after invalidate-tag user:1 team:x, only c reads")
	expect(t, run(t, "cache", "invalidate-tag", "--config", cfgPath), 2, "", "want TAG...")
	expect(t, run(t, "cache", "invalidate-tag", "--config", cfgPath, ""), 2, "", "invalid tag")
}

// eventually waits up to a second for cond: a near cache hears of another
// process's write a moment after it.
func eventually(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not so within 1s: %s", what)
		}
	}
}
