// Package redisurl parses a redis_url into plain options, strictly, with
// errors that never show the URL's password. It has no Redis client
// dependency, so that package cache can validate configuration with it and
// package cache/redis can turn the result into a client.
package redisurl

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Options is what a redis_url says.
type Options struct {
	// Addrs are host:port pairs (or one socket path when Unix is set):
	// one for a single server, several to seed a Cluster, or the Sentinels
	// when MasterSet is set.
	Addrs []string
	// Unix reports a unix:// URL; Addrs[0] is then the socket path.
	Unix bool
	// TLS reports a rediss:// URL.
	TLS bool
	// ServerName is the host name TLS verifies, from the first address.
	ServerName string
	// SkipVerify disables TLS certificate verification (skip_verify=true).
	SkipVerify bool
	// Username and Password authenticate (AUTH).
	Username, Password string
	// DB is the database number (SELECT), from the path or the db parameter.
	DB int
	// MasterSet names the Sentinel master set; Addrs are then Sentinels.
	MasterSet string
	// SentinelUsername and SentinelPassword authenticate to the Sentinels.
	SentinelUsername, SentinelPassword string
	// ClientName is sent with CLIENT SETNAME.
	ClientName string
	// DialTimeout bounds connecting; 0 means the caller's default.
	DialTimeout time.Duration
}

// Params are the query parameters a redis_url may carry.
var Params = []string{
	"addr", "client_name", "db", "dial_timeout", "master_set",
	"sentinel_password", "sentinel_username", "skip_verify",
}

// Parse parses rawURL, one of:
//
//	redis://[user:pass@]host[:port][/db]
//	rediss://[user:pass@]host[:port][/db]        (TLS)
//	unix://[user:pass@]/path/to/redis.sock[?db=N]
//	redis://host1:port1?addr=host2:port2&addr=host3:port3   (Cluster seeds)
//	redis://sentinel1:26379?addr=sentinel2:26379&master_set=mymaster   (Sentinel)
//
// Errors show the URL with its password replaced by "***".
func Parse(rawURL string) (Options, error) {
	var o Options
	fail := func(format string, args ...any) (Options, error) {
		return Options{}, fmt.Errorf("invalid redis_url %q: %s", Redact(rawURL), fmt.Sprintf(format, args...))
	}
	if strings.TrimSpace(rawURL) == "" {
		return Options{}, fmt.Errorf("invalid redis_url: empty")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error prints the whole URL, password included: say only why.
		msg := err.Error()
		if ue, ok := err.(*url.Error); ok {
			msg = ue.Err.Error()
		}
		return fail("%s", msg)
	}
	if u.Opaque != "" {
		if _, err := strconv.Atoi(u.Opaque); err == nil { // "localhost:6379"
			return fail("missing scheme, as in redis://%s:%s/0", u.Scheme, u.Opaque)
		}
		return fail(`missing "//" after the scheme, as in redis://host:6379/0`)
	}
	switch u.Scheme {
	case "redis":
	case "rediss":
		o.TLS = true
	case "unix":
		o.Unix = true
	case "":
		return fail(`missing scheme: use redis://, rediss:// or unix://`)
	default:
		return fail("unsupported scheme %q: use redis://, rediss:// or unix://", u.Scheme)
	}
	if u.User != nil {
		o.Username = u.User.Username()
		o.Password, _ = u.User.Password()
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return fail("query: %v", err)
	}
	var unknown []string
	for k := range q {
		if !slices.Contains(Params, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return fail("unknown parameter(s) %s (known: %s)", strings.Join(unknown, ", "), strings.Join(Params, ", "))
	}
	for k, vs := range q {
		if k != "addr" && len(vs) > 1 {
			return fail("parameter %s given %d times", k, len(vs))
		}
	}

	if o.Unix {
		if u.Host != "" {
			return fail(`a unix URL has no host: write unix:///path/to/redis.sock (three slashes)`)
		}
		if u.Path == "" || u.Path == "/" {
			return fail("missing socket path, as in unix:///run/redis/redis.sock")
		}
		o.Addrs = []string{u.Path}
	} else {
		addr, host, err := hostPort(u.Host)
		if err != nil {
			return fail("%v", err)
		}
		o.Addrs, o.ServerName = []string{addr}, host
		switch p := strings.TrimPrefix(u.Path, "/"); {
		case p == "":
		case strings.Contains(p, "/"):
			return fail("path %q: want at most a database number, as in /0", u.Path)
		default:
			if o.DB, err = dbNumber(p); err != nil {
				return fail("%v", err)
			}
		}
	}
	if v := q.Get("db"); q.Has("db") {
		if !o.Unix && u.Path != "" && u.Path != "/" {
			return fail("database given twice, in the path and as db=")
		}
		if o.DB, err = dbNumber(v); err != nil {
			return fail("%v", err)
		}
	}
	for _, a := range q["addr"] {
		if o.Unix {
			return fail("addr= is not allowed with unix://")
		}
		addr, _, err := hostPort(a)
		if err != nil {
			return fail("addr=%s: %v", a, err)
		}
		o.Addrs = append(o.Addrs, addr)
	}
	if v := q.Get("dial_timeout"); q.Has("dial_timeout") {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fail("dial_timeout=%s: want a positive duration such as 2s", v)
		}
		o.DialTimeout = d
	}
	if v := q.Get("skip_verify"); q.Has("skip_verify") {
		if !o.TLS {
			return fail("skip_verify is only for rediss:// URLs")
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fail("skip_verify=%s: want true or false", v)
		}
		o.SkipVerify = b
	}
	o.MasterSet = q.Get("master_set")
	if q.Has("master_set") && o.MasterSet == "" {
		return fail("master_set is empty")
	}
	if o.MasterSet != "" && o.Unix {
		return fail("master_set is not allowed with unix://")
	}
	o.SentinelUsername = q.Get("sentinel_username")
	o.SentinelPassword = q.Get("sentinel_password")
	if (q.Has("sentinel_username") || q.Has("sentinel_password")) && o.MasterSet == "" {
		return fail("sentinel_username and sentinel_password need master_set")
	}
	o.ClientName = q.Get("client_name")
	return o, nil
}

