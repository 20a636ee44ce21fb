// Package redis is the redis backend: a [cache.Store] on a Redis server, a
// Redis Cluster or a Sentinel-managed master, shared by every process of an
// application. It is built on github.com/redis/rueidis, whose automatic
// pipelining lets many goroutines share few connections.
//
// Importing the package registers the backend as "redis":
//
//	import _ "github.com/ushka-go/ushka/cache/redis"
//
// and ushka.toml selects it:
//
//	[cache]
//	enabled = true
//	backend = "redis"
//	redis_url = "redis://localhost:6379/0"
//
// # redis_url
//
//	redis://[user:pass@]host[:port][/db]                 one server (port 6379, db 0 by default)
//	rediss://[user:pass@]host[:port][/db]                TLS, verified with the system roots or tls_ca_file
//	unix://[user:pass@]/path/to/redis.sock[?db=N]         a unix socket
//	redis://host1:port1?addr=host2:port2&addr=host3:port3   Cluster: any reachable node finds the rest
//	redis://sentinel1:26379?addr=sentinel2:26379&master_set=mymaster   Sentinel
//
// Further parameters: client_name, dial_timeout, sentinel_username,
// sentinel_password, skip_verify (rediss only). An unknown parameter is an
// error. No error or log line shows the URL's password.
//
// # Keys, TTLs and Clear
//
// Every key is stored under the configured key_prefix (default "ushka:"), so
// that "user:1" is the Redis key "ushka:user:1". TTLs are set with SET ... PX
// (milliseconds). Clear deletes exactly the keys under the prefix: it SCANs
// every master for them (never a replica: replication removes their copies),
// with the prefix's glob characters escaped byte by byte, and UNLINKs them in
// batches. It never runs FLUSHDB; other applications' keys in the same
// database survive, including those whose names merely start like the
// prefix ("ushka" and "ushkax:1" are not under "ushka:").
//
// # Locks
//
// A Store is a [cache.Locker], so that a GetOrSet load runs once across
// every process that shares the Redis. The lease of a key lives in the key's
// own entry, in the header that [cache.Entry] describes: it is under the key
// prefix, goes with the key on Delete and Clear, and is in the key's Cluster
// slot. Each of Lock, Renew, Fill and Unlock is one Lua script on that one
// key, atomic with every other command on it. The scripts read the time
// from the server (TIME), not from the calling process, so that processes
// whose clocks differ agree on when a lease ends: a lease taken at server
// time now ends at now + lease (milliseconds) and stands while that is later
// than the server's time. A token holds a key while the entry's header names
// it and its lease stands. Locks need Redis 6.0 or later (SET ... KEEPTTL).
//
// Fill and Unlock PUBLISH the key (without the prefix) on the store's
// notification channel, named by the key prefix followed by [FilledChannel]:
// "ushka:\xffushka:filled" for the default prefix. A classic PUBLISH reaches
// the subscribers of every node of a Cluster. Each Store subscribes once, at
// its first Watch, on a goroutine that Close stops, and hands each message to
// the watchers of that key in its process.
//
// # Near cache
//
// With near_cache = true (Config.NearCache), the Store keeps the entries
// this process reads in process memory, bounded by near_cache_max_bytes for
// the whole process, and answers later reads of them from there
// ([Store.GetNear]). Redis keeps them exact: reads run with client tracking
// on (CLIENT TRACKING ON OPTOUT, through rueidis's client-side caching), so
// that a change by any client is reported to the process, which drops its
// copy. The Store's own writes drop theirs when they return, so that the
// process reads its own writes. A lost connection drops everything; a value
// leaves before Redis expires it, and after a minute at most; on a Cluster,
// missing keys are not kept. A server that refuses tracking is logged once
// (to Config.Logger) and the Store goes on without a near cache. The rules
// are written out in near.go and in the README.
//
// # Failures
//
// Every call is bounded by its context and by the configured timeout
// (default 250ms), so a slow or dead Redis cannot stall a request. [Open]
// does not need Redis to be up: the connection is made in the background
// and remade when it fails, at most once a second, and the same Store works
// again when Redis comes back. An error names the step a server did not
// answer (the TCP connect, the TLS handshake, the Redis handshake), and
// [Store.Close] ends a connect attempt at once.
//
// An error reply of Redis (WRONGTYPE, OOM, READONLY, NOPERM, WRONGPASS, ...)
// matches [cache.ErrRefused]: the server is up and says no. The replies of a
// server that will answer again by itself (LOADING, BUSY, TRYAGAIN,
// CLUSTERDOWN, MASTERDOWN), network failures and timeouts do not.
package redis

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/internal/redisurl"
)

// Name is the backend's name in ushka.toml.
const Name = "redis"

func init() {
	cache.Register(Name, func(ctx context.Context, cfg cache.Config) (cache.Store, error) {
		return Open(ctx, cfg)
	})
}

// redialEvery is the least time between two attempts to connect while Redis
// is unreachable; in between, calls fail at once with the last error.
const redialEvery = time.Second

