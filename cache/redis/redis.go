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
// every node for them, with the prefix's glob characters escaped, and UNLINKs
// them in batches. It never runs FLUSHDB; other applications' keys in the
// same database survive, including those whose names merely start like the
// prefix ("ushka" and "ushkax:1" are not under "ushka:").
//
// # Failures
//
// Every call is bounded by its context and by the configured timeout
// (default 250ms), so a slow or dead Redis cannot stall a request. [Open]
// does not need Redis to be up: the connection is made in the background
// and remade when it fails, at most once a second, and the same Store works
// again when Redis comes back.
package redis

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
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

// scanBatch is the COUNT hint of each SCAN in Clear.
const scanBatch = 1000

// Store is a [cache.Store] on Redis. Create it with [Open]; it is safe for
// concurrent use.
type Store struct {
	opt     rueidis.ClientOption
	prefix  string
	pattern string // SCAN MATCH pattern of the prefix's keys
	timeout time.Duration
	bounds  *timeouts
	where   string // the redacted URL, for errors

	client atomic.Pointer[clientRef]
	closed atomic.Bool

	mu      sync.Mutex
	dialing chan struct{} // closed when the running connect attempt ends
	lastErr error
	lastTry time.Time
	wg      sync.WaitGroup // the connect goroutine
}

type clientRef struct{ c rueidis.Client }

var (
	_ cache.Store  = (*Store)(nil)
	_ cache.Pinger = (*Store)(nil)
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
	s := &Store{
		opt:     opt,
		prefix:  cfg.KeyPrefix,
		pattern: escapeGlob(cfg.KeyPrefix) + "*",
		timeout: cfg.Timeout,
		bounds:  newTimeouts(cfg.Timeout),
		where:   cfg.RedisURL.String(),
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
	}
	opt.Dialer.Timeout = 5 * time.Second
	if u.DialTimeout > 0 {
		opt.Dialer.Timeout = u.DialTimeout
	}
	if u.Unix {
		opt.DialCtxFn = func(ctx context.Context, path string, d *net.Dialer, _ *tls.Config) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		}
	}
	if u.TLS {
		tc := &tls.Config{ServerName: u.ServerName, MinVersion: tls.VersionTLS12, InsecureSkipVerify: u.SkipVerify}
		if cfg.TLSCAFile != "" {
			pem, err := os.ReadFile(cfg.TLSCAFile)
			if err != nil {
				return opt, fmt.Errorf("redis: tls_ca_file: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return opt, fmt.Errorf("redis: tls_ca_file %s: no PEM certificate in it", cfg.TLSCAFile)
			}
		}
		opt.TLSConfig = tc
	} else if cfg.TLSCAFile != "" {
		return opt, errors.New("redis: tls_ca_file is set but redis_url is not rediss://")
	}
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

// escapeGlob escapes the characters SCAN MATCH treats specially.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\', '^', '-':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
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
	go func() {
		defer s.wg.Done()
		c, err := rueidis.NewClient(s.opt)
		s.mu.Lock()
		defer s.mu.Unlock()
		switch {
		case err != nil:
			s.lastErr = err
		case s.closed.Load():
			c.Close()
		default:
			s.client.Store(&clientRef{c})
			s.lastErr = nil
		}
		s.dialing = nil
		close(done)
	}()
	return done
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
		return nil, fmt.Errorf("still connecting: %w", ctx.Err())
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
// long it waited. It never includes the password.
func (s *Store) fail(op string, err error) error {
	if errors.Is(err, cache.ErrClosed) || errors.Is(err, rueidis.ErrClosing) && s.closed.Load() {
		return fmt.Errorf("redis: %s: %w", op, cache.ErrClosed)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("timed out (timeout %v, or the caller's deadline if sooner): %w", s.timeout, err)
	}
	return fmt.Errorf("redis %s: %s: %w", s.where, op, err)
}

// Get implements [cache.Store].
func (s *Store) Get(ctx context.Context, key string) ([]byte, bool, error) {
	ctx, cancel, c, err := s.begin(ctx)
	defer cancel()
	if err != nil {
		return nil, false, s.fail("get", err)
	}
	b, err := c.Do(ctx, c.B().Get().Key(s.prefix+key).Build()).AsBytes()
	if rueidis.IsRedisNil(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, s.fail("get", err)
	}
	if b == nil {
		b = []byte{}
	}
	return b, true, nil
}

// Set implements [cache.Store]: SET key value [PX ms], the ttl rounded up
// to whole milliseconds.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	ctx, cancel, c, err := s.begin(ctx)
	defer cancel()
	if err != nil {
		return s.fail("set", err)
	}
	set := c.B().Set().Key(s.prefix + key).Value(rueidis.BinaryString(value))
	var cmd rueidis.Completed
	if ttl > 0 {
		ms := (ttl + time.Millisecond - 1) / time.Millisecond
		cmd = set.PxMilliseconds(int64(ms)).Build()
	} else {
		cmd = set.Build()
	}
	if err := c.Do(ctx, cmd).Error(); err != nil {
		return s.fail("set", err)
	}
	return nil
}

