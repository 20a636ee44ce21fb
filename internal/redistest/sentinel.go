package redistest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// StartSentinel starts a Redis Sentinel that monitors master under the
// name masterSet, and waits until it reports the master.
func StartSentinel(t testing.TB, master *Server, masterSet string) *Server {
	t.Helper()
	Require(t)
	dir := shortTempDir(t)
	s := &Server{t: t, Dir: dir}
	host, port, _ := net.SplitHostPort(master.Addr)
	var err error
	for range 5 {
		var p int
		if p, err = freePort(0); err != nil {
			t.Fatal(err)
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		conf := filepath.Join(dir, "sentinel.conf")
		text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\nsentinel monitor %s %s %s 1\n",
			p, dir, filepath.Join(dir, "redis.log"), masterSet, host, port)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		s.args = []string{conf, "--sentinel"}
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("redis sentinel did not start: %v", err)
	}
	t.Cleanup(s.Stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		reply, err := Do(s.Addr, nil, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", masterSet)
		if err == nil && strings.Contains(reply, port) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("sentinel does not report master %s: %q %v", masterSet, reply, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