// maxRedirections bounds the MOVED and ASK redirections of one command in a
// Cluster: more means the cluster is misconfigured or resharding in a loop.
const maxRedirections = 16

// maxAbandonedReads bounds the near cache's reads whose callers gave up
// waiting for them. Such a read runs to its end (nearMiss), so a hung
// server, until rueidis's keepalive gives up on the connection (about 10s),
// would otherwise gather one goroutine per miss. Past the bound a miss
// fails at once. Reads whose callers still wait are not counted: a burst
// of misses on a busy but answering server is not refused.
const maxAbandonedReads = 4096

// errTooManyReads fails a near-cache miss past maxAbandonedReads.
var errTooManyReads = fmt.Errorf("%d near-cache reads were given up by their callers and still wait for Redis: it is not answering", maxAbandonedReads)

// scanBatch is the COUNT hint of each SCAN in Clear.
const scanBatch = 1000

// Store is a [cache.Store] on Redis. Create it with [Open]; it is safe for
// concurrent use.
type Store struct {
	opt     rueidis.ClientOption // with client tracking when near_cache is on
	plain   rueidis.ClientOption // without: the subscription, and a server that refuses tracking
	prefix  string
	pattern string // SCAN MATCH pattern of the prefix's keys
	timeout time.Duration
	bounds  *timeouts
	where   string // the redacted URL, for errors
	dial    *dialer
	log     *slog.Logger

	near      *nearCache     // nil unless near_cache is on
	nearOn    atomic.Bool    // near is in use: the server has not refused tracking
	reads     sync.WaitGroup // near-cache reads still running (nearMiss)
	abandoned atomic.Int64   // of them, those whose callers gave up: at most maxAbandonedReads
	readsMu   sync.RWMutex   // orders reads.Add with Close's reads.Wait
	noReads   bool           // Close has begun: no nearMiss starts; under readsMu

	client atomic.Pointer[clientRef]
	closed atomic.Bool

	mu      sync.Mutex
	dialing chan struct{} // closed when the running connect attempt ends
	lastErr error
	lastTry time.Time
	wg      sync.WaitGroup // the connect goroutine

	watch watchHub // the subscription for Watch (lock.go)
}

type clientRef struct{ c rueidis.Client }

var (
	_ cache.Store      = (*Store)(nil)
	_ cache.Pinger     = (*Store)(nil)
	_ cache.NearCacher = (*Store)(nil)
)

