package redis_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/cache/cachetest"
	"github.com/ushka-go/ushka/cache/redis"
	"github.com/ushka-go/ushka/internal/redistest"
	"github.com/ushka-go/ushka/internal/testutil"
)

// nearConfig is the config of a near-cached store on url.
func nearConfig(url, prefix string) cache.Config {
	return cache.Config{RedisURL: cache.SecretURL(url), KeyPrefix: prefix, NearCache: true}
}

// nearConformance runs the Store and NearCacher suites on url with the
// near cache on; the second client of the NearCacher suite has it on too.
func nearConformance(t *testing.T, url string) {
	newStore := func(t *testing.T) cache.Store { return openStore(t, nearConfig(url, uniquePrefix(t))) }
	cachetest.TestStore(t, newStore)
	cachetest.TestOutage(t, newStore)
	cachetest.TestNearCacher(t, func(t *testing.T) (a, b cache.Store) {
		prefix := uniquePrefix(t)
		return openStore(t, nearConfig(url, prefix)), openStore(t, nearConfig(url, prefix))
	})
}

func TestNearConformance(t *testing.T) {
	srv := redistest.Start(t)
	nearConformance(t, "redis://"+srv.Addr+"/0")
}

// TestNearConformanceOtherDatabase: invalidations of a database other than
// 0 reach the near cache too (tracking is per connection, the keys per
// database).
func TestNearConformanceOtherDatabase(t *testing.T) {
	srv := redistest.Start(t)
	nearConformance(t, "redis://"+srv.Addr+"/3")
}

func TestNearConformanceCluster(t *testing.T) {
	nearConformance(t, clusterURL(redistest.StartCluster(t, 3)))
}

// getNear reads key through s's near cache, failing the test on an error.
func getNear(t *testing.T, s *redis.Store, key string) (string, bool, bool) {
	t.Helper()
	b, found, near, err := s.GetNear(t.Context(), key)
	if err != nil {
		t.Fatalf("GetNear(%q): %v", key, err)
	}
	return string(b), found, near
}

