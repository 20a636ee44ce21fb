// Package redisurl parses a redis_url into plain options, strictly, with
// errors that never show the URL's password. It has no Redis client
// dependency, so that package cache can validate configuration with it and
// package cache/redis can turn the result into a client.
//
// # What an error may show
//
// A password may hold any byte, and people paste generated ones without
// percent-encoding them, or drop a "//" or an "@host". So errors and [Redact]
// never echo what might be part of a password:
//
//   - Everything between the scheme and the LAST "@" may be credentials: it
//     is shown as "***" (a well-formed URL that parses shows its user name,
//     as net/url's Redacted does).
//   - When that text holds a "?" or a "#", the last "@" may itself sit in a
//     query value or a fragment, so nothing after the scheme is shown.
//   - The value of any parameter whose name suggests a secret
//     (sentinel_password, ...), and everything after it in the query, is
//     "***": a password holding "&" would otherwise show its end as a
//     parameter.
//   - An invalid port, path, parameter value or fragment is never quoted:
//     that is where a password lands when its "@host" is missing. Messages
//     say what is wrong and what is expected instead.
//   - Only what has been checked to be harmless is shown: one of the known
//     schemes, a valid host[:port], a database number, parameter names that
//     are lowercase identifiers (and appear before any secret parameter),
//     and the values of db, dial_timeout and skip_verify when valid.
//
// A URL that parses is shown whole by [Redact], but for its password and
// secret parameters: what parsed into a host, a user name or a client name
// is one by the URL's own syntax.
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

// schemes are the schemes Parse accepts.
var schemes = []string{"redis", "rediss", "unix"}

// encodeHint tells how to write reserved characters in a password.
const encodeHint = `percent-encode "/", "?", "#" and "@" in a user name or password ` +
	`(as %2F, %3F, %23 and %40), and "@" anywhere else (%40)`

// Parse parses rawURL, one of:
//
//	redis://[user:pass@]host[:port][/db]
//	rediss://[user:pass@]host[:port][/db]        (TLS)
//	unix://[user:pass@]/path/to/redis.sock[?db=N]
//	redis://host1:port1?addr=host2:port2&addr=host3:port3   (Cluster seeds)
//	redis://sentinel1:26379?addr=sentinel2:26379&master_set=mymaster   (Sentinel)
//
// Errors show the URL reduced to what cannot be part of a password (see the
// package documentation), and never quote an invalid part of it.
func Parse(rawURL string) (Options, error) {
	if strings.TrimSpace(rawURL) == "" {
		return Options{}, fmt.Errorf("invalid redis_url: empty")
	}
	o, err := parse(rawURL)
	if err != nil {
		return Options{}, fmt.Errorf("invalid redis_url %q: %w", redactMalformed(rawURL), err)
	}
	return o, nil
}