// Open returns a Store for cfg.RedisURL, cfg.KeyPrefix and cfg.Timeout
// (defaults applied when zero). It fails on a malformed URL or an unreadable
// tls_ca_file, but not when Redis is unreachable: it starts connecting in the
// background and reports reachability through [Store.Ping].
func Open(ctx context.Context, cfg cache.Config) (*Store, error) {
	if err := cfg.Validate(); err != nil { // a negative timeout, say, when called directly
		return nil, fmt.Errorf("redis: %w", err)
	}
	cfg = cfg.WithDefaults()
	if cfg.RedisURL == "" {
		return nil, errors.New(`redis: redis_url is required when backend = "redis"`)
	}
	u, err := redisurl.Parse(string(cfg.RedisURL))
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	opt, err := clientOption(u, cfg)
	if err != nil {
		return nil, err
	}
	d := newDialer(u.Unix, opt.Dialer.Timeout)
	opt.DialCtxFn = d.dial // the Sentinel connections too: rueidis copies it
	s := &Store{
		opt:     opt,
		plain:   opt,
		prefix:  cfg.KeyPrefix,
		pattern: escapeGlob(cfg.KeyPrefix) + "*",
		timeout: cfg.Timeout,
		bounds:  newTimeouts(cfg.Timeout),
		where:   cfg.RedisURL.String(),
		dial:    d,
		log:     cfg.Logger,
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if cfg.NearCache {
		if s.near, err = newNearCache(cfg.KeyPrefix, cfg.NearCacheMaxBytes); err != nil {
			return nil, fmt.Errorf("redis: near cache: %w", err)
		}
		s.opt.DisableCache = false // client tracking on every connection
		s.opt.NewCacheStoreFn = s.near.newView
		// OPTOUT: every read of the connection is tracked, without a CLIENT
		// CACHING YES before each. With OPTIN, a server whose ACL stopped
		// allowing CLIENT refused that command and ran the read untracked,
		// whose reply the near cache kept and Redis never invalidated; and
		// a Cluster's ASK redirection took the CLIENT CACHING for itself.
		// No NOLOOP: Redis 7 drops the invalidations of keys it evicts from
		// a full tracking table (tracking-table-max-keys) for the client
		// whose command made it evict, when that client has NOLOOP.
		s.opt.ClientTrackingOptions = []string{"OPTOUT"}
		s.nearOn.Store(true)
	}
	s.connect() // in the background: the application need not wait for Redis
	return s, nil
}

func clientOption(u redisurl.Options, cfg cache.Config) (rueidis.ClientOption, error) {
	opt := rueidis.ClientOption{
		InitAddress:  u.Addrs,
		Username:     u.Username,
		Password:     u.Password,
		SelectDB:     u.DB,
		ClientName:   u.ClientName,
		DisableCache: true, // no client-side caching (yet): no CLIENT TRACKING
		// A cache call that fails is answered by the front end (a load, a
		// stale value): retrying it with backoff until the timeout, as rueidis
		// does by default, made every read of a dead Redis take the whole
		// timeout. One immediate retry rides over a connection swapped by a
		// Cluster topology refresh.
		RetryDelay: retryOnce,
		// A near-cache read runs to its end even when its caller gives up
		// (nearMiss): bound its redirections, which would otherwise go on
		// until a deadline it does not have.
		ClusterOption: rueidis.ClusterOption{MaxMovedRedirections: maxRedirections},
	}
	opt.Dialer.Timeout = 5 * time.Second
	if u.DialTimeout > 0 {
		opt.Dialer.Timeout = u.DialTimeout
	}
	if u.TLS {
		tc := &tls.Config{ServerName: u.ServerName, MinVersion: tls.VersionTLS12, InsecureSkipVerify: u.SkipVerify}
		if cfg.TLSCAFile != "" {
			pool, err := redisurl.ReadCAFile(cfg.TLSCAFile)
			if err != nil {
				return opt, fmt.Errorf("redis: tls_ca_file: %w", err)
			}
			tc.RootCAs = pool
		}
		opt.TLSConfig = tc
	} // tls_ca_file without rediss:// is refused by cfg.Validate
	if u.MasterSet != "" {
		opt.Sentinel = rueidis.SentinelOption{
			MasterSet: u.MasterSet,
			Username:  u.SentinelUsername,
			Password:  u.SentinelPassword,
			Dialer:    opt.Dialer,
			TLSConfig: opt.TLSConfig,
		}
	}
	return opt, nil
}

// retryOnce lets rueidis retry a failed read once, at once, and no more.
func retryOnce(attempts int, _ rueidis.Completed, _ error) time.Duration {
	if attempts <= 1 {
		return 0
	}
	return -1
}

// escapeGlob escapes the characters SCAN MATCH treats specially. It works
// on bytes, not runes: a prefix need not be UTF-8, and ranging over it as a
// string would turn each invalid byte into U+FFFD (EF BF BD), a pattern that
// matches another application's keys.
func escapeGlob(s string) string {
	var b strings.Builder
	for i := range len(s) {
		c := s[i]
		switch c {
		case '*', '?', '[', ']', '\\', '^', '-':
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}

// connect starts a connect attempt unless one is running, and returns the
// channel closed when it ends.
func (s *Store) connect() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dialing != nil {
		return s.dialing
	}
	done := make(chan struct{})
	s.dialing = done
	s.lastTry = time.Now()
	s.wg.Add(1)
	s.dial.reset()
	go func() {
		defer s.wg.Done()
		c, err := s.newClient()
		if err != nil && s.nearOn.Load() && errors.Is(err, rueidis.ErrNoCache) {
			s.refuseNear(err)
			c, err = s.newClient()
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		switch {
		case err != nil:
			s.lastErr = s.dial.explain(err)
		case s.closed.Load():
			c.Close()
		default:
			if s.near != nil {
				s.near.keepAbsent.Store(c.Mode() != rueidis.ClientModeCluster)
			}
			s.client.Store(&clientRef{c})
			s.lastErr = nil
		}
		s.dialing = nil
		close(done)
	}()
	return done
}

// newClient connects with client tracking while the near cache is in use.
func (s *Store) newClient() (rueidis.Client, error) {
	opt := s.plain
	if s.nearOn.Load() {
		opt = s.opt
	}
	c, err := rueidis.NewClient(opt)
	if err != nil && c != nil {
		c.Close() // a Cluster client whose first topology refresh failed
		c = nil
	}
	return c, err
}

// refuseNear turns the near cache off, once, when the server refuses client
// tracking (an ACL user without CLIENT, a server older than Redis 6, a proxy
// that does not pass it on): the cache goes on without it, reading Redis
// every time, and says so once. It reports whether this call turned it off.
func (s *Store) refuseNear(err error) bool {
	if !s.nearOn.CompareAndSwap(true, false) {
		return false
	}
	s.near.forgetAll()
	reason, _, _ := strings.Cut(err.Error(), "\n")
	s.log.Warn("cache near cache off: the Redis server refuses client tracking; every read goes to Redis",
		"event", cache.EventNearCacheOff, "redis", s.where, "reason", reason)
	return true
}

// reconnect drops the client, so that the next call connects anew.
func (s *Store) reconnect() {
	s.mu.Lock()
	r := s.client.Swap(nil)
	if r != nil {
		s.wg.Add(1)
	}
	s.mu.Unlock()
	if r != nil {
		go func() {
			defer s.wg.Done()
			r.c.Close()
		}()
	}
}

// conn returns the client, connecting first if need be. While Redis is
// unreachable it fails at once with the last error, trying again at most
// once every redialEvery.
func (s *Store) conn(ctx context.Context) (rueidis.Client, error) {
	if r := s.client.Load(); r != nil {
		return r.c, nil
	}
	if s.closed.Load() {
		return nil, cache.ErrClosed
	}
	s.mu.Lock()
	var wait <-chan struct{} = s.dialing
	lastErr := s.lastErr
	recent := time.Since(s.lastTry) < redialEvery
	s.mu.Unlock()
	if wait == nil {
		if lastErr != nil && recent {
			return nil, fmt.Errorf("not connected: %w", lastErr)
		}
		wait = s.connect()
	}
	select {
	case <-wait:
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: %w", s.dial.progress(), ctx.Err())
	}
	if r := s.client.Load(); r != nil {
		return r.c, nil
	}
	if s.closed.Load() {
		return nil, cache.ErrClosed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return nil, fmt.Errorf("not connected: %w", s.lastErr)
}

// connWithin returns the client for a call of many round trips (Clear,
// Info), waiting for a connection at most the timeout; each round trip then
// bounds itself.
func (s *Store) connWithin(ctx context.Context) (rueidis.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.conn(ctx)
}

// begin starts a call: it bounds ctx by the store's timeout and returns the
// client.
func (s *Store) begin(ctx context.Context) (context.Context, context.CancelFunc, rueidis.Client, error) {
	if s.closed.Load() {
		return ctx, noop, nil, cache.ErrClosed
	}
	ctx, cancel := s.bounds.bound(ctx)
	c, err := s.conn(ctx)
	if err != nil {
		cancel()
		return ctx, noop, nil, err
	}
	return ctx, cancel, c, nil
}

// fail wraps a call's error, saying which server and, for a timeout, how
// long it waited. An error reply of the server matches [cache.ErrRefused].
// It never includes the password.
func (s *Store) fail(op string, err error) error {
	// A call that Close interrupted fails with the client's or the
	// socket's "closed": it is ErrClosed all the same.
	if errors.Is(err, cache.ErrClosed) || s.closed.Load() && (errors.Is(err, rueidis.ErrClosing) || errors.Is(err, net.ErrClosed)) {
		return fmt.Errorf("redis: %s: %w", op, cache.ErrClosed)
	}
	if s.nearOn.Load() && errors.Is(err, rueidis.ErrNoCache) && s.refuseNear(err) {
		// A connection remade after the server's ACL changed, or a new
		// Cluster node that refuses tracking: go on without it, on a
		// client of its own (once: a second would close that one).
		s.reconnect()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("timed out (timeout %v, or the caller's deadline if sooner): %w", s.timeout, err)
	}
	if isRefusal(err) {
		err = &refusedError{err}
	}
	return fmt.Errorf("redis %s: %s: %w", s.where, op, err)
}

// refusedError is a command the server answered with an error reply
// (WRONGTYPE, OOM, READONLY, NOPERM, WRONGPASS, ...): it matches
// [cache.ErrRefused] and keeps the server's words.
type refusedError struct{ err error }

func (e *refusedError) Error() string   { return "refused: " + e.err.Error() }
func (e *refusedError) Unwrap() []error { return []error{cache.ErrRefused, e.err} }

// transientReplies are the error replies of a server that cannot answer
// for now but will without an operator's help (it is loading its data, busy
// with a script, or its cluster is failing over): an outage, not a refusal.
var transientReplies = []string{"LOADING", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN"}

// isRefusal reports whether err carries an error reply of the server other
// than a nil reply or a transient one. Network failures and timeouts are
// not refusals.
func isRefusal(err error) bool {
	var re *rueidis.RedisError
	if !errors.As(err, &re) || re.IsNil() {
		return false
	}
	code, _, _ := strings.Cut(re.Error(), " ")
	return !slices.Contains(transientReplies, code)
}

// Get implements [cache.Store]. With the near cache on, it answers from
// there when it can (see [Store.GetNear]), with a copy of the value.
func (s *Store) Get(ctx context.Context, key string) ([]byte, bool, error) {
	b, found, near, err := s.GetNear(ctx, key)
	if near && found {
		b = bytes.Clone(b)
	}
	return b, found, err
}

// GetNear implements [cache.NearCacher]. With near_cache on, a key this
// process has read is answered from process memory (near reports it),
// until Redis reports a change to it; other keys are read with client
// tracking on, and kept. Without it, GetNear is Get.
func (s *Store) GetNear(ctx context.Context, key string) (value []byte, found, near bool, err error) {
	if s.NearEnabled() && !s.closed.Load() {
		if e, ok := s.near.get(key); ok {
			return e.value, !e.absent, true, nil
		}
		value, found, err = s.nearMiss(ctx, key)
		if err == nil || s.nearOn.Load() {
			return value, found, false, err
		}
		// The server refused tracking just now: read without it.
	}
	ctx, cancel, c, err := s.begin(ctx)
	defer cancel()
	if err != nil {
		return nil, false, false, s.fail("get", err)
	}
	value, err = c.Do(ctx, c.B().Get().Key(s.prefix+key).Build()).AsBytes()
	if rueidis.IsRedisNil(err) {
		return nil, false, false, nil
	}
	if err != nil {
		return nil, false, false, s.fail("get", err)
	}
	if value == nil {
		value = []byte{}
	}
	return value, true, false, nil
}

// nearMiss reads key from Redis with client tracking, so that the near
// cache keeps the answer. The read runs to its end on a goroutine of its
// own even when the caller stops waiting for it (ctx, the timeout): rueidis
// matches a reply with the near cache's count of outstanding reads, which
// a read abandoned half way would leave wrong. It ends with its reply, or
// when its connection is closed.
func (s *Store) nearMiss(ctx context.Context, key string) ([]byte, bool, error) {
	ctx, cancel, c, err := s.begin(ctx)
	defer cancel()
	if err != nil {
		return nil, false, s.fail("get", err)
	}
	type answer struct {
		b   []byte
		err error
	}
	if s.abandoned.Load() >= maxAbandonedReads {
		return nil, false, s.fail("get", errTooManyReads)
	}
	done := make(chan answer, 1)
	var gaveUp atomic.Bool // the caller stopped waiting; whoever sets it second counts it back
	s.readsMu.RLock()
	if s.noReads {
		s.readsMu.RUnlock()
		return nil, false, s.fail("get", cache.ErrClosed)
	}
	s.reads.Add(1)
	s.readsMu.RUnlock()
	go func() {
		defer s.reads.Done()
		cmd := c.B().Get().Key(s.prefix + key).Cache()
		b, err := c.DoCache(context.WithoutCancel(ctx), cmd, nearMaxAge).AsBytes()
		done <- answer{b, err}
		if !gaveUp.CompareAndSwap(false, true) {
			s.abandoned.Add(-1) // the caller had given up and counted this read
		}
	}()
	var a answer
	select {
	case a = <-done:
	case <-ctx.Done():
		if gaveUp.CompareAndSwap(false, true) {
			s.abandoned.Add(1)
		}
		return nil, false, s.fail("get", ctx.Err())
	}
	if rueidis.IsRedisNil(a.err) {
		return nil, false, nil
	}
	if a.err != nil {
		return nil, false, s.fail("get", a.err)
	}
	if a.b == nil {
		a.b = []byte{}
	}
	return a.b, true, nil
}

// NearEnabled implements [cache.NearCacher]: near_cache is on, and the
// server has not refused client tracking.
func (s *Store) NearEnabled() bool { return s.near != nil && s.nearOn.Load() }

// NearPeek implements [cache.NearCacher].
func (s *Store) NearPeek(key string) (value []byte, found, held bool) {
	if !s.NearEnabled() || s.closed.Load() {
		return nil, false, false
	}
	e, ok := s.near.get(key)
	return e.value, ok && !e.absent, ok
}

// NearUsage implements [cache.NearCacher].
func (s *Store) NearUsage() (entries int, bytes int64) {
	if s.near == nil {
		return 0, 0
	}
	return s.near.usage()
}

// OnChange implements [cache.NearCacher]: fn hears of every invalidation
// Redis sends the near cache. Without a near cache it is never called.
func (s *Store) OnChange(fn func(key string)) {
	if s.near != nil {
		s.near.onChange.Store(&fn)
	}
}

// forget is called after each write of key, whatever its outcome, so that
// this process reads its own writes: see nearCache.
func (s *Store) forget(key string) {
	if s.near != nil {
		s.near.forget(key)
	}
}

// Set implements [cache.Store]: SET key value [PX ms], the ttl rounded up
// to whole milliseconds.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	defer s.forget(key)
	ctx, cancel, c, err := s.begin(ctx)
	defer cancel()
	if err != nil {
		return s.fail("set", err)
	}
	set := c.B().Set().Key(s.prefix + key).Value(rueidis.BinaryString(value))
	var cmd rueidis.Completed
	if ttl > 0 {
		cmd = set.PxMilliseconds(pxMillis(ttl)).Build()
	} else {
		cmd = set.Build()
	}
	if err := c.Do(ctx, cmd).Error(); err != nil {
		return s.fail("set", err)
	}
	return nil
}

// pxMillis is ttl > 0 rounded up to whole milliseconds, without the
// overflow of (ttl + time.Millisecond - 1) / time.Millisecond near
// math.MaxInt64. It needs no clamping to what Redis accepts: Redis adds it
// to its clock in milliseconds and rejects a sum that overflows int64, but
// the longest Duration is about 9.2e15 ms and the clock about 1.8e12 ms,
// a thousandth of the 9.2e18 limit.
func pxMillis(ttl time.Duration) int64 {
	ms := int64(ttl / time.Millisecond)
	if ttl%time.Millisecond != 0 {
		ms++
	}
	return ms
}

// Delete implements [cache.Store].
func (s *Store) Delete(ctx context.Context, key string) error {
	defer s.forget(key)
	ctx, cancel, c, err := s.begin(ctx)
	defer cancel()
	if err != nil {
		return s.fail("delete", err)
	}
	if err := c.Do(ctx, c.B().Del().Key(s.prefix+key).Build()).Error(); err != nil {
		return s.fail("delete", err)
	}
	return nil
}

// Clear implements [cache.Store]: it deletes the keys under the key prefix
// on every master, and no others. Replicas are left to replication: a
// replica that is down does not stop Clear. Each SCAN and each batch of
// UNLINKs is bounded by the timeout; the whole is bounded by ctx alone,
// since a large cache takes many round trips to clear. A master that fails
// does not stop the others from being cleared; its error is returned.
func (s *Store) Clear(ctx context.Context) error {
	_, err := s.ClearWith(ctx, ClearOptions{})
	return err
}

// ClearOptions change [Store.ClearWith].
type ClearOptions struct {
	// DryRun counts the keys Clear would delete, and deletes none.
	DryRun bool
	// Progress, when set, is called after each batch of keys a master's
	// SCAN returned, and once more when that master is done, from the
	// goroutine that called ClearWith.
	Progress func(ClearProgress)
}

// ClearProgress is how far a Clear has come on one master.
type ClearProgress struct {
	Node     string `json:"node"`     // the master's address
	Found    int    `json:"found"`    // keys under the prefix found there so far
	Unlinked int    `json:"unlinked"` // of those, deleted (0 in a dry run)
	Done     bool   `json:"done"`     // its scan is over
	Err      error  `json:"-"`        // why it stopped, when it failed
}

// ClearWith is [Store.Clear], master by master, reporting its progress,
// or, with DryRun, counting what it would delete. It returns each
// master's final count, in the order of their addresses. A dry run leaves
// the near cache alone. A key under the prefix written during the scan may
// or may not be counted, as SCAN promises.
func (s *Store) ClearWith(ctx context.Context, o ClearOptions) ([]ClearProgress, error) {
	if s.closed.Load() {
		return nil, s.fail("clear", cache.ErrClosed)
	}
	if s.near != nil && !o.DryRun {
		defer s.near.forgetAll()
	}
	c, err := s.connWithin(ctx)
	if err != nil {
		return nil, s.fail("clear", err)
	}
	masters, err := s.masters(ctx, c)
	if err != nil {
		return nil, s.fail("clear", err)
	}
	var errs []error
	report := make([]ClearProgress, 0, len(masters))
	for _, m := range masters {
		p := s.clearNode(ctx, c, m, o)
		report = append(report, p)
		if p.Err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", m.addr, p.Err))
		}
	}
	if len(errs) > 0 {
		return report, s.fail("clear", errors.Join(errs...))
	}
	return report, nil
}

// node is one server and the client that talks to it alone.
type node struct {
	addr   string
	client rueidis.Client
}

// masters returns the servers that take the writes, sorted by address: the
// one server of a standalone or Sentinel client, every master of a Cluster.
// For a Cluster it asks every node known for CLUSTER SLOTS at once, and
// believes the first to answer, so that a replica that is down or hung does
// not delay it.
func (s *Store) masters(ctx context.Context, c rueidis.Client) ([]node, error) {
	nodes := c.Nodes()
	if c.Mode() != rueidis.ClientModeCluster {
		out := make([]node, 0, len(nodes))
		for addr, n := range nodes {
			out = append(out, node{addr, n})
		}
		return out, nil
	}
	addrs, err := s.clusterMasters(ctx, nodes)
	if err != nil {
		return nil, err
	}
	out := make([]node, 0, len(addrs))
	for _, addr := range addrs {
		n, ok := nodes[addr]
		if !ok {
			return nil, fmt.Errorf("master %s is not yet known to the client (the cluster changed); try again", addr)
		}
		out = append(out, node{addr, n})
	}
	return out, nil
}

// clusterMasters returns the masters' addresses, sorted, from the first of
// nodes to answer CLUSTER SLOTS within the timeout.
func (s *Store) clusterMasters(ctx context.Context, nodes map[string]rueidis.Client) ([]string, error) {
	// The requests still out once one has answered run to their end,
	// within the timeout, rather than being cancelled: a request that is
	// cancelled while its node's connection is being dialled fails that
	// dial, and the next call to the node (this Ping's PING, this Clear's
	// SCAN) failed with "context canceled" in a new process.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	type answer struct {
		masters []string
		err     error
	}
	answers := make(chan answer, len(nodes))
	var wg sync.WaitGroup
	for addr, n := range nodes {
		wg.Go(func() {
			slots, err := n.Do(rctx, n.B().ClusterSlots().Build()).ToArray()
			if err != nil {
				answers <- answer{err: fmt.Errorf("node %s: cluster slots: %w", addr, err)}
				return
			}
			masters, err := parseSlotMasters(slots, addr)
			if err != nil {
				err = fmt.Errorf("node %s: cluster slots: %w", addr, err)
			}
			answers <- answer{masters, err}
		})
	}
	go func() {
		wg.Wait()
		cancel()
	}()
	var errs []error
	for range nodes {
		var a answer
		select {
		case a = <-answers:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if a.err == nil {
			return a.masters, nil
		}
		errs = append(errs, a.err)
	}
	if len(errs) == 0 {
		return nil, errors.New("no cluster node known")
	}
	return nil, errors.Join(errs...)
}

// parseSlotMasters returns the addresses of the masters in a CLUSTER SLOTS
// reply, sorted: each slot range is [start, end, master, replicas...], each
// node [endpoint, port, id, ...]. An empty endpoint means the node that
// answered (from); "?" an unknown one, skipped as rueidis skips it.
func parseSlotMasters(slots []rueidis.RedisMessage, from string) ([]string, error) {
	seen := map[string]bool{}
	for _, r := range slots {
		rng, err := r.ToArray()
		if err != nil || len(rng) < 3 {
			return nil, fmt.Errorf("unexpected slot range %v", r)
		}
		master, err := rng[2].ToArray()
		if err != nil || len(master) < 2 {
			return nil, fmt.Errorf("unexpected master %v", rng[2])
		}
		host, err := master[0].ToString()
		if err != nil {
			return nil, fmt.Errorf("unexpected master endpoint: %w", err)
		}
		port, err := master[1].AsInt64()
		if err != nil {
			return nil, fmt.Errorf("unexpected master port: %w", err)
		}
		switch host {
		case "?":
			continue
		case "":
			host, _, _ = net.SplitHostPort(from)
		}
		seen[net.JoinHostPort(host, strconv.FormatInt(port, 10))] = true
	}
	return slices.Sorted(maps.Keys(seen)), nil
}

func (s *Store) clearNode(ctx context.Context, c rueidis.Client, m node, o ClearOptions) ClearProgress {
	p := ClearProgress{Node: m.addr}
	p.Err = s.scan(ctx, m.client, func(keys []string) error {
		p.Found += len(keys)
		if !o.DryRun {
			// One UNLINK per key: in a Cluster, keys of one node may
			// belong to different slots, and rueidis routes each to its
			// master.
			cmds := make(rueidis.Commands, 0, len(keys))
			for _, k := range keys {
				cmds = append(cmds, c.B().Unlink().Key(k).Build())
			}
			uctx, cancel := context.WithTimeout(ctx, s.timeout)
			defer cancel()
			for _, r := range c.DoMulti(uctx, cmds...) {
				n, err := r.AsInt64()
				if err != nil {
					return fmt.Errorf("unlink: %w", err)
				}
				p.Unlinked += int(n) // 0 for a key that went meanwhile
			}
		}
		if o.Progress != nil {
			o.Progress(p)
		}
		return nil
	})
	p.Done = true
	if o.Progress != nil {
		o.Progress(p)
	}
	return p
}

// scan calls fn with each non-empty batch of the node's keys under the
// prefix; each SCAN round trip is bounded by the timeout.
func (s *Store) scan(ctx context.Context, node rueidis.Client, fn func(keys []string) error) error {
	var cursor uint64
	for {
		sctx, cancel := context.WithTimeout(ctx, s.timeout)
		e, err := node.Do(sctx, node.B().Scan().Cursor(cursor).Match(s.pattern).Count(scanBatch).Build()).AsScanEntry()
		cancel()
		if err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		if len(e.Elements) > 0 {
			if err := fn(e.Elements); err != nil {
				return err
			}
		}
		if cursor = e.Cursor; cursor == 0 {
			return nil
		}
	}
}

// Ping checks, within the timeout, that the servers the cache writes to
// answer and can take writes. It implements [cache.Pinger].
//
// With one server, or a Sentinel's master, it asks ROLE: a read-only
// replica (a server started with replicaof, or a master the client still
// follows after a failover demoted it) fails with an error matching
// [cache.ErrRefused], since every write to it fails with READONLY. A server
// that does not allow ROLE (an ACL user without it, a renamed command) is
// checked with PING alone. With a Cluster, every master must answer PING;
// replicas are not asked. Ping writes nothing.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel, c, err := s.begin(ctx)
	defer cancel()
	if err != nil {
		return s.fail("ping", err)
	}
	if c.Mode() == rueidis.ClientModeCluster {
		err = s.pingMasters(ctx, c)
	} else {
		err = pingWritable(ctx, c)
	}
	if err != nil {
		return s.fail("ping", err)
	}
	return nil
}

func (s *Store) pingMasters(ctx context.Context, c rueidis.Client) error {
	masters, err := s.masters(ctx, c)
	if err != nil {
		return err
	}
	for _, m := range masters {
		if err := m.client.Do(ctx, m.client.B().Ping().Build()).Error(); err != nil {
			return fmt.Errorf("node %s: %w", m.addr, err)
		}
		if err := servesData(ctx, m.client); err != nil {
			return fmt.Errorf("node %s: %w", m.addr, err)
		}
	}
	return nil
}

// servesData asks DBSIZE, which a server still loading its data answers
// with LOADING (as it does every read and write), while PING and ROLE
// succeed: a probe that took such a server for one that answers let calls
// through to fail, over and over, for as long as the load lasted. A server
// that does not allow DBSIZE (an ACL) answered, which is all a probe asks.
func servesData(ctx context.Context, c rueidis.Client) error {
	if err := c.Do(ctx, c.B().Dbsize().Build()).Error(); err != nil && !isRefusal(err) {
		return err
	}
	return nil
}

// pingWritable asks ROLE, and says why the server cannot take writes when
// it is not a master.
func pingWritable(ctx context.Context, c rueidis.Client) error {
	role, err := c.Do(ctx, c.B().Role().Build()).ToArray()
	if isRefusal(err) { // ROLE not allowed: PING at least
		return c.Do(ctx, c.B().Ping().Build()).Error()
	}
	if err != nil {
		return err
	}
	if len(role) == 0 {
		return errors.New("empty ROLE reply")
	}
	switch kind, _ := role[0].ToString(); kind {
	case "master":
		return servesData(ctx, c)
	case "slave", "replica":
		of := "another server"
		if len(role) >= 3 {
			host, _ := role[1].ToString()
			port, _ := role[2].AsInt64()
			of = net.JoinHostPort(host, strconv.FormatInt(port, 10))
		}
		return &refusedError{fmt.Errorf("the server is a read-only replica of %s: every write would fail", of)}
	case "sentinel":
		return &refusedError{errors.New("the server is a Sentinel, not a Redis server: add ?master_set=NAME to redis_url")}
	default:
		return &refusedError{fmt.Errorf("the server's role is %q, not master", kind)}
	}
}

// Close ends the connect attempt in progress, if any, at once: it closes
// every connection the store made, so a server that accepted a connection
// and never answered cannot make Close wait for the dial timeout. It ends
// the subscription of [Store.Watch], waking every watcher, and waits for its
// goroutine. Later calls return [cache.ErrClosed].
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.dial.close()
	s.watch.stop()
	s.mu.Lock()
	r := s.client.Swap(nil)
	s.mu.Unlock()
	if r != nil {
		r.c.Close()
	}
	s.wg.Wait()
	s.readsMu.Lock()
	s.noReads = true // no nearMiss starts from here on
	s.readsMu.Unlock()
	s.reads.Wait()
	s.watch.wait()
	if s.near != nil {
		s.near.close()
	}
	return nil
}

// Info is what an operator wants to know about the cache's Redis, as the
// ushka command's "cache stats" prints it.
type Info struct {
	// Keys counts the keys under the store's prefix, on every master: each
	// key once, however many replicas hold a copy.
	Keys int64 `json:"keys"`
	// Nodes is how many servers were asked: the masters of a Cluster (its
	// replicas are not asked), otherwise 1.
	Nodes int `json:"nodes"`
	// KeyspaceHits and KeyspaceMisses are the servers' lookup counters since
	// they started, summed over masters: every client's, not only this cache's.
	KeyspaceHits   int64 `json:"keyspace_hits"`
	KeyspaceMisses int64 `json:"keyspace_misses"`
	// UsedMemory is the masters' used_memory, summed, in bytes.
	UsedMemory int64 `json:"used_memory_bytes"`
	// TrackingClients counts the connections with client tracking on, the
	// near caches' connections among them (tracking_clients), and
	// TrackingKeys the keys the servers track for them
	// (tracking_total_keys), summed over masters: every client's.
	TrackingClients int64 `json:"tracking_clients"`
	TrackingKeys    int64 `json:"tracking_keys"`
}

// Info counts the keys under the prefix (with SCAN, as Clear finds them) and
// reads each master's INFO.
func (s *Store) Info(ctx context.Context) (Info, error) {
	var info Info
	if s.closed.Load() {
		return info, s.fail("info", cache.ErrClosed)
	}
	c, err := s.connWithin(ctx)
	if err != nil {
		return info, s.fail("info", err)
	}
	masters, err := s.masters(ctx, c)
	if err != nil {
		return info, s.fail("info", err)
	}
	for _, m := range masters {
		addr, node := m.addr, m.client
		info.Nodes++
		ictx, cancel := context.WithTimeout(ctx, s.timeout)
		text, err := node.Do(ictx, node.B().Info().Section("stats").Section("memory").Section("clients").Build()).ToString()
		cancel()
		if err != nil {
			return info, s.fail("info", fmt.Errorf("node %s: %w", addr, err))
		}
		for line := range strings.SplitSeq(text, "\n") {
			k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
			if !ok {
				continue
			}
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "keyspace_hits":
				info.KeyspaceHits += n
			case "keyspace_misses":
				info.KeyspaceMisses += n
			case "used_memory":
				info.UsedMemory += n
			case "tracking_clients":
				info.TrackingClients += n
			case "tracking_total_keys":
				info.TrackingKeys += n
			}
		}
		err = s.scan(ctx, node, func(keys []string) error {
			info.Keys += int64(len(keys))
			return nil
		})
		if err != nil {
			return info, s.fail("info", fmt.Errorf("node %s: %w", addr, err))
		}
	}
	return info, nil
}
