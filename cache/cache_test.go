package cache_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/cache/cachetest"
	"github.com/ushka-go/ushka/cache/memory"
	"github.com/ushka-go/ushka/codec"
	"github.com/ushka-go/ushka/internal/testutil"
)

// TestMain checks that no goroutine outlives the tests. rueidis's own
// reconnection delay (DelayDo) may still be sleeping after a test that
// killed or stopped its Redis: it ends by itself, and is not ours.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*call).DelayDo.func1"),
		// A Cluster client's slot-map refresh that finds connections it no
		// longer needs closes them 5s later, on a goroutine that ends by
		// itself (the bulk tests run on a Cluster).
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*clusterClient)._refresh.func2"))
}

type report struct {
	GeneratedAt string         `json:"generated_at"`
	Data        []int          `json:"data"`
	Meta        map[string]any `json:"meta,omitempty"`
}

func newCache(t *testing.T, opts ...cache.Option) *cache.Cache {
	t.Helper()
	s, err := memory.New(memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := cache.New(s, append([]cache.Option{cache.WithLogger(nil)}, opts...)...)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestDiscardStoreConformance(t *testing.T) {
	cachetest.TestDiscardStore(t, func(*testing.T) cache.Store { return cache.DiscardStore() })
}

func TestInvalidKeys(t *testing.T) {
	c := newCache(t)
	ctx := t.Context()
	for _, key := range []string{"", strings.Repeat("x", cache.MaxKeyLen+1)} {
		var v string
		if _, err := c.Get(ctx, key, &v); !errors.Is(err, cache.ErrInvalidKey) {
			t.Errorf("Get(%d-byte key) = %v, want ErrInvalidKey", len(key), err)
		}
		if err := c.Set(ctx, key, "v", 0); !errors.Is(err, cache.ErrInvalidKey) {
			t.Errorf("Set(%d-byte key) = %v, want ErrInvalidKey", len(key), err)
		}
		if err := c.Delete(ctx, key); !errors.Is(err, cache.ErrInvalidKey) {
			t.Errorf("Delete(%d-byte key) = %v, want ErrInvalidKey", len(key), err)
		}
		called := false
		_, err := cache.GetOrSet(ctx, c, key, 0, func(context.Context) (int, error) { called = true; return 1, nil })
		if !errors.Is(err, cache.ErrInvalidKey) || called {
			t.Errorf("GetOrSet(%d-byte key) = %v (load called: %v), want ErrInvalidKey without a load", len(key), err, called)
		}
	}
	if err := c.Set(ctx, strings.Repeat("x", cache.MaxKeyLen), "v", 0); err != nil {
		t.Errorf("Set(%d-byte key) = %v, want nil", cache.MaxKeyLen, err)
	}
	if got := c.Stats().Errors; got != 0 {
		t.Errorf("Stats().Errors = %d, want 0: invalid keys are the caller's mistake, not store errors", got)
	}
}

func TestNegativeTTL(t *testing.T) {
	c := newCache(t)
	ctx := t.Context()
	err := c.Set(ctx, "k", "v", -time.Second)
	if !errors.Is(err, cache.ErrInvalidTTL) {
		t.Fatalf("Set with ttl -1s = %v, want ErrInvalidTTL", err)
	}
	if want := `cache: set "k": invalid ttl -1s`; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if _, found, _ := cache.Get[string](ctx, c, "k"); found {
		t.Error("a Set with a negative ttl wrote the value")
	}
	if _, err := cache.GetOrSet(ctx, c, "k", -1, func(context.Context) (string, error) { return "v", nil }); !errors.Is(err, cache.ErrInvalidTTL) {
		t.Errorf("GetOrSet with ttl -1ns = %v, want ErrInvalidTTL", err)
	}
}

func TestRoundTripEveryCodec(t *testing.T) {
	for _, cd := range []codec.Codec{codec.JSON, codec.Msgpack} {
		t.Run(cd.Name(), func(t *testing.T) {
			c := newCache(t, cache.WithCodec(cd))
			ctx := t.Context()
			want := report{GeneratedAt: "2026-11-25T10:00:00Z", Data: []int{1, 2, 3}}
			if err := c.Set(ctx, "report", want, time.Minute); err != nil {
				t.Fatal(err)
			}
			got, found, err := cache.Get[report](ctx, c, "report")
			if err != nil || !found {
				t.Fatalf("Get = (%v, %v), want found", found, err)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("Get = %+v, want %+v", got, want)
			}
			// Mutating what was read, or what was written, leaves the cache alone.
			got.Data[0] = 99
			want.Data[1] = 99
			again, _, _ := cache.Get[report](ctx, c, "report")
			if fmt.Sprint(again.Data) != "[1 2 3]" {
				t.Fatalf("after mutating values outside the cache, Get = %v, want [1 2 3]", again.Data)
			}

			for _, v := range []any{42, 3.5, true, "plain string", []string{"a", "b"}, map[string]int{"a": 1}} {
				if err := c.Set(ctx, "v", v, 0); err != nil {
					t.Fatalf("Set(%T) = %v", v, err)
				}
			}
			n, _, err := cache.Get[int](ctx, c, "n")
			if err != nil || n != 0 {
				t.Fatalf("Get of a missing key = (%v, %v), want zero value and nil", n, err)
			}
		})
	}
}

func TestBytesAndStringsPassThrough(t *testing.T) {
	c := newCache(t)
	ctx := t.Context()
	raw := []byte{0, 1, 2, 0xff}
	if err := c.Set(ctx, "raw", raw, 0); err != nil {
		t.Fatal(err)
	}
	raw[0] = 9 // the cache kept its own copy
	b, _, _ := cache.Get[[]byte](ctx, c, "raw")
	if string(b) != "\x00\x01\x02\xff" {
		t.Fatalf("Get[[]byte] = %q, want the bytes as written", b)
	}
	b[1] = 9
	b2, _, _ := cache.Get[[]byte](ctx, c, "raw")
	if string(b2) != "\x00\x01\x02\xff" {
		t.Fatalf("mutating a []byte read back changed the cache: %q", b2)
	}
	if err := c.Set(ctx, "s", `{"a":1}`, 0); err != nil {
		t.Fatal(err)
	}
	s, _, _ := cache.Get[string](ctx, c, "s")
	if s != `{"a":1}` {
		t.Fatalf("Get[string] = %q", s)
	}
	// A string holding JSON is readable as the struct it encodes.
	var m struct{ A int }
	if found, err := c.Get(ctx, "s", &m); err != nil || !found || m.A != 1 {
		t.Fatalf("Get of a JSON string into a struct = (%v, %v, %+v)", found, err, m)
	}
	empty, found, _ := cache.Get[[]byte](ctx, c, "missing")
	if found || empty != nil {
		t.Fatalf("Get[[]byte] of a missing key = (%q, %v)", empty, found)
	}
}

func TestUnencodableValueFailsAtSet(t *testing.T) {
	for _, cd := range []codec.Codec{codec.JSON, codec.Msgpack} {
		c := newCache(t, cache.WithCodec(cd))
		for _, v := range []any{make(chan int), func() {}, math.Inf(1)} {
			if cd == codec.Msgpack {
				if _, ok := v.(float64); ok {
					continue // msgpack encodes infinities
				}
			}
			if err := c.Set(t.Context(), "k", v, 0); err == nil {
				t.Errorf("%s: Set(%T) = nil, want an encode error", cd.Name(), v)
			}
		}
		if _, found, _ := cache.Get[string](t.Context(), c, "k"); found {
			t.Errorf("%s: an unencodable value was stored", cd.Name())
		}
	}
}

func TestUndecodableValueIsCountedError(t *testing.T) {
	c := newCache(t)
	ctx := t.Context()
	if err := c.Set(ctx, "k", "not json", 0); err != nil {
		t.Fatal(err)
	}
	var r report
	found, err := c.Get(ctx, "k", &r)
	if err == nil || found {
		t.Fatalf("Get of invalid JSON into a struct = (%v, %v), want an error", found, err)
	}
	if !strings.Contains(err.Error(), `"k"`) {
		t.Errorf("error %q does not name the key", err)
	}
	if got := c.Stats().Errors; got != 1 {
		t.Errorf("Stats().Errors = %d, want 1", got)
	}
	if _, err := c.Get(ctx, "k", nil); err == nil {
		t.Error("Get into nil = nil error")
	}
}

func TestDefaultTTL(t *testing.T) {
	c := newCache(t, cache.WithDefaultTTL(30*time.Millisecond))
	ctx := t.Context()
	if err := c.Set(ctx, "k", "v", 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "long", "v", time.Hour); err != nil {
		t.Fatal(err)
	}
	time.Sleep(80 * time.Millisecond)
	if _, found, _ := cache.Get[string](ctx, c, "k"); found {
		t.Error("ttl 0 with a default TTL of 30ms still found after 80ms")
	}
	if _, found, _ := cache.Get[string](ctx, c, "long"); !found {
		t.Error("an explicit ttl was overridden by the default TTL")
	}
}

func TestClosed(t *testing.T) {
	c := newCache(t)
	ctx := t.Context()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close = %v, want nil", err)
	}
	var s string
	_, err := c.Get(ctx, "k", &s)
	checks := map[string]error{
		"Get":    err,
		"Set":    c.Set(ctx, "k", "v", 0),
		"Delete": c.Delete(ctx, "k"),
		"Clear":  c.Clear(ctx),
		"Ping":   c.Ping(ctx),
	}
	_, checks["GetOrSet"] = cache.GetOrSet(ctx, c, "k", 0, func(context.Context) (int, error) { return 1, nil })
	for op, err := range checks {
		if !errors.Is(err, cache.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", op, err)
		}
	}
}

func TestStats(t *testing.T) {
	c := newCache(t)
	ctx := t.Context()
	c.Set(ctx, "a", 1, 0)
	cache.Get[int](ctx, c, "a")
	cache.Get[int](ctx, c, "a")
	cache.Get[int](ctx, c, "b")
	c.Delete(ctx, "a")
	got := c.Stats()
	want := cache.Stats{Hits: 2, Misses: 1, Sets: 1, Deletes: 1}
	if got != want {
		t.Fatalf("Stats = %+v, want %+v", got, want)
	}
	if r := got.HitRatio(); r < 0.66 || r > 0.67 {
		t.Fatalf("HitRatio = %v, want 2/3", r)
	}
}

func TestOpenDisabledIsAWorkingCache(t *testing.T) {
	c, err := cache.Open(t.Context(), cache.Config{}) // enabled = false
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := t.Context()
	if err := c.Set(ctx, "k", "v", time.Minute); err != nil {
		t.Fatalf("Set on a disabled cache = %v, want nil", err)
	}
	if _, found, err := cache.Get[string](ctx, c, "k"); found || err != nil {
		t.Fatalf("Get on a disabled cache = (%v, %v), want a miss", found, err)
	}
	calls := 0
	for range 2 {
		v, err := cache.GetOrSet(ctx, c, "k", time.Minute, func(context.Context) (string, error) { calls++; return "fresh", nil })
		if err != nil || v != "fresh" {
			t.Fatalf("GetOrSet on a disabled cache = (%q, %v)", v, err)
		}
	}
	if calls != 2 {
		t.Fatalf("load ran %d times on a disabled cache, want every time (2)", calls)
	}
}

func TestOpenUnknownBackend(t *testing.T) {
	_, err := cache.Open(t.Context(), cache.Config{Enabled: true, Backend: "memcache"})
	if err == nil {
		t.Fatal("Open with backend memcache = nil error")
	}
	want := `cache: config: backend: unknown backend "memcache" (registered: in_memory`
	if !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error = %q, want prefix %q", err, want)
	}
	var fe *cache.FieldError
	if !errors.As(err, &fe) || fe.Field != "backend" {
		t.Fatalf("error %v is not a *FieldError for backend", err)
	}
}