// parse does Parse's work; its errors say what is wrong without quoting the
// URL.
func parse(rawURL string) (Options, error) {
	var o Options
	sp := split(rawURL)
	switch {
	case sp.untrustedScheme:
		return o, fmt.Errorf("unsupported scheme: use redis://, rediss:// or unix://")
	case sp.scheme == "":
		// Without a scheme nothing says what the text is: a host, or a
		// password pasted alone ("S3cr3t", "admin:54321"). Echo none of it.
		return o, fmt.Errorf("missing scheme: write redis://[USER:PASSWORD@]HOST[:PORT][/DB], or use rediss:// or unix://")
	case !slices.Contains(schemes, strings.ToLower(sp.scheme)):
		return o, fmt.Errorf("unsupported scheme %q: use redis://, rediss:// or unix://", sp.scheme)
	case !sp.slashes:
		return o, fmt.Errorf(`missing "//" after "%s:", as in %s://host:6379/0`, sp.scheme, sp.scheme)
	}
	scheme := strings.ToLower(sp.scheme)
	if sp.hasAt && strings.ContainsAny(sp.userinfo, "/?#@") {
		if scheme != "unix" && strings.HasPrefix(sp.userinfo, "/") {
			return o, fmt.Errorf(`too many "/" after "%s:": write %s://[USER:PASSWORD@]HOST[:PORT][/DB]`, sp.scheme, sp.scheme)
		}
		return o, fmt.Errorf("cannot tell where the password ends: %s", encodeHint)
	}
	if sp.hasFragment {
		return o, fmt.Errorf(`a "#" starts a fragment, which a redis_url cannot have (in a password, write "#" as %%23)`)
	}
	if scheme != "unix" && !sp.hasAt && sp.host == "" && strings.HasPrefix(sp.path, "/") {
		return o, fmt.Errorf(`too many "/" after "%s:": write %s://[USER:PASSWORD@]HOST[:PORT][/DB]`, sp.scheme, sp.scheme)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return o, urlError(err)
	}
	switch scheme {
	case "rediss":
		o.TLS = true
	case "unix":
		o.Unix = true
	}
	if u.User != nil {
		pw, ok := u.User.Password()
		if !ok {
			return o, fmt.Errorf(`the user info has no ":": write %s://:PASSWORD@HOST for a password alone, or %s://USER:PASSWORD@HOST`, scheme, scheme)
		}
		if pw == "" && u.User.Username() != "" {
			// "word:@host": an empty password after a name is no way to
			// log in; the name is more likely a password with a ":" in it.
			return o, fmt.Errorf(`the password after the user name is empty: write %s://:PASSWORD@HOST for a password alone (percent-encode ":" in it as %%3A), or %s://USER:PASSWORD@HOST`, scheme, scheme)
		}
		o.Username, o.Password = u.User.Username(), pw
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return o, fmt.Errorf("query: %w", queryError(err))
	}
	if err := checkParams(u.RawQuery, q); err != nil {
		return o, err
	}

	if o.Unix {
		if u.Host != "" {
			return o, fmt.Errorf(`a unix URL has no host: write unix:///path/to/redis.sock (three slashes)`)
		}
		if u.Path == "" || u.Path == "/" {
			return o, fmt.Errorf("missing socket path, as in unix:///run/redis/redis.sock")
		}
		o.Addrs = []string{u.Path}
	} else {
		addr, host, err := hostPort(u.Host)
		if err != nil {
			return o, err
		}
		o.Addrs, o.ServerName = []string{addr}, host
		switch p := strings.TrimPrefix(u.Path, "/"); {
		case p == "":
		case strings.Contains(p, "/"):
			return o, fmt.Errorf("path: want at most a database number, as in /0")
		default:
			if o.DB, err = dbNumber(p); err != nil {
				return o, fmt.Errorf("path: %w", err)
			}
		}
	}
	if v := q.Get("db"); q.Has("db") {
		if !o.Unix && u.Path != "" && u.Path != "/" {
			return o, fmt.Errorf("database given twice, in the path and as db=")
		}
		if o.DB, err = dbNumber(v); err != nil {
			return o, fmt.Errorf("db: %w", err)
		}
	}
	for i, a := range q["addr"] {
		if o.Unix {
			return o, fmt.Errorf("addr= is not allowed with unix://")
		}
		addr, _, err := hostPort(a)
		if err != nil {
			return o, fmt.Errorf("the %s addr=: %w", ordinal(i+1), err)
		}
		o.Addrs = append(o.Addrs, addr)
	}
	if v := q.Get("dial_timeout"); q.Has("dial_timeout") {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return o, fmt.Errorf("dial_timeout: want a positive duration such as 2s")
		}
		o.DialTimeout = d
	}
	if v := q.Get("skip_verify"); q.Has("skip_verify") {
		if !o.TLS {
			return o, fmt.Errorf("skip_verify is only for rediss:// URLs")
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return o, fmt.Errorf("skip_verify: want true or false")
		}
		o.SkipVerify = b
	}
	o.MasterSet = q.Get("master_set")
	if q.Has("master_set") && o.MasterSet == "" {
		return o, fmt.Errorf("master_set is empty")
	}
	if o.MasterSet != "" && o.Unix {
		return o, fmt.Errorf("master_set is not allowed with unix://")
	}
	o.SentinelUsername = q.Get("sentinel_username")
	o.SentinelPassword = q.Get("sentinel_password")
	if (q.Has("sentinel_username") || q.Has("sentinel_password")) && o.MasterSet == "" {
		return o, fmt.Errorf("sentinel_username and sentinel_password need master_set")
	}
	o.ClientName = q.Get("client_name")
	return o, nil
}

