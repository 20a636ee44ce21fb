// Package redistest starts real redis-server processes for tests: on free
// loopback ports, in temporary directories, stopped by pid when the test
// ends. No mocks, no docker, no fixed ports, and never anything but
// 127.0.0.1.
//
// When redis-server is not installed the tests that need it skip, saying how
// to install it, unless USHKA_REQUIRE_REDIS=1 (as CI sets), where they fail.
package redistest

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RequireEnv is the environment variable that turns a missing redis-server
// from a skip into a failure.
const RequireEnv = "USHKA_REQUIRE_REDIS"

const install = "install it with: apt-get install redis-server (or brew install redis)"

// Require skips t, or fails it when USHKA_REQUIRE_REDIS=1, unless the named
// programs (redis-server by default) are installed.
func Require(t testing.TB, programs ...string) {
	t.Helper()
	if len(programs) == 0 {
		programs = []string{"redis-server"}
	}
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			msg := fmt.Sprintf("%s not found in PATH; %s", p, install)
			if os.Getenv(RequireEnv) == "1" {
				t.Fatalf("%s (%s=1 requires it)", msg, RequireEnv)
			}
			t.Skip(msg)
		}
	}
}

// Server is one redis-server process.
type Server struct {
	// Addr is the loopback host:port it listens on (the TLS port when
	// started with TLS).
	Addr string
	// Socket is the path of its unix socket.
	Socket string
	// Dir is its working directory.
	Dir string

	t    testing.TB
	args []string
	mu   sync.Mutex
	cmd  *exec.Cmd
	tls  *tls.Config
}

// Options adjust a Server.
type Options struct {
	// Args are extra redis-server arguments, such as "--requirepass", "pw".
	Args []string
	// TLS, when set, makes the server listen with TLS only, using these files.
	TLS *TLSFiles
}

// Start starts a redis-server for t and stops it when t ends.
func Start(t testing.TB, opts ...Options) *Server {
	t.Helper()
	Require(t)
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	dir := shortTempDir(t)
	s := &Server{t: t, Dir: dir, Socket: filepath.Join(dir, "redis.sock")}
	var lastErr error
	for range 5 { // a free port can be taken between finding and binding it
		port, err := freePort(0)
		if err != nil {
			t.Fatal(err)
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.args = []string{
			"--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", dir, "--unixsocket", s.Socket, "--unixsocketperm", "700",
			"--logfile", filepath.Join(dir, "redis.log"),
		}
		if o.TLS != nil {
			s.args = append(s.args, "--port", "0", "--tls-port", strconv.Itoa(port),
				"--tls-cert-file", o.TLS.Cert, "--tls-key-file", o.TLS.Key,
				"--tls-ca-cert-file", o.TLS.CA, "--tls-auth-clients", "no")
			s.tls = o.TLS.ClientConfig()
		} else {
			s.args = append(s.args, "--port", strconv.Itoa(port))
		}
		s.args = append(s.args, o.Args...)
		if lastErr = s.start(); lastErr == nil {
			t.Cleanup(s.Stop)
			return s
		}
	}
	t.Fatalf("redis-server did not start: %v", lastErr)
	return nil
}

func (s *Server) start() error {
	cmd := exec.Command("redis-server", s.args...)
	cmd.Dir = s.Dir
	if err := cmd.Start(); err != nil {
		return err
	}
	if err := waitReady(s.Addr, s.tls, 10*time.Second); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		log, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
		return fmt.Errorf("%v; log:\n%s", err, lastLines(string(log), 10))
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	return nil
}

// Stop kills the server by pid and waits for it to exit. Stopping a stopped
// server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
}

// Restart starts the server again on the same address after a Stop, with
// its data gone (it keeps nothing on disk).
func (s *Server) Restart() {
	s.t.Helper()
	var err error
	for range 50 { // the port may linger briefly after the kill
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("redis-server did not restart on %s: %v", s.Addr, err)
}

// Do sends one command and returns its reply as text, for test assertions:
// a bulk or simple string, an integer, an error ("-ERR ..."), or the
// elements of an array joined by newlines.
func (s *Server) Do(args ...string) string {
	s.t.Helper()
	reply, err := Do(s.Addr, s.tls, args...)
	if err != nil {
		s.t.Fatalf("redis %v: %v", args, err)
	}
	return reply
}

// DoDB is Do in database db (SELECT db first, on the same connection).
func (s *Server) DoDB(db int, args ...string) string {
	s.t.Helper()
	replies, err := doAll(s.Addr, s.tls, []string{"SELECT", strconv.Itoa(db)}, args)
	if err != nil {
		s.t.Fatalf("redis SELECT %d, %v: %v", db, args, err)
	}
	return replies[1]
}

// Pause stops the server process (SIGSTOP) without closing its sockets: a
// server that accepts connections and never answers. Resume undoes it.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatal("redistest: server not running")
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatal(err)
	}
}

// Do sends one command to addr and returns its reply as text.
func Do(addr string, tlsConfig *tls.Config, args ...string) (string, error) {
	replies, err := doAll(addr, tlsConfig, args)
	if err != nil {
		return "", err
	}
	return replies[0], nil
}

func doAll(addr string, tlsConfig *tls.Config, cmds ...[]string) ([]string, error) {
	conn, err := dial(addr, tlsConfig, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	for _, args := range cmds {
		fmt.Fprintf(&b, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return nil, err
	}
	r := bufio.NewReader(conn)
	replies := make([]string, len(cmds))
	for i := range cmds {
		if replies[i], err = readReply(r); err != nil {
			return nil, err
		}
	}
	return replies, nil
}

func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return line, nil
	case '$':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return "(nil)", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, _ := strconv.Atoi(line[1:])
		parts := make([]string, 0, max(n, 0))
		for range n {
			p, err := readReply(r)
			if err != nil {
				return "", err
			}
			parts = append(parts, p)
		}
		return strings.Join(parts, "\n"), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}

func dial(addr string, tlsConfig *tls.Config, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	if tlsConfig != nil {
		return tls.DialWithDialer(d, "tcp", addr, tlsConfig)
	}
	return d.Dial("tcp", addr)
}

// waitReady waits until the server answers PING (any reply, even NOAUTH).
func waitReady(addr string, tlsConfig *tls.Config, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var err error
	for ctx.Err() == nil {
		var reply string
		if reply, err = Do(addr, tlsConfig, "PING"); err == nil && reply != "" {
			if strings.HasPrefix(reply, "-LOADING") {
				err = fmt.Errorf("%s", reply)
			} else {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no PING reply from %s within %v: %v", addr, timeout, err)
}

// freePort returns a loopback TCP port that is free now; when also > 0, the
// port plus also must be free too (a Cluster's bus port is port + 10000).
func freePort(also int) (int, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		if also == 0 {
			l.Close()
			return port, nil
		}
		if port+also > 65535 {
			l.Close()
			continue
		}
		l2, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+also)))
		l.Close()
		if err == nil {
			l2.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free loopback port found")
}

// shortTempDir is a temporary directory with a short path: a unix socket
// path must fit in about 100 bytes, and t.TempDir's may not.
func shortTempDir(t testing.TB) string {
	dir, err := os.MkdirTemp("", "ushka-redis-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
