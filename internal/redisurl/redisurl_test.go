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
	tests := []struct{ in, want string }{
		{"", `invalid redis_url: empty`},
		{"localhost:6379", `invalid redis_url "localhost:6379": missing scheme, as in redis://localhost:6379/0`},
		{"redis:localhost", `invalid redis_url "redis:localhost": missing "//" after the scheme, as in redis://host:6379/0`},
		{"//localhost:6379", `invalid redis_url "//localhost:6379": missing scheme: use redis://, rediss:// or unix://`},
		{"http://localhost", `invalid redis_url "http://localhost": unsupported scheme "http": use redis://, rediss:// or unix://`},
		{"redis://", `invalid redis_url "redis:": missing host, as in redis://localhost:6379/0`},
		{"redis://:s3cret@h:99999", `invalid redis_url "redis://:***@h:99999": port "99999": want a number from 1 to 65535`},
		{"redis://:s3cret@h:port", `invalid redis_url "redis://***": invalid port ":port" after host`},
		{"redis://h/zero", `invalid redis_url "redis://h/zero": database "zero": want a number >= 0`},
		{"redis://h/0/1", `invalid redis_url "redis://h/0/1": path "/0/1": want at most a database number, as in /0`},
		{"redis://h/0?db=1", `invalid redis_url "redis://h/0?db=1": database given twice, in the path and as db=`},
		{"redis://h?password=s3cret&timeout=1s", `invalid redis_url "redis://h?password=***&timeout=1s": unknown parameter(s) password, timeout (known: addr, client_name, db, dial_timeout, master_set, sentinel_password, sentinel_username, skip_verify)`},
		{"redis://h?addr=:1", `invalid redis_url "redis://h?addr=:1": addr=:1: address ":1": missing host`},
		{"redis://h?skip_verify=true", `invalid redis_url "redis://h?skip_verify=true": skip_verify is only for rediss:// URLs`},
		{"unix://host/path.sock", `invalid redis_url "unix://host/path.sock": a unix URL has no host: write unix:///path/to/redis.sock (three slashes)`},
		{"unix://", `invalid redis_url "unix:": missing socket path, as in unix:///run/redis/redis.sock`},
		{"redis://h?master_set=", `invalid redis_url "redis://h?master_set=": master_set is empty`},
		{"redis://h?sentinel_password=x", `invalid redis_url "redis://h?sentinel_password=***": sentinel_username and sentinel_password need master_set`},
		{"redis://h?dial_timeout=soon", `invalid redis_url "redis://h?dial_timeout=soon": dial_timeout=soon: want a positive duration such as 2s`},
		{"redis://h?db=1&db=2", `invalid redis_url "redis://h?db=1&db=2": parameter db given 2 times`},
	}
	for _, tt := range tests {
		_, err := Parse(tt.in)
		if err == nil {
			t.Errorf("Parse(%q) = nil error, want %q", tt.in, tt.want)
			continue
		}
		if !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("Parse(%q) error =\n  %s\nwant\n  %s", tt.in, err, tt.want)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Parse(%q) error leaks the password: %s", tt.in, err)
		}
	}
}

func FuzzParseNeverLeaks(f *testing.F) {
	f.Add("redis://user:s3cret@h:1/0?addr=x:2")
	f.Add("rediss://:s3cret@[::1]:bad/0")
	f.Add("unix://:s3cret@/tmp/r.sock?db=x")
	f.Fuzz(func(t *testing.T, s string) {
		const pw = "s3cret"
		in := strings.Replace(s, "PW", pw, 1)
		_, err := Parse(in)
		if err == nil || !strings.Contains(in, pw) {
			return
		}
		// The password may legitimately appear elsewhere (a host named s3cret);
		// only check URLs whose user info holds it.
		if at := strings.Index(in, "@"); at > 0 && strings.Contains(in[:at], pw) && !strings.Contains(in[at:], pw) {
			if strings.Contains(err.Error(), pw) {
				t.Fatalf("Parse(%q) error leaks the password: %v", in, err)
			}
		}
	})
}