// checkParams rejects unknown and repeated parameters. It names an unknown
// parameter only when the name is a lowercase identifier written before any
// secret parameter: after one, a "&" may have been part of its value.
func checkParams(rawQuery string, q url.Values) error {
	var shown []string
	hidden := 0
	afterSecret := false
	for _, kv := range strings.Split(rawQuery, "&") {
		if kv == "" {
			continue
		}
		k, _, _ := strings.Cut(kv, "=")
		k, _ = url.QueryUnescape(k) // ParseQuery succeeded: so does this
		switch {
		case slices.Contains(Params, k):
		case afterSecret || !isParamName(k):
			hidden++
		case !slices.Contains(shown, k):
			shown = append(shown, k)
		}
		if isSecretName(k) {
			afterSecret = true
		}
	}
	if len(shown)+hidden > 0 {
		slices.Sort(shown)
		var names string
		switch {
		case hidden == 0:
			names = strings.Join(shown, ", ")
		case len(shown) == 0:
			names = fmt.Sprintf("(%d, not shown: they may hold part of a password; percent-encode \"&\", \"#\" and \"+\" in one)", hidden)
		default:
			names = fmt.Sprintf("%s and %d more not shown (they may hold part of a password; percent-encode \"&\", \"#\" and \"+\" in one)",
				strings.Join(shown, ", "), hidden)
		}
		return fmt.Errorf("unknown parameter(s) %s (known: %s)", names, strings.Join(Params, ", "))
	}
	for _, k := range Params {
		if vs := q[k]; k != "addr" && len(vs) > 1 {
			return fmt.Errorf("parameter %s given %d times", k, len(vs))
		}
	}
	return nil
}

// urlError says why url.Parse failed without its quote of the URL, or of the
// piece it stumbled on.
func urlError(err error) error {
	msg := err.Error()
	if ue, ok := err.(*url.Error); ok {
		msg = ue.Err.Error()
	}
	switch {
	case strings.Contains(msg, "control character"):
		return fmt.Errorf("holds a control character")
	case strings.Contains(msg, "invalid userinfo"):
		return fmt.Errorf("the user name or password holds a character that must be percent-encoded; %s", encodeHint)
	case strings.Contains(msg, "escape"):
		return fmt.Errorf(`a "%%" that does not start a %%XX escape: write "%%" as %%25`)
	case strings.Contains(msg, "port"):
		return fmt.Errorf("port: want a number from 1 to 65535")
	case strings.Contains(msg, "host"):
		return fmt.Errorf("host: not a valid host name or [IPv6] address")
	}
	return fmt.Errorf("not a valid URL")
}

// queryError says why url.ParseQuery failed without quoting the query.
func queryError(err error) error {
	if strings.Contains(err.Error(), "semicolon") {
		return fmt.Errorf(`";" does not separate parameters: use "&", and write ";" in a value as %%3B`)
	}
	return fmt.Errorf(`a "%%" that does not start a %%XX escape: write "%%" as %%25`)
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
			return "", "", fmt.Errorf("want host:port, as in redis://localhost:6379/0")
		}
		port = "6379"
	}
	if host == "" {
		return "", "", fmt.Errorf("missing host before the port, as in localhost:6379")
	}
	if ip, _, _ := strings.Cut(host, "%"); !isHostChars(host) && !(strings.Contains(ip, ":") && net.ParseIP(ip) != nil) {
		// Not echoed: text that is no host name may be a misplaced password.
		return "", "", fmt.Errorf("host: want a name of letters, digits, '.', '-' and '_', or an IP address")
	}
	if !validPort(port) {
		return "", "", fmt.Errorf("port: want a number from 1 to 65535")
	}
	return net.JoinHostPort(host, port), host, nil
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535 && p[0] != '+' && p[0] != '-'
}