// Delete implements [cache.Store].
func (s *Store) Delete(ctx context.Context, key string) error {
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
// on every node, and no others. Each SCAN and each batch of UNLINKs is
// bounded by the timeout; the whole is bounded by ctx alone, since a large
// cache takes many round trips to clear.
func (s *Store) Clear(ctx context.Context) error {
	if s.closed.Load() {
		return s.fail("clear", cache.ErrClosed)
	}
	c, err := s.connWithin(ctx)
	if err != nil {
		return s.fail("clear", err)
	}
	for addr, node := range c.Nodes() {
		if err := s.clearNode(ctx, c, node); err != nil {
			return s.fail("clear", fmt.Errorf("node %s: %w", addr, err))
		}
	}
	return nil
}

func (s *Store) clearNode(ctx context.Context, c, node rueidis.Client) error {
	return s.scan(ctx, node, func(keys []string) error {
		// One UNLINK per key: in a Cluster, keys of one node may belong to
		// different slots, and rueidis routes each to its master.
		cmds := make(rueidis.Commands, 0, len(keys))
		for _, k := range keys {
			cmds = append(cmds, c.B().Unlink().Key(k).Build())
		}
		uctx, cancel := context.WithTimeout(ctx, s.timeout)
		defer cancel()
		for _, r := range c.DoMulti(uctx, cmds...) {
			if err := r.Error(); err != nil {
				return fmt.Errorf("unlink: %w", err)
			}
		}
		return nil
	})
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

// Ping checks that Redis answers, within the timeout. It implements
// [cache.Pinger].
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel, c, err := s.begin(ctx)
	defer cancel()
	if err != nil {
		return s.fail("ping", err)
	}
	if err := c.Do(ctx, c.B().Ping().Build()).Error(); err != nil {
		return s.fail("ping", err)
	}
	return nil
}

// Close closes the client's connections and waits for a connect attempt in
// progress. Later calls return [cache.ErrClosed].
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.mu.Lock()
	r := s.client.Swap(nil)
	s.mu.Unlock()
	if r != nil {
		r.c.Close()
	}
	s.wg.Wait()
	return nil
}

// Info is what an operator wants to know about the cache's Redis, as the
// ushka command's "cache stats" prints it.
type Info struct {
	// Keys counts the keys under the store's prefix, on every node.
	Keys int64 `json:"keys"`
	// Nodes is how many nodes were asked (masters and replicas of a Cluster).
	Nodes int `json:"nodes"`
	// KeyspaceHits and KeyspaceMisses are the servers' lookup counters since
	// they started, summed over nodes: every client's, not only this cache's.
	KeyspaceHits   int64 `json:"keyspace_hits"`
	KeyspaceMisses int64 `json:"keyspace_misses"`
	// UsedMemory is the servers' used_memory, summed, in bytes.
	UsedMemory int64 `json:"used_memory_bytes"`
}

// Info counts the keys under the prefix (with SCAN, as Clear finds them) and
// reads each node's INFO.
func (s *Store) Info(ctx context.Context) (Info, error) {
	var info Info
	if s.closed.Load() {
		return info, s.fail("info", cache.ErrClosed)
	}
	c, err := s.connWithin(ctx)
	if err != nil {
		return info, s.fail("info", err)
	}
	for addr, node := range c.Nodes() {
		info.Nodes++
		ictx, cancel := context.WithTimeout(ctx, s.timeout)
		text, err := node.Do(ictx, node.B().Info().Section("stats").Section("memory").Build()).ToString()
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
