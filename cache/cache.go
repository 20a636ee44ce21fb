package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/ushka-go/ushka/codec"
	"github.com/ushka-go/ushka/internal/keycount"
	"github.com/ushka-go/ushka/internal/memstore"
)

// Cache is the cache service that application code receives: the Go form of
// Ushka's BaseCache. It validates keys and TTLs, encodes values with its
// codec, counts hits and misses, and runs [GetOrSet] loads once per key, over
// any [Store]. A Cache is safe for concurrent use; create it with [Open] from
// configuration or with [New] over a Store.
type Cache struct {
	store      Store      // the store as the front end calls it: through the breaker, if remote
	inner      Store      // the store as given
	brk        *breaker   // the circuit breaker of a remote store (nil: in-process)
	borrow     borrower   // the store's zero-copy read, when it has one
	near       NearCacher // the store's near cache, when it has one
	local      bool       // the store is in this process: a write costs no round trip
	codec      codec.Codec
	log        *slog.Logger
	defaultTTL time.Duration
	timeout    time.Duration // bound on the store of a loaded value
	closed     atomic.Bool
	stats      counters
	backend    string // the backend's name, for errors, logs and metrics
	name       string // WithName's, for the metrics
	claimed    string // the name c reports under on its MeterProvider, when WithName's

	meterProvider  metric.MeterProvider // WithMeterProvider's
	metrics        *metrics             // nil without one
	tracerProvider trace.TracerProvider // WithTracerProvider's
	tracedKeys     bool                 // WithTracedKeys
	tracing        *tracing             // nil without a TracerProvider

	locker        Locker         // the store's cross-process lease, when it has one
	batcher       Batcher        // the store's bulk calls, when it has them
	adder         Adder          // the store's set-if-absent, when it has one
	counter       Counter        // the store's atomic counters, when it has them
	atomics       [64]sync.Mutex // the front end's Add and Increment of a store without them, by key hash
	policy        policy         // GetOrSet's defaults: fail-safe, early refresh, load timeouts
	lease         time.Duration
	staleMaxBytes int64
	staleOnce     sync.Once
	staleStore    atomic.Pointer[memstore.Store] // fail-safe's local copies
	staleMu       sync.Mutex                     // orders copies with invalidations
	invalidations keycount.Counts                // Deletes, Sets and Clears so far, by key shard: a hit keeps its outage copy unless its key (or one of its shard) was invalidated meanwhile
	refreshMu     sync.Mutex
	refreshFails  map[string]time.Time // no early refresh of the key before it

	flightMu sync.Mutex
	flights  map[string][]*flight // running GetOrSet loads, by key
	nflights atomic.Int64         // how many flights there are, read without flightMu
	idle     sync.WaitGroup       // one per flight, until its value is stored
	writesMu sync.Mutex           // orders writes.Add with Close's writes.Wait
	writes   sync.WaitGroup       // stores of loaded values after their callers got them
}

// SharedBytes is a []byte value that the cache stores as it is, as a
// []byte, and that a read decodes without a copy: Get[SharedBytes] and
// GetOrSet[SharedBytes] may return the very bytes the cache (or the store's
// near cache) holds, which every reader shares. They must not be modified.
// It is for hot paths that only read what they get, such as a cached HTTP
// response written to a client; anything else should use []byte, whose
// reads are the caller's own copy.
type SharedBytes []byte

// borrower is implemented by a Store that can lend its stored bytes instead
// of copying them out (the in-memory store), which saves a copy per read.
// The caller must not modify them.
type borrower interface {
	Borrow(ctx context.Context, key string) ([]byte, bool, error)
}