// waitNear reads key through s until it answers want (found or not), and
// fails the test if that takes longer than 5s.
func waitNear(t *testing.T, s *redis.Store, key, want string, wantFound bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, found, _ := getNear(t, s, key)
		if found == wantFound && (!found || v == want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GetNear(%q) = %q, %v 5s after the write, want %q, %v", key, v, found, want, wantFound)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestNearServesFromMemory: a key read once is read again without a round
// trip, even with the server stopped (SIGSTOP), and the cache's Stats count
// it as a near hit.
func TestNearServesFromMemory(t *testing.T) {
	srv := redistest.Start(t)
	c := openCache(t, nearConfig("redis://"+srv.Addr, uniquePrefix(t)))
	ctx := t.Context()
	if err := c.Set(ctx, "k", "v", 0); err != nil {
		t.Fatal(err)
	}
	var v string
	if found, err := c.Get(ctx, "k", &v); err != nil || !found || v != "v" {
		t.Fatalf("first Get = %q, %v, %v", v, found, err)
	}
	if found, err := c.Get(ctx, "missing", &v); err != nil || found {
		t.Fatalf("first Get of a missing key = %v, %v", found, err)
	}
	srv.Pause()
	defer srv.Resume()
	start := time.Now()
	for range 1000 {
		if found, err := c.Get(ctx, "k", &v); err != nil || !found || v != "v" {
			t.Fatalf("Get with the server stopped = %q, %v, %v; want it from the near cache", v, found, err)
		}
		if found, err := c.Get(ctx, "missing", &v); err != nil || found {
			t.Fatalf("Get of a missing key with the server stopped = %v, %v; want a near miss", found, err)
		}
	}
	t.Logf("2000 near reads with the server stopped in %v", time.Since(start))
	st := c.Stats()
	if st.Hits != 1001 || st.NearHits != 1000 || st.Misses != 1001 {
		t.Errorf("Stats = %+v, want 1001 hits of which 1000 near, 1001 misses", st)
	}
	if st.NearEntries != 2 || st.NearBytes <= 0 {
		t.Errorf("Stats = %+v, want 2 near entries and their bytes", st)
	}
}

// TestNearSeesEveryWriter: a key near-cached by one client is read anew
// once a client that is not Ushka at all (redis-cli, another language)
// writes it with SET, DEL, PEXPIRE or FLUSHDB. (Ushka's own clients are in
// cachetest.TestNearCacher.)
func TestNearSeesEveryWriter(t *testing.T) {
	srv := redistest.Start(t)
	prefix := uniquePrefix(t)
	reader := openStore(t, nearConfig("redis://"+srv.Addr, prefix))
	held := func(key, want string) {
		t.Helper()
		srv.Do("SET", prefix+key, want)
		waitNear(t, reader, key, want, true)
		if v, _, near := getNear(t, reader, key); !near || v != want {
			t.Fatalf("GetNear(%q) = %q, near %v, want %q from the near cache", key, v, near, want)
		}
	}
	held("a", "1")
	held("a", "2")
	srv.Do("DEL", prefix+"a")
	waitNear(t, reader, "a", "", false)
	held("a", "3")
	srv.Do("PEXPIRE", prefix+"a", "1")
	waitNear(t, reader, "a", "", false)
	held("b", "1")
	srv.Do("FLUSHDB")
	waitNear(t, reader, "b", "", false)
}

// TestNearReadYourWrites: once this process's Set, Delete or Clear has
// returned, its next read never gives the earlier value, though Redis
// sends the invalidation of a write after the write's reply
// (redis/rueidis#534). Every read comes right after the write, on the
// same store, many times over.
func TestNearReadYourWrites(t *testing.T) {
	srv := redistest.Start(t)
	s := openStore(t, nearConfig("redis://"+srv.Addr, uniquePrefix(t)))
	ctx := t.Context()
	for i := range 2000 {
		want := fmt.Sprint(i)
		if err := s.Set(ctx, "k", []byte(want), 0); err != nil {
			t.Fatal(err)
		}
		if v, found, _ := getNear(t, s, "k"); !found || v != want {
			t.Fatalf("read after Set(%q) = %q, %v", want, v, found)
		}
		if v, found, near := getNear(t, s, "k"); !found || v != want || !near {
			t.Fatalf("second read after Set(%q) = %q, %v, near %v", want, v, found, near)
		}
		switch i % 3 {
		case 0:
			if err := s.Delete(ctx, "k"); err != nil {
				t.Fatal(err)
			}
		case 1:
			if err := s.Clear(ctx); err != nil {
				t.Fatal(err)
			}
		default:
			continue
		}
		if v, found, _ := getNear(t, s, "k"); found {
			t.Fatalf("read after Delete or Clear = %q", v)
		}
	}
}

// TestNearExpiry: a near-cached value is never read once Redis has expired
// it: a read that begins after the write returned plus the ttl is a miss.
// (Redis itself, counting whole milliseconds on a clock it reads once per
// command, may answer the value up to a millisecond or so later: those
// reads are allowed 2ms.)
func TestNearExpiry(t *testing.T) {
	srv := redistest.Start(t)
	s := openStore(t, nearConfig("redis://"+srv.Addr, uniquePrefix(t)))
	ctx := t.Context()
	const ttl = 50 * time.Millisecond
	for i := range 20 {
		key := fmt.Sprint("k", i)
		if err := s.Set(ctx, key, []byte("v"), ttl); err != nil {
			t.Fatal(err)
		}
		expired := time.Now().Add(ttl)
		nearHits := 0
		for {
			start := time.Now()
			_, found, near := getNear(t, s, key)
			if near && found {
				nearHits++
			}
			if found && near && start.After(expired) {
				t.Fatalf("near read %v after the ttl ended found the value", start.Sub(expired))
			}
			if found && start.After(expired.Add(2*time.Millisecond)) {
				t.Fatalf("read %v after the ttl ended found the value in Redis", start.Sub(expired))
			}
			if !found && start.After(expired.Add(2*time.Millisecond)) {
				break
			}
		}
		if nearHits == 0 {
			t.Fatalf("no near hit on %s before it expired", key)
		}
	}
}

// TestNearDropsEverythingWhenTheConnectionIsLost: a restarted Redis (its
// data gone, then written anew by another client) is not answered from
// what the near cache held before.
func TestNearDropsEverythingWhenTheConnectionIsLost(t *testing.T) {
	srv := redistest.Start(t)
	url := "redis://" + srv.Addr
	prefix := uniquePrefix(t)
	reader := openStore(t, nearConfig(url, prefix))
	ctx := t.Context()
	for _, k := range []string{"a", "b"} {
		if err := reader.Set(ctx, k, []byte("before"), 0); err != nil {
			t.Fatal(err)
		}
		getNear(t, reader, k)
		if _, _, near := getNear(t, reader, k); !near {
			t.Fatalf("%s is not near-cached", k)
		}
	}
	srv.Stop()
	srv.Restart()
	// Written by another client while the reader was not connected: no
	// invalidation can reach it.
	srv.Do("SET", prefix+"a", "after")
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, _, _, err := reader.GetNear(ctx, "a")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no read 5s after the restart: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if v, found, _ := getNear(t, reader, "a"); v != "after" {
		t.Fatalf("after a restart, a = %q, %v; want the value written since", v, found)
	}
	if v, found, _ := getNear(t, reader, "b"); found {
		t.Fatalf("after a restart that lost b, b = %q", v)
	}
}

// TestNearCluster: on a Cluster of three masters, a reader near-caches keys
// of every slot, and a second client's writes reach it.
func TestNearCluster(t *testing.T) {
	url := clusterURL(redistest.StartCluster(t, 3))
	prefix := uniquePrefix(t)
	reader := openStore(t, nearConfig(url, prefix))
	writer := openStore(t, nearConfig(url, prefix))
	ctx := t.Context()
	const n = 200
	for i := range n {
		if err := writer.Set(ctx, fmt.Sprint("k", i), []byte("1"), 0); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		k := fmt.Sprint("k", i)
		getNear(t, reader, k)
		if v, _, near := getNear(t, reader, k); !near || v != "1" {
			t.Fatalf("%s = %q, near %v", k, v, near)
		}
	}
	for i := range n {
		if err := writer.Set(ctx, fmt.Sprint("k", i), []byte("2"), 0); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		waitNear(t, reader, fmt.Sprint("k", i), "2", true)
	}
	if err := writer.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		waitNear(t, reader, fmt.Sprint("k", i), "", false)
	}
}

// TestNearSentinel: a near cache on a Sentinel-managed master.
func TestNearSentinel(t *testing.T) {
	master := redistest.Start(t)
	sentinel := redistest.StartSentinel(t, master, "mymaster")
	url := "redis://" + sentinel.Addr + "?master_set=mymaster"
	prefix := uniquePrefix(t)
	reader := openStore(t, nearConfig(url, prefix))
	writer := openStore(t, nearConfig(url, prefix))
	ctx := t.Context()
	if err := writer.Set(ctx, "k", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	getNear(t, reader, "k")
	if v, _, near := getNear(t, reader, "k"); !near || v != "1" {
		t.Fatalf("k = %q, near %v", v, near)
	}
	if err := writer.Set(ctx, "k", []byte("2"), 0); err != nil {
		t.Fatal(err)
	}
	waitNear(t, reader, "k", "2", true)
}

// TestNearRefusedTracking: a user whose ACL forbids CLIENT cannot turn
// client tracking on. The cache says so once, with the server's reason,
// and works without a near cache.
func TestNearRefusedTracking(t *testing.T) {
	srv := redistest.Start(t)
	srv.Do("ACL", "SETUSER", "app", "on", ">secret", "~*", "&*", "+@all", "-client")
	var logs testutil.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	cfg := nearConfig("redis://app:secret@"+srv.Addr, uniquePrefix(t))
	c := openCache(t, cfg, cache.WithLogger(logger))
	ctx := t.Context()
	var wg sync.WaitGroup
	for i := range 8 { // several calls racing to be the first
		wg.Go(func() {
			k := fmt.Sprint("k", i)
			if err := c.Set(ctx, k, "v", 0); err != nil {
				t.Errorf("Set: %v", err)
			}
			for range 3 {
				var v string
				if found, err := c.Get(ctx, k, &v); err != nil || !found || v != "v" {
					t.Errorf("Get = %q, %v, %v", v, found, err)
				}
			}
		})
	}
	wg.Wait()
	if st := c.Stats(); st.NearHits != 0 || st.Hits != 24 {
		t.Errorf("Stats = %+v, want 24 hits, none near", st)
	}
	out := logs.String()
	if n := strings.Count(out, "near cache off"); n != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, "NOPERM") || strings.Contains(out, "secret") {
		t.Fatalf("warning does not name the server's reason, or shows the password:\n%s", out)
	}
	t.Logf("the warning: %s", out)
}

// TestNearMaxBytes: the near cache of a process stays within
// near_cache_max_bytes under a workload far larger than it: in what it
// counts, and in the Go heap it holds (measured without the race detector,
// whose allocations differ).
func TestNearMaxBytes(t *testing.T) {
	srv := redistest.Start(t)
	prefix := uniquePrefix(t)
	const maxBytes = 4 << 20
	cfg := nearConfig("redis://"+srv.Addr, prefix)
	cfg.NearCacheMaxBytes = maxBytes
	value := bytes.Repeat([]byte("x"), 1000)
	const n = 40_000 // 40 MB of values: ten times the bound
	writer := openStore(t, cache.Config{RedisURL: cfg.RedisURL, KeyPrefix: prefix})
	ctx := t.Context()
	parallel := func(f func(k string) error) {
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Go(func() {
				for i := w; i < n; i += 16 {
					if err := f(fmt.Sprint("k", i)); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	parallel(func(k string) error { return writer.Set(ctx, k, value, 0) })
	s := openStore(t, cfg)
	// Reads from 16 goroutines make rueidis open all its connections, with
	// their buffers: before the measure, not in it.
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := range 20 {
				if _, _, _, err := s.GetNear(ctx, fmt.Sprint("connect", w, ":", i)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	before := testutil.HeapAlloc()
	parallel(func(k string) error {
		_, _, _, err := s.GetNear(ctx, k)
		return err
	})
	held := int64(testutil.HeapAlloc()) - int64(before)
	entries, used := s.NearUsage()
	t.Logf("after reading %d values of %d bytes: %d entries, %d bytes counted, heap grew by %d bytes (%.2f x the bound)",
		n, len(value), entries, used, held, float64(held)/maxBytes)
	if used > maxBytes || entries == 0 {
		t.Fatalf("near cache counts %d bytes in %d entries, want at most %d", used, entries, maxBytes)
	}
	if !raceEnabled && held > maxBytes*11/10 {
		t.Fatalf("the heap grew by %d bytes, more than 1.1 x near_cache_max_bytes (%d)", held, maxBytes)
	}
	runtime.KeepAlive(s)
}

// TestNearCloseEndsReads: Close with reads waiting on a stopped server
// returns, and ends them.
func TestNearCloseEndsReads(t *testing.T) {
	srv := redistest.Start(t)
	s, err := redis.Open(t.Context(), nearConfig("redis://"+srv.Addr, uniquePrefix(t)))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := s.GetNear(t.Context(), "warm"); err != nil {
		t.Fatal(err)
	}
	srv.Pause()
	defer srv.Resume()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	for i := range 20 {
		if _, _, _, err := s.GetNear(ctx, fmt.Sprint("k", i)); err == nil {
			t.Fatal("a read of a stopped server succeeded")
		}
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return within 5s with reads outstanding on a stopped server")
	}
}

// TestNearClusterFailover: a manual failover turns each replica into the
// master of its slots and each old master into its replica, under a reader
// that near-caches keys of every slot. Another client's writes, made on the
// new masters, reach the reader: it never keeps serving what the old
// masters gave it.
func TestNearClusterFailover(t *testing.T) {
	cl := redistest.StartClusterWithReplicas(t, 3, 1)
	url := clusterURL(cl)
	prefix := uniquePrefix(t)
	reader := openStore(t, nearConfig(url, prefix))
	writer := openStore(t, nearConfig(url, prefix))
	ctx := t.Context()
	const n = 100
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprint("k", i)
		if err := writer.Set(ctx, keys[i], []byte("before"), 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range keys {
		getNear(t, reader, k)
		if v, _, near := getNear(t, reader, k); !near || v != "before" {
			t.Fatalf("%s = %q, near %v", k, v, near)
		}
	}
	// One at a time: a manual failover pauses its master's clients until
	// the replica has caught up, and takes over in the next election.
	for _, r := range cl.Replicas() {
		if got := r.Do("CLUSTER", "FAILOVER"); got != "OK" {
			t.Fatalf("CLUSTER FAILOVER on %s: %s", r.Addr, got)
		}
		deadline := time.Now().Add(30 * time.Second)
		for !strings.HasPrefix(r.Do("ROLE"), "master\n") {
			if time.Now().After(deadline) {
				t.Fatalf("%s is not a master 30s after CLUSTER FAILOVER: %s", r.Addr, r.Do("CLUSTER", "INFO"))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, k := range keys {
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := writer.Set(ctx, k, []byte("after"), 0)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Set(%s) on the new masters: %v", k, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, k := range keys {
		waitNear(t, reader, k, "after", true)
	}
}

// TestNearRefusedAfterAnACLChange: a server that stops allowing client
// tracking while the cache runs (its ACL changed, then its connections were
// cut) gets the same one warning, and the cache goes on without a near
// cache within a few seconds.
func TestNearRefusedAfterAnACLChange(t *testing.T) {
	srv := redistest.Start(t)
	srv.Do("ACL", "SETUSER", "app", "on", ">secret", "~*", "&*", "+@all")
	var logs testutil.Buffer
	cfg := nearConfig("redis://app:secret@"+srv.Addr, uniquePrefix(t))
	c := openCache(t, cfg, cache.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	ctx := t.Context()
	expectOneNearHit(t, c, "before the ACL changes")
	var v string
	srv.Do("ACL", "SETUSER", "app", "-client")
	srv.Do("CLIENT", "KILL", "USER", "app")
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Set(ctx, "k", "w", 0)
		found, gerr := c.Get(ctx, "k", &v)
		if err == nil && gerr == nil && found && v == "w" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10s after tracking was refused: Set %v, Get %q %v %v\n%s", err, v, found, gerr, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	before := c.Stats().NearHits
	for range 3 {
		if found, err := c.Get(ctx, "k", &v); err != nil || !found || v != "w" {
			t.Fatalf("Get without a near cache = %q, %v, %v", v, found, err)
		}
	}
	if st := c.Stats(); st.NearHits != before {
		t.Fatalf("Stats = %+v: near hits after tracking was refused", st)
	}
	if n := strings.Count(logs.String(), "near cache off"); n != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", n, logs.String())
	}
}

// TestNearTrackingTableFull: when Redis's tracking table is full
// (tracking-table-max-keys), Redis forgets the oldest tracked keys and
// invalidates them; the near cache drops them, so that later writes, which
// Redis no longer reports, are read. With NOLOOP, Redis 7 skipped the
// invalidation for the client whose own command made it evict: the hostile
// review found 93 of 200 keys stale.
func TestNearTrackingTableFull(t *testing.T) {
	srv := redistest.Start(t)
	srv.Do("CONFIG", "SET", "tracking-table-max-keys", "10")
	prefix := uniquePrefix(t)
	reader := openStore(t, nearConfig("redis://"+srv.Addr, prefix))
	const n = 200
	for i := range n {
		srv.Do("SET", fmt.Sprint(prefix, "k", i), "1")
	}
	for i := range n {
		getNear(t, reader, fmt.Sprint("k", i))
		getNear(t, reader, fmt.Sprint("k", i))
	}
	for i := range n {
		srv.Do("SET", fmt.Sprint(prefix, "k", i), "2")
	}
	for i := range n {
		waitNear(t, reader, fmt.Sprint("k", i), "2", true)
	}
}

// TestNearACLChangeWithoutReconnecting: a server whose ACL stops allowing
// CLIENT while the near cache's connections stay open. Tracking goes on on
// those connections (it needs no CLIENT command per read in OPTOUT mode), so
// other clients' writes still arrive. With OPTIN, every read ran untracked
// after the change and its value was kept: the hostile review's reader
// served a value overwritten 5s before.
func TestNearACLChangeWithoutReconnecting(t *testing.T) {
	srv := redistest.Start(t)
	srv.Do("ACL", "SETUSER", "app", "on", ">secret", "~*", "&*", "+@all")
	prefix := uniquePrefix(t)
	reader := openStore(t, nearConfig("redis://app:secret@"+srv.Addr, prefix))
	for i := range 20 { // every connection rueidis makes, connected
		getNear(t, reader, fmt.Sprint("warm", i))
	}
	srv.Do("ACL", "SETUSER", "app", "-client")
	srv.Do("SET", prefix+"b", "1")
	waitNear(t, reader, "b", "1", true)
	getNear(t, reader, "b")
	srv.Do("SET", prefix+"b", "2")
	waitNear(t, reader, "b", "2", true)
}

// TestNearClusterSlotMovesWhileAKeyIsMissing: an empty slot moves to
// another master (CLUSTER SETSLOT, as a resharding or a new node does),
// then a key of it, read as missing before, is written on the new master.
// Moving an empty slot deletes nothing, so the old master sends no
// invalidation: on a Cluster, the near cache keeps no missing keys. (It did
// at first; the hostile review's reader read the key as missing 10s after
// the write.)
func TestNearClusterSlotMovesWhileAKeyIsMissing(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	prefix := uniquePrefix(t)
	reader := openStore(t, nearConfig(clusterURL(cl), prefix))
	key := prefix + "k"
	slot := cl.Masters()[0].Do("CLUSTER", "KEYSLOT", key)
	ids := map[*redistest.Server]string{}
	var src *redistest.Server
	for _, m := range cl.Masters() {
		ids[m] = m.Do("CLUSTER", "MYID")
		if ownsSlot(m, slot) {
			src = m
		}
	}
	if src == nil {
		t.Fatalf("no master owns slot %s", slot)
	}
	var dst *redistest.Server
	for _, m := range cl.Masters() {
		if m != src {
			dst = m
			break
		}
	}
	for range 2 {
		if _, found, _ := getNear(t, reader, "k"); found {
			t.Fatal("k exists before the test writes it")
		}
	}
	dst.Do("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[src])
	src.Do("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[dst])
	for _, m := range cl.Masters() {
		m.Do("CLUSTER", "SETSLOT", slot, "NODE", ids[dst])
	}
	deadline := time.Now().Add(10 * time.Second)
	for dst.Do("SET", key, "written on the new master") != "OK" {
		if time.Now().After(deadline) {
			t.Fatal("the slot's new master does not take the write")
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitNear(t, reader, "k", "written on the new master", true)
}

// ownsSlot reports whether m serves slot, by its own line of CLUSTER NODES.
func ownsSlot(m *redistest.Server, slot string) bool {
	n, _ := strconv.Atoi(slot)
	for _, line := range strings.Split(m.Do("CLUSTER", "NODES"), "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.Contains(f[2], "myself") {
			continue
		}
		for _, r := range f[8:] {
			lo, hi, ok := strings.Cut(r, "-")
			if !ok {
				hi = lo
			}
			l, err1 := strconv.Atoi(lo)
			h, err2 := strconv.Atoi(hi)
			if err1 == nil && err2 == nil && l <= n && n <= h {
				return true
			}
		}
	}
	return false
}

// TestNearMissesWaitingForAHungServerAreBounded: a hung server (SIGSTOP)
// and many misses whose callers give up: each near read runs on until its
// reply or its connection's end, but no more than 4,096 given up wait at
// once; the misses past that fail at once, saying why.
func TestNearMissesWaitingForAHungServerAreBounded(t *testing.T) {
	srv := redistest.Start(t)
	s := openStore(t, nearConfig("redis://"+srv.Addr, uniquePrefix(t)))
	if _, _, _, err := s.GetNear(t.Context(), "connect"); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	srv.Pause()
	defer srv.Resume()
	var refused atomic.Int32
	var wg sync.WaitGroup
	for w := range 10 {
		wg.Go(func() {
			for i := range 500 {
				ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
				_, _, _, err := s.GetNear(ctx, fmt.Sprint("k", w, ":", i))
				cancel()
				if err != nil && strings.Contains(err.Error(), "still wait for Redis") {
					refused.Add(1)
				}
			}
		})
	}
	wg.Wait()
	grew := runtime.NumGoroutine() - before
	t.Logf("5000 misses on a hung server: %d goroutines more, %d refused at once", grew, refused.Load())
	// The bound is checked before a read starts, not reserved: the 10
	// callers racing may start a few reads past it.
	if grew > 4096+100 || refused.Load() < 5000-4096-100 {
		t.Fatalf("%d goroutines more and %d misses refused, want at most about 4096 waiting and the rest refused", grew, refused.Load())
	}
}

// TestNearBurstOnASlowServerIsNotRefused: 5,000 misses at once while the
// server stalls for 300ms, their callers willing to wait: every one is
// answered. (The first bound on near reads counted these too, and refused
// 904 of them; the second hostile review found it.)
func TestNearBurstOnASlowServerIsNotRefused(t *testing.T) {
	srv := redistest.Start(t)
	cfg := nearConfig("redis://"+srv.Addr, uniquePrefix(t))
	cfg.Timeout = 10 * time.Second
	s := openStore(t, cfg)
	if _, _, _, err := s.GetNear(t.Context(), "connect"); err != nil {
		t.Fatal(err)
	}
	srv.Pause()
	var wg sync.WaitGroup
	var failed atomic.Int32
	var first atomic.Value
	for i := range 5000 {
		wg.Go(func() {
			if _, _, err := s.Get(t.Context(), fmt.Sprint("k", i)); err != nil {
				failed.Add(1)
				first.CompareAndSwap(nil, err.Error())
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	srv.Resume()
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of 5000 reads failed on a server that answered within 300ms; the first: %v", n, first.Load())
	}
}

// expectOneNearHit sets "k" through c, reads it twice, and checks that the
// second read was c's one near hit.
func expectOneNearHit(t *testing.T, c *cache.Cache, when string) {
	t.Helper()
	ctx := t.Context()
	if err := c.Set(ctx, "k", "v", 0); err != nil {
		t.Fatal(err)
	}
	var v string
	for range 2 {
		if _, err := c.Get(ctx, "k", &v); err != nil {
			t.Fatal(err)
		}
	}
	if st := c.Stats(); st.NearHits != 1 {
		t.Fatalf("Stats = %+v, want one near hit %s", st, when)
	}
}