func dbNumber(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || s[0] == '+' {
		return 0, fmt.Errorf("want a database number >= 0")
	}
	return n, nil
}

func ordinal(n int) string {
	switch n {
	case 1:
		return "1st"
	case 2:
		return "2nd"
	case 3:
		return "3rd"
	}
	return strconv.Itoa(n) + "th"
}

// Redact returns rawURL fit to print: a URL that [Parse] accepts is shown
// with its password, and the value of any parameter whose name suggests a
// secret, replaced by "***"; any other is reduced to what cannot be part of a
// password, as Parse's errors show it (see the package documentation).
func Redact(rawURL string) string {
	if rawURL == "" {
		return ""
	}
	if _, err := parse(rawURL); err != nil {
		return redactMalformed(rawURL)
	}
	u, err := url.Parse(rawURL)
	if err != nil { // parse succeeded, so url.Parse does: defensive only
		return redactMalformed(rawURL)
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
			if isSecretName(k) {
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

// urlParts is a URL split leniently, for telling what is wrong and what may
// be shown: the user info runs to the last "@", since a password may hold
// "/", "?", "#" or "@".
type urlParts struct {
	scheme          string // trusted scheme (see split), as written
	untrustedScheme bool   // a scheme-like word that may be part of the credentials
	slashes         bool   // "//" after the scheme
	hasAt           bool
	userinfo        string // between the authority's start and the last "@"
	host            string // up to the first "/", "?" or "#" after that
	path            string
	query           string
	hasQuery        bool
	hasFragment     bool
}

func split(raw string) urlParts {
	var p urlParts
	rest := raw
	if i := schemeEnd(raw); i > 0 {
		w, after := raw[:i], raw[i+1:]
		switch {
		case slices.Contains(schemes, strings.ToLower(w)):
			p.scheme, rest = w, after
		case strings.HasPrefix(after, "//") && !strings.Contains(after, "@") && isParamName(w):
			p.scheme, rest = w, after // "http://host": a scheme by all readings
		case strings.HasPrefix(after, "//"):
			// "x://...@h": x may be part of a password pasted without a
			// scheme; so may a word that is not a lowercase identifier.
			p.untrustedScheme = true
		}
	}
	if strings.HasPrefix(rest, "//") {
		p.slashes, rest = true, rest[2:]
	}
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		p.hasAt, p.userinfo, rest = true, rest[:at], rest[at+1:]
	}
	rest, _, p.hasFragment = strings.Cut(rest, "#")
	rest, p.query, p.hasQuery = strings.Cut(rest, "?")
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		p.host, p.path = rest[:i], rest[i:]
	} else {
		p.host = rest
	}
	return p
}

// schemeEnd returns the index of the ":" ending a leading scheme, or -1.
func schemeEnd(s string) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.':
			if i == 0 {
				return -1
			}
		case c == ':':
			return i
		default:
			return -1
		}
	}
	return -1
}