// New returns a Cache over store. It uses [codec.JSON] and [slog.Default]
// unless opts say otherwise. New panics if store is nil.
func New(store Store, opts ...Option) *Cache {
	if store == nil {
		panic("cache: New: nil Store")
	}
	c := &Cache{
		store:   store,
		inner:   store,
		codec:   codec.JSON,
		log:     slog.Default(),
		timeout: DefaultTimeout,
		policy:  policy{throttle: DefaultFailSafeThrottle},
		lease:   DefaultLockLease,

		staleMaxBytes: DefaultStaleMaxBytes,
	}
	c.locker, _ = store.(Locker)
	c.batcher, _ = store.(Batcher)
	c.adder, _ = store.(Adder)
	c.counter, _ = store.(Counter)
	c.borrow, _ = store.(borrower)
	c.near, _ = store.(NearCacher)
	if c.near != nil {
		c.near.OnChange(c.changedElsewhere)
	}
	_, discard := store.(*discardStore)
	c.local = c.borrow != nil || discard
	if !c.local {
		c.guard(backendName(store))
	}
	for _, o := range opts {
		if o != nil {
			o.apply(c)
		}
	}
	if c.backend == "" {
		c.backend = backendName(store)
	}
	if c.brk != nil {
		c.brk.backend = c.backend
	}
	if c.meterProvider != nil || c.tracerProvider != nil {
		attrs := c.attributes()
		if err := c.startMetrics(attrs); err != nil {
			c.log.Warn("cache metrics off: the MeterProvider refused an instrument", event(EventMetricsOff), "err", err)
		}
		c.startTracing(attrs)
	}
	return c
}

// nearOn reports whether c's store has a near cache in use, which reports
// the changes to the keys it holds (see changedElsewhere).
func (c *Cache) nearOn() bool { return c.near != nil && c.near.NearEnabled() }

// Store returns the store under c, as it was given to [New] (without the
// circuit breaker the cache puts in front of a remote store).
func (c *Cache) Store() Store { return c.inner }

// Codec returns the codec c encodes values with.
func (c *Cache) Codec() codec.Codec { return c.codec }

// Stats returns a snapshot of c's counters, and of its store's near cache
// when it has one.
func (c *Cache) Stats() Stats {
	s := c.stats.snapshot()
	if c.near != nil {
		s.NearEntries, s.NearBytes = c.near.NearUsage()
	}
	if c.brk != nil {
		s.Breaker = BreakerState(c.brk.state.Load()).String()
		s.QueuedNow = c.brk.q.len()
	}
	return s
}

// Get reads the value stored under key into dst, which must be a non-nil
// pointer: *[]byte and *string receive the stored bytes as they are, any
// other type is decoded with the cache's codec. On a hit dst is replaced by
// the stored value whole (a field the stored value lacks is zeroed, not
// kept). A missing or expired key returns found == false and a nil error,
// leaving dst alone.
//
// A stored value that cannot be decoded into dst is an error (and counted),
// as is a failure of the store; dst is then left as it was.
func (c *Cache) Get(ctx context.Context, key string, dst any) (found bool, err error) {
	return c.get(ctx, key, dst, false)
}

// get is Get; fresh tells that dst points to a zero value that no one else
// sees (Get[T]'s), so that it can be decoded into directly.
func (c *Cache) get(ctx context.Context, key string, dst any, fresh bool) (found bool, err error) {
	if err := c.check("get", key); err != nil {
		return false, err
	}
	if dst == nil {
		return false, fmt.Errorf("cache: get %q: nil destination", key)
	}
	found, near, err := c.read(ctx, key, dst, fresh)
	switch {
	case err != nil:
		c.failed(ctx, err)
		return false, fmt.Errorf("cache: get %q: %w", key, err)
	case !found:
		c.stats.misses.add()
		return false, nil
	}
	c.stats.hits.add()
	if near {
		c.stats.nearHits.add()
	}
	return true, nil
}