func TestOpenInMemoryWithoutImport(t *testing.T) {
	c, err := cache.Open(t.Context(), cache.Config{Enabled: true, Codec: "msgpack", MaxEntries: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Codec() != codec.Msgpack {
		t.Fatalf("codec = %s, want msgpack", c.Codec().Name())
	}
	if err := c.Set(t.Context(), "k", report{Data: []int{7}}, 0); err != nil {
		t.Fatal(err)
	}
	r, found, err := cache.Get[report](t.Context(), c, "k")
	if err != nil || !found || r.Data[0] != 7 {
		t.Fatalf("Get = (%+v, %v, %v)", r, found, err)
	}
}

func TestRegisterPanics(t *testing.T) {
	open := func(context.Context, cache.Config) (cache.Store, error) { return cache.DiscardStore(), nil }
	for name, f := range map[string]func(){
		"empty name": func() { cache.Register("", open) },
		"bad name":   func() { cache.Register("Mem-Cache", open) },
		"nil opener": func() { cache.Register("x_nil", nil) },
		"duplicate":  func() { cache.Register("in_memory", open) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register with %s did not panic", name)
				}
			}()
			f()
		}()
	}
}

var (
	registerTestBackend sync.Once
	testBackendGot      = make(chan cache.Config, 1)
)