// redactMalformed keeps of rawURL only what has been checked to be harmless.
func redactMalformed(raw string) string {
	p := split(raw)
	if p.untrustedScheme {
		return "***"
	}
	if p.scheme == "" {
		// No scheme: the text may be a password pasted alone.
		return "***"
	}
	var b strings.Builder
	b.WriteString(p.scheme + ":")
	if p.slashes {
		b.WriteString("//")
	}
	if p.hasAt {
		b.WriteString("***@")
		if strings.ContainsAny(p.userinfo, "?#") {
			// The last "@" may be in a query value or a fragment: what
			// follows it may be the end of a password.
			b.WriteString("***")
			return b.String()
		}
	} else if p.scheme != "" && !p.slashes {
		// "redis:secret": no "//", no "@": nothing says what the rest is.
		if p.host != "" || p.path != "" || p.hasQuery || p.hasFragment {
			b.WriteString("***")
		}
		return b.String()
	}
	b.WriteString(redactHost(p.host))
	switch {
	case p.path == "":
	case strings.EqualFold(p.scheme, "unix") && p.host == "" && safePath(p.path):
		b.WriteString(p.path) // unix:///run/redis.sock: a socket path
	case p.path == "/" || (p.path[0] == '/' && isDigits(p.path[1:]) && len(p.path) <= 6):
		b.WriteString(p.path)
	default:
		b.WriteString("/***")
	}
	if p.hasQuery {
		b.WriteString("?" + redactQuery(p.query))
	}
	if p.hasFragment {
		b.WriteString("#***")
	}
	return b.String()
}

// redactHost shows a valid host[:port], the host of an invalid port, or
// "***".
func redactHost(hp string) string {
	if hp == "" || validHostPort(hp) {
		return hp
	}
	if i := strings.LastIndexByte(hp, ':'); i >= 0 && (i == 0 || validHost(hp[:i])) {
		return hp[:i] + ":***"
	}
	return "***"
}

// redactQuery shows parameter names that are lowercase identifiers, values
// that are numbers, durations or booleans where those are expected, and
// nothing after a secret parameter.
func redactQuery(q string) string {
	parts := strings.Split(q, "&")
	out := make([]string, 0, len(parts))
	for i, kv := range parts {
		k, v, hasV := strings.Cut(kv, "=")
		if !isParamName(k) {
			out = append(out, "***")
			continue
		}
		if isSecretName(k) {
			out = append(out, k+"=***")
			if i < len(parts)-1 {
				out = append(out, "***")
			}
			break
		}
		switch {
		case !hasV:
			out = append(out, k)
		case v == "":
			out = append(out, k+"=")
		case k == "db" && isDigits(v) && len(v) <= 5,
			k == "dial_timeout" && safeDuration(v),
			k == "skip_verify" && (v == "true" || v == "false" || v == "1" || v == "0"):
			out = append(out, k+"="+v)
		default:
			out = append(out, k+"=***")
		}
	}
	return strings.Join(out, "&")
}

func safeDuration(v string) bool {
	if len(v) > 20 || strings.ContainsFunc(v, func(r rune) bool { return !strings.ContainsRune("0123456789.nsuµmh", r) }) {
		return false
	}
	_, err := time.ParseDuration(v)
	return err == nil
}

// isParamName reports a lowercase identifier: a name Parse may repeat.
func isParamName(k string) bool {
	if k == "" || len(k) > 40 || k[0] < 'a' || k[0] > 'z' {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// isSecretName reports a parameter name that suggests its value is a secret.
func isSecretName(k string) bool {
	k = strings.ToLower(k)
	for _, s := range []string{"pass", "pwd", "secret", "auth", "token", "cred"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// validHostPort reports host or host:port with a valid host and port 1-65535.
func validHostPort(hp string) bool {
	if validHost(hp) {
		return true
	}
	i := strings.LastIndexByte(hp, ':')
	return i > 0 && validHost(hp[:i]) && validPort(hp[i+1:])
}

// validHost reports a DNS name or IPv4 address, or an [IPv6] address.
func validHost(h string) bool {
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		ip, zone, _ := strings.Cut(h[1:len(h)-1], "%25")
		return net.ParseIP(ip) != nil && strings.Contains(ip, ":") && (zone == "" || isHostChars(zone))
	}
	return isHostChars(h)
}

func isHostChars(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// safePath reports a socket path of plain file name characters.
func safePath(p string) bool {
	for i := 0; i < len(p); i++ {
		if c := p[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._-/", c) >= 0) {
			return false
		}
	}
	return true
}