// read fetches key's value from the store and decodes it into dst, without
// counting. An entry with a header (see [Entry]) is read only while fresh:
// a stale value, a placeholder or an unknown layout is a miss. near reports
// that the store answered from its near cache.
func (c *Cache) read(ctx context.Context, key string, dst any, fresh bool) (found, near bool, err error) {
	b, found, near, err := c.raw(ctx, key)
	if err != nil || !found {
		return false, near, err
	}
	if len(b) > 0 && b[0] == EntryMagic[0] {
		e, perr := ParseEntry(b)
		if perr != nil || !e.freshAt(time.Now()) {
			return false, near, nil
		}
		if len(e.Tags) > 0 {
			if ok, err := c.tagsHold(ctx, e); err != nil || !ok {
				return false, near, err
			}
		}
		b = e.Value
	}
	return true, near, c.decode(b, dst, fresh)
}

// raw returns the stored bytes of key: lent by a store that can (they must
// not be modified), else the store's own copy. near reports that a
// [NearCacher] answered from process memory.
func (c *Cache) raw(ctx context.Context, key string) (b []byte, found, near bool, err error) {
	switch {
	case c.borrow != nil:
		b, found, err = c.borrow.Borrow(ctx, key)
	case c.near != nil:
		return c.near.GetNear(ctx, key)
	default:
		b, found, err = c.store.Get(ctx, key)
	}
	return b, found, false, err
}

// Set stores value under key for ttl. A ttl of 0 means the cache's default
// TTL ([WithDefaultTTL], default_ttl in ushka.toml), which by default means
// no expiry; a negative ttl, or one longer than [MaxTTL], is an error
// matching [ErrInvalidTTL] and nothing is written. []byte and string values
// are stored as they are; any other value is encoded with the cache's codec,
// and one that cannot be encoded is an error. The cache keeps an encoded copy, so changing value afterwards
// does not change what is cached.
//
// A Set is final for the loads of key that began before it: once it has
// returned, [GetOrSet] neither hands out nor stores their values.
func (c *Cache) Set(ctx context.Context, key string, value any, ttl time.Duration, opts ...SetOption) error {
	if err := c.check("set", key); err != nil {
		return err
	}
	if err := checkTTL(key, ttl); err != nil {
		return err
	}
	var so setOptions
	for _, o := range opts {
		if o != nil {
			o.applySet(&so)
		}
	}
	b, err := c.encode(value)
	if err != nil {
		c.stats.errors.add()
		return fmt.Errorf("cache: set %q: encode %T: %w", key, value, err)
	}
	if len(so.tags) > 0 {
		if b, ttl, err = c.tagged(ctx, key, b, ttl, so.tags); err != nil {
			return err
		}
	}
	c.stopLoads(key, false)
	err = c.setBytes(ctx, key, b, ttl)
	c.endInvalidation(key, false)
	return err
}

// checkTTL returns the error of a ttl that is negative or longer than
// [MaxTTL], for a Set (or GetOrSet) of key, or nil.
func checkTTL(key string, ttl time.Duration) error {
	switch {
	case ttl < 0:
		return sentinelf(ErrInvalidTTL, "cache: set %q: invalid ttl %s", key, ttl)
	case ttl > MaxTTL:
		return sentinelf(ErrInvalidTTL, "cache: set %q: invalid ttl %s: longer than cache.MaxTTL (100 years); use 0 for no expiry", key, ttl)
	}
	return nil
}

func (c *Cache) setBytes(ctx context.Context, key string, b []byte, ttl time.Duration) error {
	if ttl == 0 {
		ttl = c.defaultTTL
	}
	if err := c.store.Set(ctx, key, b, ttl); err != nil {
		c.failed(ctx, err)
		return fmt.Errorf("cache: set %q: %w", key, err)
	}
	c.stats.sets.add()
	return nil
}

// Delete removes key. Deleting a missing key is not an error; a store that
// fails to delete returns its error, since a lost invalidation would serve
// stale data later.
//
// A Delete is final: once it has returned nil, no later call returns, and
// the cache never stores, a value whose [GetOrSet] load began before it.
func (c *Cache) Delete(ctx context.Context, key string) error {
	if err := c.check("delete", key); err != nil {
		return err
	}
	c.stopLoads(key, false)
	err := c.store.Delete(ctx, key)
	c.endInvalidation(key, false)
	if err != nil {
		c.failed(ctx, err)
		return fmt.Errorf("cache: delete %q: %w", key, err)
	}
	c.stats.deletes.add()
	return nil
}