func TestRegisteredBackendIsOpened(t *testing.T) {
	registerTestBackend.Do(func() { // once per process, whatever -count says
		cache.Register("test_backend", func(_ context.Context, cfg cache.Config) (cache.Store, error) {
			testBackendGot <- cfg
			return memory.New(memory.Options{})
		})
	})
	c, err := cache.Open(t.Context(), cache.Config{Enabled: true, Backend: "test_backend"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := <-testBackendGot
	if got.KeyPrefix != cache.DefaultKeyPrefix || got.Timeout != cache.DefaultTimeout {
		t.Fatalf("opener got %+v, want defaults applied", got)
	}
	names := cache.Backends()
	if !slices.IsSorted(names) || !slices.Contains(names, "in_memory") || !slices.Contains(names, "test_backend") {
		t.Fatalf("Backends() = %s, want sorted names including in_memory and test_backend", names)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		cfg   cache.Config
		field string
	}{
		{cache.Config{Codec: "xml"}, "codec"},
		{cache.Config{DefaultTTL: -1}, "default_ttl"},
		{cache.Config{Timeout: -1}, "timeout"},
		{cache.Config{MaxBytes: -1}, "max_bytes"},
		{cache.Config{MaxEntries: -1}, "max_entries"},
		{cache.Config{MaxBytes: 1, MaxEntries: 1}, "max_entries"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		var fe *cache.FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("Validate(%+v) = %v, want an error for %s", tt.cfg, err, tt.field)
		}
	}
	if err := (cache.Config{}).Validate(); err != nil {
		t.Errorf("zero Config: Validate = %v, want nil", err)
	}
}

func TestSecretURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"redis://localhost:6379/0", "redis://localhost:6379/0"},
		{"redis://:s3cret@localhost:6379/0", "redis://:***@localhost:6379/0"},
		{"rediss://user:s3cret@host:6380", "rediss://user:***@host:6380"},
		{"redis://host?sentinel_password=s3cret&addr=h2:1&master_set=m", "redis://host?addr=h2%3A1&master_set=m&sentinel_password=***"},
		{"redis://host?sentinel_password=s3cret&addr=h2:1", "redis://host?sentinel_password=***&***"}, // invalid: shown reduced
		{"redis://user:s3cret@host:bad port", "redis://***@host:***"},
		{"::s3cret", "***"},
		{"", ""},
	}
	for _, tt := range tests {
		u := cache.SecretURL(tt.in)
		if got := u.String(); got != tt.want {
			t.Errorf("SecretURL(%q).String() = %q, want %q", tt.in, got, tt.want)
		}
		var b strings.Builder
		slog.New(slog.NewTextHandler(&b, nil)).Info("x", "url", u)
		if fmt.Sprintf("%v %s", u, u) != tt.want+" "+tt.want || strings.Contains(b.String(), "s3cret") {
			t.Errorf("SecretURL(%q) leaks its secret: %v / %s", tt.in, u, b.String())
		}
		// %#v too, of the URL and of a Config holding it (found by the
		// hostile review of issue 8: it printed the raw string).
		if gs := fmt.Sprintf("%#v %#v", u, cache.Config{RedisURL: u}); strings.Contains(gs, "s3cret") {
			t.Errorf("%%#v of SecretURL(%q) leaks its secret: %s", tt.in, gs)
		}
	}
}

