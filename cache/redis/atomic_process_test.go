package redis_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/internal/redistest"
)

const atomicChildEnv = "USHKA_ATOMIC_CHILD" // "url|child"

// TestAtomicAcrossProcesses runs four OS processes (this test binary again)
// on one redis-server, started together: each increments one counter 200
// times, tries to Add one key, and asks GetOrSetMany for the same 30 keys.
// The counter is exactly 800, exactly one Add wins, and each of the 30 keys
// is loaded once in all, whichever process loads it. Then an invalidation
// of a tag here makes every child's tagged entry read as missing, through
// its near cache.
func TestAtomicAcrossProcesses(t *testing.T) {
	if os.Getenv(atomicChildEnv) != "" {
		t.Skip("in a child")
	}
	srv := redistest.Start(t)
	const n = 4
	kids := spawnChildren(t, n, "TestAtomicChildProcess", func(i int) string {
		return fmt.Sprintf("%s=redis://%s|%d", atomicChildEnv, srv.Addr, i)
	})
	kids.send("go")
	loaded := map[string]int{}
	added, done := 0, 0
	for done < n {
		e := kids.next(60*time.Second, "done")
		switch e.words[0] {
		case "loaded":
			loaded[e.words[1]]++
		case "added":
			added++
		case "done":
			done++
		}
	}
	if got := srv.Do("GET", "ushka:hits"); got != "800" {
		t.Errorf("4 processes incrementing 200 times each: the counter is %s, want 800", got)
	}
	if added != 1 {
		t.Errorf("%d processes' Add of one key added it, want exactly 1", added)
	}
	if len(loaded) != 30 {
		t.Errorf("%d keys loaded, want 30", len(loaded))
	}
	// Each child wrote an entry tagged grp and reads it from its near
	// cache: one invalidation here, another process, is seen by all.
	c, err := cache.Open(t.Context(), cache.Config{Enabled: true, Backend: "redis", RedisURL: cache.SecretURL("redis://" + srv.Addr)}, cache.WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.InvalidateTags(t.Context(), "grp"); err != nil {
		t.Fatal(err)
	}
	kids.send("check")
	for range n {
		if e := kids.next(10*time.Second, "gone"); e.words[0] != "gone" {
			t.Errorf("child %d said %v, want gone", e.child, e.words)
		}
	}
	for k, times := range loaded {
		if times != 1 {
			t.Errorf("key %s loaded %d times across the processes, want once", k, times)
		}
	}
}

// TestAtomicChildProcess is one process of TestAtomicAcrossProcesses.
func TestAtomicChildProcess(t *testing.T) {
	spec := os.Getenv(atomicChildEnv)
	if spec == "" {
		t.Skip("run by TestAtomicAcrossProcesses")
	}
	url, child, _ := strings.Cut(spec, "|")
	c, err := cache.Open(context.Background(), cache.Config{Enabled: true, Backend: "redis", RedisURL: cache.SecretURL(url), Timeout: 2 * time.Second, NearCache: true},
		cache.WithLogger(nil))
	if err != nil {
		fmt.Println("LOCK error", err)
		return
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.Ping(ctx); err != nil {
		fmt.Println("LOCK error", strings.ReplaceAll(err.Error(), " ", "_"))
		return
	}
	fmt.Println("LOCK ready")
	stdin := bufio.NewReader(os.Stdin)
	if line, _ := stdin.ReadString('\n'); strings.TrimSpace(line) != "go" {
		return
	}
	keys := make([]string, 30)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	got, err := cache.GetOrSetMany(ctx, c, keys, time.Minute, func(_ context.Context, missing []string) (map[string]int, error) {
		out := make(map[string]int, len(missing))
		for _, k := range missing {
			fmt.Println("LOCK loaded", k)
			out[k] = 1
		}
		time.Sleep(50 * time.Millisecond) // a slow source: the others come while it loads
		return out, nil
	})
	if err != nil || len(got) != len(keys) {
		fmt.Println("LOCK error getorsetmany", len(got), strings.ReplaceAll(fmt.Sprint(err), " ", "_"))
		return
	}
	for range 200 {
		if _, err := c.Increment(ctx, "hits", 1, 0); err != nil {
			fmt.Println("LOCK error", strings.ReplaceAll(err.Error(), " ", "_"))
			return
		}
	}
	if ok, err := c.Add(ctx, "winner", child, 0); err != nil {
		fmt.Println("LOCK error", strings.ReplaceAll(err.Error(), " ", "_"))
		return
	} else if ok {
		fmt.Println("LOCK added")
	}
	tk := "tagged" + child
	if err := c.Set(ctx, tk, "v", 0, cache.WithTags("grp")); err != nil {
		fmt.Println("LOCK error", strings.ReplaceAll(err.Error(), " ", "_"))
		return
	}
	if _, found, _ := cache.Get[string](ctx, c, tk); !found { // now in the near cache, with grp's token
		fmt.Println("LOCK error tagged_entry_not_read")
		return
	}
	fmt.Println("LOCK done")
	if line, _ := stdin.ReadString('\n'); strings.TrimSpace(line) != "check" {
		return
	}
	for deadline := time.Now().Add(time.Second); ; time.Sleep(time.Millisecond) {
		_, found, err := cache.Get[string](ctx, c, tk)
		if err == nil && !found {
			fmt.Println("LOCK gone")
			return
		}
		if time.Now().After(deadline) {
			fmt.Println("LOCK error still_read_1s_after_the_invalidation", err)
			return
		}
	}
}