// Clear removes every key of this cache, and no one else's: with Redis, the
// keys under its key prefix. Like [Cache.Delete], it is final for every load
// that began before it.
func (c *Cache) Clear(ctx context.Context) error {
	if c.closed.Load() {
		return sentinelf(ErrClosed, "cache: clear: cache is closed")
	}
	c.stopLoads("", true)
	err := c.store.Clear(ctx)
	c.endInvalidation("", true)
	if err != nil {
		c.failed(ctx, err)
		return fmt.Errorf("cache: clear: %w", err)
	}
	return nil
}

// Ping checks that the store is reachable, for a health check. A store that
// cannot tell (an in-memory store) is always reachable until closed.
func (c *Cache) Ping(ctx context.Context) error {
	if c.closed.Load() {
		return sentinelf(ErrClosed, "cache: ping: cache is closed")
	}
	if p, ok := c.store.(Pinger); ok {
		if err := p.Ping(ctx); err != nil {
			return fmt.Errorf("cache: ping: %w", err)
		}
	}
	return nil
}

// Close closes the store, releasing its connections. It first lets the
// stores of values that [GetOrSet] loaded and already returned land, each
// bounded by the timeout. Every later call returns an error matching
// [ErrClosed]. Closing twice is not an error.
func (c *Cache) Close() error {
	c.writesMu.Lock() // so that no store is added to writes after the Wait below
	first := c.closed.CompareAndSwap(false, true)
	c.writesMu.Unlock()
	if !first {
		return nil
	}
	// Stores of loaded values whose callers already have them land before
	// the connections close, each bounded by the timeout: a process that
	// exits right after GetOrSet returned still shares what it loaded.
	c.writes.Wait()
	if c.brk != nil {
		if lost := c.brk.shutdown(); lost > 0 {
			c.log.Error("cache closed with invalidations not replayed: the backend did not answer; they are lost", event(EventInvalidationsLost),
				"backend", c.brk.backend, "lost", lost)
		}
	}
	c.stopMetrics()
	c.staleOnce.Do(func() {}) // no copies are made after Close
	if s := c.staleStore.Load(); s != nil {
		s.Close()
	}
	if err := c.store.Close(); err != nil {
		return fmt.Errorf("cache: close: %w", err)
	}
	return nil
}

// Get reads the value stored under key as a T. It is [Cache.Get] with the
// destination made for you:
//
//	report, found, err := cache.Get[Report](ctx, c, "complex_report")
func Get[T any](ctx context.Context, c *Cache, key string) (T, bool, error) {
	var v T
	found, err := c.get(ctx, key, &v, true)
	if err != nil || !found {
		var zero T
		return zero, found, err
	}
	return v, true, nil
}

// writing registers a store that Close must wait for, unless c is closed.
func (c *Cache) writing() bool {
	c.writesMu.Lock()
	defer c.writesMu.Unlock()
	if c.closed.Load() {
		return false
	}
	c.writes.Add(1)
	return true
}

// check applies the rules every call shares: the cache is open and the key
// is valid.
func (c *Cache) check(op, key string) error {
	if c.closed.Load() {
		return sentinelf(ErrClosed, "cache: %s %q: cache is closed", op, key)
	}
	if p := keyProblem(key); p != "" {
		return sentinelf(ErrInvalidKey, "cache: %s: invalid key: %s", op, p)
	}
	return nil
}

// ValidateKey reports whether key is acceptable: 1 to [MaxKeyLen] bytes.
// Any bytes are allowed. The error matches [ErrInvalidKey].
func ValidateKey(key string) error {
	if p := keyProblem(key); p != "" {
		return sentinelf(ErrInvalidKey, "cache: invalid key: %s", p)
	}
	return nil
}