// failingStore is a Store whose operations fail while down is set: a stand-in
// for an unreachable back end, to test how the front end handles failures.
// The Redis backend's tests kill a real redis-server instead.
type failingStore struct {
	cache.Store
	down atomic.Bool
}

var errDown = errors.New("connection refused")

func (s *failingStore) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if s.down.Load() {
		return nil, false, errDown
	}
	return s.Store.Get(ctx, key)
}

func (s *failingStore) Set(ctx context.Context, key string, v []byte, ttl time.Duration) error {
	if s.down.Load() {
		return errDown
	}
	return s.Store.Set(ctx, key, v, ttl)
}

func (s *failingStore) Delete(ctx context.Context, key string) error {
	if s.down.Load() {
		return errDown
	}
	return s.Store.Delete(ctx, key)
}

func (s *failingStore) Clear(ctx context.Context) error {
	if s.down.Load() {
		return errDown
	}
	return s.Store.Clear(ctx)
}

func TestFailuresAreReportedNotHidden(t *testing.T) {
	inner, _ := memory.New(memory.Options{})
	fs := &failingStore{Store: inner}
	var logs testutil.Buffer
	// Each failure is reported as it happens; the breaker, which would
	// refuse calls after a few of them, is kept shut here (see
	// TestBreakerOpensAndFailsFast).
	c := cache.New(fs, cache.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))), cache.WithBreaker(cache.BreakerConfig{Failures: 1 << 30}))
	defer c.Close()
	ctx := t.Context()
	fs.down.Store(true)

	var s string
	if _, err := c.Get(ctx, "k", &s); !errors.Is(err, errDown) {
		t.Errorf("Get while down = %v, want the store's error", err)
	}
	// Before the Delete and Clear: a key whose Delete (or a Clear) is
	// queued reads as missing until it is replayed, without asking the store.
	v, err := cache.GetOrSet(ctx, c, "k", time.Minute, func(context.Context) (string, error) { return "loaded", nil })
	if err != nil || v != "loaded" {
		t.Fatalf("GetOrSet while down = (%q, %v), want load's value and no error", v, err)
	}
	if err := c.Delete(ctx, "k"); !errors.Is(err, errDown) {
		t.Errorf("Delete while down = %v, want the store's error: a lost invalidation must not be hidden", err)
	}
	if err := c.Clear(ctx); !errors.Is(err, errDown) {
		t.Errorf("Clear while down = %v, want the store's error", err)
	}
	logged := logs.String()
	if !strings.Contains(logged, "cache read failed") || !strings.Contains(logged, "connection refused") {
		t.Errorf("GetOrSet did not log the failed read: %q", logged)
	}
	if got := c.Stats().Errors; got < 4 {
		t.Errorf("Stats().Errors = %d, want each failure counted (>= 4)", got)
	}
	// Back up: the same Cache works again.
	fs.down.Store(false)
	if err := c.Set(ctx, "k", "v", 0); err != nil {
		t.Fatalf("Set after recovery = %v", err)
	}
}

func TestRedactPasswordAndQuery(t *testing.T) {
	// An unknown parameter makes the URL invalid, so it is shown reduced to
	// what cannot be a secret.
	got := cache.Redact("redis://u:s3cret@h:1/0?addr=h2:2&password=p4ss")
	want := "redis://***@h:1/0?addr=***&password=***"
	if got != want {
		t.Fatalf("Redact = %q, want %q", got, want)
	}
}

func TestRedactKeepsHarmlessQuery(t *testing.T) {
	if got := cache.Redact("redis://h:1?addr=h2:2"); got != "redis://h:1?addr=h2:2" {
		t.Fatalf("Redact = %q, want the URL unchanged", got)
	}
}