func hostPort(hp string) (addr, host string, err error) {
	if hp == "" {
		return "", "", fmt.Errorf("missing host, as in redis://localhost:6379/0")
	}
	host, port, err := net.SplitHostPort(hp)
	if err != nil { // no port: the default one
		switch {
		case strings.HasPrefix(hp, "[") && strings.HasSuffix(hp, "]"):
			host = hp[1 : len(hp)-1]
		case !strings.Contains(hp, ":"):
			host = hp
		default:
			return "", "", fmt.Errorf("address %q: want host:port", hp)
		}
		port = "6379"
	}
	if host == "" {
		return "", "", fmt.Errorf("address %q: missing host", hp)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", "", fmt.Errorf("port %q: want a number from 1 to 65535", port)
	}
	return net.JoinHostPort(host, port), host, nil
}

func dbNumber(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("database %q: want a number >= 0", s)
	}
	return n, nil
}

// Redact returns rawURL with the password of its user info, and any query
// parameter whose name contains "password", replaced by "***". A URL that
// does not parse is reduced to its scheme, or to "***", so that a malformed
// URL never leaks what it holds.
func Redact(rawURL string) string {
	if rawURL == "" {
		return ""
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		if i := strings.Index(rawURL, "://"); i > 0 && !strings.ContainsAny(rawURL[:i], "@:/") {
			return rawURL[:i] + "://***"
		}
		return "***"
	}
	// url.URL.String would encode "***" as %2A%2A%2A: mark with a plain
	// placeholder, then swap it in.
	const mark = "REDACTED0x2a"
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), mark)
	}
	if u.RawQuery != "" {
		q, changed := u.Query(), false
		for k := range q {
			if strings.Contains(strings.ToLower(k), "password") {
				q.Set(k, mark)
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	return strings.ReplaceAll(u.String(), mark, "***")
}