func keyProblem(key string) string {
	switch {
	case key == "":
		return "empty"
	case len(key) > MaxKeyLen:
		return fmt.Sprintf("%d bytes, longer than %d", len(key), MaxKeyLen)
	case reserved(key):
		return "it starts with " + TagKeyPrefix + ", which the cache keeps for the tags' tokens"
	}
	return ""
}

// encode encodes value for the store. []byte and string values pass as they
// are, unless they start like an entry with a header, [EntryMagic]: those
// are stored inside a header, so that they read back as written. A panic in
// the value's own encoding method (a MarshalJSON with a bug) is an error,
// since a GetOrSet stores on a goroutine where a panic would end the process.
func (c *Cache) encode(value any) ([]byte, error) {
	b, err := c.encodeValue(value)
	if err != nil {
		return nil, err
	}
	if bytes.HasPrefix(b, []byte(EntryMagic)) {
		return Entry{Value: b, header: true}.Append(nil), nil
	}
	return b, nil
}

// encodeValue encodes value: []byte and string as they are, the rest with
// the codec, recovering a panic of the value's own encoding method.
func (c *Cache) encodeValue(value any) (_ []byte, err error) {
	var b []byte
	switch v := value.(type) {
	case []byte:
		b = append([]byte{}, v...)
	case SharedBytes:
		b = append([]byte{}, v...)
	case string:
		b = []byte(v)
	default:
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("encoding panicked: %v\n\n%s", r, debug.Stack())
			}
		}()
		return c.codec.Marshal(value)
	}
	return b, nil
}

// errNotPointer is returned when Get is given a destination it cannot fill.
var errNotPointer = errors.New("destination must be a non-nil pointer")

// decode decodes b into dst. Unless dst is fresh (a zero value no one else
// sees), it decodes into a new value and copies that into dst only on
// success, so that a failed decode leaves dst as it was and a successful one
// leaves nothing of dst's earlier contents.
func (c *Cache) decode(b []byte, dst any, fresh bool) error {
	switch d := dst.(type) {
	case *[]byte:
		if d == nil {
			return errNotPointer
		}
		*d = append([]byte(nil), b...)
		if *d == nil {
			*d = []byte{}
		}
		return nil
	case *string:
		if d == nil {
			return errNotPointer
		}
		*d = string(b)
		return nil
	case *SharedBytes:
		if d == nil {
			return errNotPointer
		}
		*d = SharedBytes(b)
		if *d == nil {
			*d = SharedBytes{}
		}
		return nil
	}
	if fresh {
		if err := c.codec.Unmarshal(b, dst); err != nil {
			return fmt.Errorf("decode into %T: %w", dst, err)
		}
		return nil
	}
	pv := reflect.ValueOf(dst)
	if pv.Kind() != reflect.Pointer || pv.IsNil() {
		return fmt.Errorf("decode into %T: %w", dst, errNotPointer)
	}
	tmp := reflect.New(pv.Type().Elem())
	if err := c.codec.Unmarshal(b, tmp.Interface()); err != nil {
		return fmt.Errorf("decode into %T: %w", dst, err)
	}
	pv.Elem().Set(tmp.Elem())
	return nil
}

// failed counts err, a failure of the store, as a cache error, unless it is
// the caller's own context that ended: a request that gave up is not a
// failure of the cache.
func (c *Cache) failed(ctx context.Context, err error) {
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return
	}
	if errors.Is(err, ErrUnavailable) {
		return // refused by the breaker: counted as Refused
	}
	c.stats.errors.add()
}

// logLevel is the level of a log line about a store call that failed with
// err: a call the breaker refused is routine while it is open (its opening
// and closing are logged once each), anything else is a warning.
func logLevel(err error) slog.Level {
	if errors.Is(err, ErrUnavailable) {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}
