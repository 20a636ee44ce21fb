package redisurl

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Options
	}{
		{"redis://localhost:6379/0", Options{Addrs: []string{"localhost:6379"}, ServerName: "localhost"}},
		{"redis://localhost", Options{Addrs: []string{"localhost:6379"}, ServerName: "localhost"}},
		{"redis://cache.internal:6380/3", Options{Addrs: []string{"cache.internal:6380"}, ServerName: "cache.internal", DB: 3}},
		{"redis://:s3cret@h:1/2", Options{Addrs: []string{"h:1"}, ServerName: "h", Password: "s3cret", DB: 2}},
		{"redis://app:s3cret@h:1", Options{Addrs: []string{"h:1"}, ServerName: "h", Username: "app", Password: "s3cret"}},
		{"redis://[::1]:7000", Options{Addrs: []string{"[::1]:7000"}, ServerName: "::1"}},
		{"redis://[::1]", Options{Addrs: []string{"[::1]:6379"}, ServerName: "::1"}},
		{"rediss://h:6380/0", Options{Addrs: []string{"h:6380"}, ServerName: "h", TLS: true}},
		{"rediss://h?skip_verify=true", Options{Addrs: []string{"h:6379"}, ServerName: "h", TLS: true, SkipVerify: true}},
		{"unix:///run/redis.sock", Options{Addrs: []string{"/run/redis.sock"}, Unix: true}},
		{"unix://:pw@/run/redis.sock?db=4", Options{Addrs: []string{"/run/redis.sock"}, Unix: true, Password: "pw", DB: 4}},
		{"redis://a:7000?addr=b:7001&addr=c", Options{Addrs: []string{"a:7000", "b:7001", "c:6379"}, ServerName: "a"}},
		{"redis://s1:26379?addr=s2:26379&master_set=mymaster&sentinel_password=sp", Options{
			Addrs: []string{"s1:26379", "s2:26379"}, ServerName: "s1", MasterSet: "mymaster", SentinelPassword: "sp"}},
		{"redis://h?db=5&client_name=web&dial_timeout=2s", Options{Addrs: []string{"h:6379"}, ServerName: "h", DB: 5, ClientName: "web", DialTimeout: 2 * time.Second}},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q) = %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Parse(%q) =\n  %+v\nwant\n  %+v", tt.in, got, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	const known = "(known: addr, client_name, db, dial_timeout, master_set, sentinel_password, sentinel_username, skip_verify)"
	tests := []struct{ in, want string }{
		{"", `invalid redis_url: empty`},
		{"localhost:6379", `invalid redis_url "***": missing scheme: write redis://[USER:PASSWORD@]HOST[:PORT][/DB]`},
		{"redis:localhost", `invalid redis_url "redis:***": missing "//" after "redis:", as in redis://host:6379/0`},
		{"//localhost:6379", `invalid redis_url "***": missing scheme: write redis://[USER:PASSWORD@]HOST[:PORT][/DB]`},
		{"http://localhost", `invalid redis_url "http://localhost": unsupported scheme "http": use redis://, rediss:// or unix://`},
		{"redis://", `invalid redis_url "redis://": missing host, as in redis://localhost:6379/0`},
		{"redis://:s3cret@h:99999", `invalid redis_url "redis://***@h:***": port: want a number from 1 to 65535`},
		{"redis://:s3cret@h:port", `invalid redis_url "redis://***@h:***": port: want a number from 1 to 65535`},
		{"redis://h/zero", `invalid redis_url "redis://h/***": path: want a database number >= 0`},
		{"redis://h/0/1", `invalid redis_url "redis://h/***": path: want at most a database number, as in /0`},
		{"redis://h/0?db=1", `invalid redis_url "redis://h/0?db=1": database given twice, in the path and as db=`},
		{"redis://h?timeout=1s&password=s3cret", `invalid redis_url "redis://h?timeout=***&password=***": unknown parameter(s) password, timeout ` + known},
		{"redis://h?password=s3cret&timeout=1s", `invalid redis_url "redis://h?password=***&***": unknown parameter(s) password and 1 more not shown (they may hold part of a password; percent-encode "&", "#" and "+" in one) ` + known},
		{"redis://h?addr=:1", `invalid redis_url "redis://h?addr=***": the 1st addr=: missing host before the port, as in localhost:6379`},
		{"redis://s3cret:@h:6379", `invalid redis_url "redis://***@h:6379": the password after the user name is empty: write redis://:PASSWORD@HOST for a password alone (percent-encode ":" in it as %3A), or redis://USER:PASSWORD@HOST`},
		// Not a host: was taken as one and shown by Redact (a password in addr=, found by the leak property).
		{"redis://h?addr=s3cret](", `invalid redis_url "redis://h?addr=***": the 1st addr=: host: want a name of letters, digits, '.', '-' and '_', or an IP address`},
		{"redis://h?addr=a:1&addr=b:0", `invalid redis_url "redis://h?addr=***&addr=***": the 2nd addr=: port: want a number from 1 to 65535`},
		{"redis://h?skip_verify=true", `invalid redis_url "redis://h?skip_verify=true": skip_verify is only for rediss:// URLs`},
		{"unix://host/path.sock", `invalid redis_url "unix://host/***": a unix URL has no host: write unix:///path/to/redis.sock (three slashes)`},
		{"unix://", `invalid redis_url "unix://": missing socket path, as in unix:///run/redis/redis.sock`},
		{"unix:///tmp/r.sock?addr=h:1", `invalid redis_url "unix:///tmp/r.sock?addr=***": addr= is not allowed with unix://`},
		{"redis://h?master_set=", `invalid redis_url "redis://h?master_set=": master_set is empty`},
		{"redis://h?sentinel_password=x", `invalid redis_url "redis://h?sentinel_password=***": sentinel_username and sentinel_password need master_set`},
		{"redis://h?dial_timeout=soon", `invalid redis_url "redis://h?dial_timeout=***": dial_timeout: want a positive duration such as 2s`},
		{"redis://h?db=1&db=2", `invalid redis_url "redis://h?db=1&db=2": parameter db given 2 times`},
		{"redis://s3cret@h", `invalid redis_url "redis://***@h": the user info has no ":": write redis://:PASSWORD@HOST for a password alone, or redis://USER:PASSWORD@HOST`},
		{"redis://:s3cret@h/0#x", `invalid redis_url "redis://***@h/0#***": a "#" starts a fragment, which a redis_url cannot have (in a password, write "#" as %23)`},
		{"redis://h:6379/0#s3cret", `invalid redis_url "redis://h:6379/0#***": a "#" starts a fragment`},
		{"redis://:s3cr%zz@h", `invalid redis_url "redis://***@h": a "%" that does not start a %XX escape: write "%" as %25`},
		{"redis://:s3 cret@h", `invalid redis_url "redis://***@h": the user name or password holds a character that must be percent-encoded`},
		{"redis://:s3cret\x01@h", `invalid redis_url "redis://***@h": holds a control character`},
		{"redis://h?db=1;x=s3cret", `invalid redis_url "redis://h?db=***": query: ";" does not separate parameters`},
		{"redis:///h:6379/0", `invalid redis_url "redis:///***": too many "/" after "redis:"`},
		// Issue 8, item 3: each of these printed the password, whole or in part.
		{"redis://user:1234/s3cret@127.0.0.1:6379/0", `invalid redis_url "redis://***@127.0.0.1:6379/0": cannot tell where the password ends: percent-encode "/", "?", "#" and "@" in a user name or password (as %2F, %3F, %23 and %40), and "@" anywhere else (%40)`},
		{"redis://:Zm9v/s3cret@h:6379/0", `invalid redis_url "redis://***@h:6379/0": cannot tell where the password ends`},
		{"redis://default:s3cret#x@h:6379", `invalid redis_url "redis://***@***": cannot tell where the password ends`},
		{"redis://default:s3c?ret@h:6379", `invalid redis_url "redis://***@***": cannot tell where the password ends`},
		{"redis://default:s3c@ret@h:6379", `invalid redis_url "redis://***@h:6379": cannot tell where the password ends`},
		{"redis:S3cret@localhost:6379", `invalid redis_url "redis:***@localhost:6379": missing "//" after "redis:"`},
		{"default:S3cret@localhost:6379", `invalid redis_url "***": missing scheme`},
		{"redis://:s@h:6379?addr=:s3cret", `invalid redis_url "redis://***@h:6379?addr=***": the 1st addr=: missing host before the port`},
		{"redis:///user:s3cret@localhost", `invalid redis_url "redis://***@localhost": too many "/" after "redis:"`},
		{"redis://default:s3cret", `invalid redis_url "redis://default:***": port: want a number from 1 to 65535`},
		{"redis://default:12/s3cret", `invalid redis_url "redis://default:12/***": path: want a database number >= 0`},
		{"redis://s3cret://h@x", `invalid redis_url "redis://***@x": cannot tell where the password ends`},
		{"s3cret://h@x", `invalid redis_url "***": unsupported scheme: use redis://`},
		{"http://u:s3cret@h", `invalid redis_url "***": unsupported scheme: use redis://`},
		{"redis://h?master_set=m&sentinel_password=ab&s3cret", `invalid redis_url "redis://h?master_set=***&sentinel_password=***&***": unknown parameter(s) (1, not shown`},
		{"redis://h?master_set=m&sentinel_password=s3c@ret", `invalid redis_url "redis://***@***": cannot tell where the password ends`},
		{"redis://h?master_set=m&sentinel_password=s3c#ret", `invalid redis_url "redis://h?master_set=***&sentinel_password=***#***": a "#" starts a fragment`},
	}
	for _, tt := range tests {
		in := tt.in
		_, err := Parse(in)
		if err == nil {
			t.Errorf("Parse(%q) = nil error, want %q", in, tt.want)
			continue
		}
		if !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("Parse(%q) error =\n  %s\nwant\n  %s", in, err, tt.want)
		}
		if strings.Contains(strings.ToLower(err.Error()), "s3c") || strings.Contains(err.Error(), "ret") {
			t.Errorf("Parse(%q) error leaks the password: %s", in, err)
		}
		if r := Redact(in); strings.Contains(strings.ToLower(r), "s3c") || strings.Contains(r, "ret") {
			t.Errorf("Redact(%q) = %q leaks the password", in, r)
		}
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"redis://localhost:6379/0", "redis://localhost:6379/0"},
		{"redis://app:s3cret@h:1/2", "redis://app:***@h:1/2"},
		{"redis://:s3cret@h", "redis://:***@h"},
		{"redis://:p%2Fw%40rd@h", "redis://:***@h"},
		{"redis://h:1?addr=h2:2", "redis://h:1?addr=h2:2"},
		{"redis://s1?addr=s2&master_set=m&sentinel_password=s3cret", "redis://s1?addr=s2&master_set=m&sentinel_password=***"},
		{"unix://:s3cret@/run/redis.sock?db=3", "unix://:***@/run/redis.sock?db=3"},
		// Malformed: only what cannot be part of a password.
		{"redis://app:s3cret@h:1/0?addr=h2:2&password=p4ss", "redis://***@h:1/0?addr=***&password=***"},
		{"redis://user:1234/5678@127.0.0.1:6379/0", "redis://***@127.0.0.1:6379/0"},
		{"default:Secr3t@localhost:6379", "***"},
		{"default:Secr3t", "***"},
		{"S3cr3tPW", "***"}, // a password pasted alone
		{"admin:54321", "***"},
		{"redis:Secr3t", "redis:***"},
		{"unix://:s3cret@/run/redis.sock?db=x", "unix://***@/run/redis.sock?db=***"},
	}
	for _, tt := range tests {
		if got := Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
