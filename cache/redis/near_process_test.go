package redis_test

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/internal/redistest"
	"github.com/ushka-go/ushka/internal/testutil"
)

// nearChildEnv tells the test binary, run again as a child process, to
// read as TestNearChildProcess describes: "redis_url key_prefix".
const nearChildEnv = "USHKA_NEAR_CHILD"

// The child's output lines that the parent reads; every other line
// (PASS, a failure's log) is only shown when the test fails.
const (
	childLine  = "near-child"
	childReady = childLine + " ready"
	childDone  = childLine + " done"
)

// childKeys are the keys the parent writes and the child reads;
// childStop is the sentinel, written last, whose value lists the final
// states ("a=12 b=- c=40").
var childKeys = []string{"a", "b", "c"}

const (
	childStop    = "stop"
	childReaders = 2
	// childBound is how long the child reads at most, whatever happens: a
	// bound for a parent that died, not a measure of speed.
	childBound = 60 * time.Second
	// childConverge is how long, after it read the sentinel, a child
	// reader may take to see the final states: as waitNear, generous.
	childConverge = 10 * time.Second
)

// TestNearMonotonicAcrossOSProcesses: guarantee 3 with two real processes.
// A child process (this test binary, running TestNearChildProcess) reads
// three keys through a near-cached Store, printing each change each of its
// readers sees, while this process writes a fixed plan of Sets of
// strictly increasing versions, Deletes and Clears to them (checking that
// it reads its own writes, guarantee 1), then the final states under a
// sentinel key. Each child reader's successive states of a key must never
// go back in time (a lower version, or absent with no Delete or Clear of
// the key since the state it saw before), and each must end on the final
// states. On a standalone server and on a Cluster of three masters.
func TestNearMonotonicAcrossOSProcesses(t *testing.T) {
	t.Run("standalone", func(t *testing.T) {
		checkAcrossOSProcesses(t, "redis://"+redistest.Start(t).Addr)
	})
	t.Run("cluster", func(t *testing.T) {
		checkAcrossOSProcesses(t, clusterURL(redistest.StartCluster(t, 3)))
	})
}

func checkAcrossOSProcesses(t *testing.T, url string) {
	prefix := uniquePrefix(t)
	writer := openStore(t, nearConfig(url, prefix))
	ctx := t.Context()
	for _, k := range childKeys {
		getNear(t, writer, k) // connected
	}
	plan := newWriterPlan(1, childKeys, 1000, true) // fixed: the same plan every run

	out := &childOutput{ready: make(chan struct{})}
	var stderr testutil.Buffer // read while the child may still write it
	cmd := exec.Command(os.Args[0], "-test.run=^TestNearChildProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), nearChildEnv+"="+url+" "+prefix)
	cmd.Stdout, cmd.Stderr = out, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill() // SIGKILL
			<-exited
		}
	})
	childFailed := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s\nchild's stdout:\n%s\nchild's stderr:\n%s", fmt.Sprintf(format, args...), out.String(), stderr.String())
	}
	select {
	case <-out.ready:
	case <-exited:
		childFailed("the child exited before it was ready: %v", waitErr)
	case <-time.After(childBound):
		childFailed("the child was not ready after %v", childBound)
	}

	start := time.Now()
	var started atomic.Int64
	if err := plan.run(ctx, writer, &started); err != nil {
		t.Fatalf("writer: %v", err)
	}
	var final []string
	for _, k := range childKeys {
		v := "-"
		if f := plan.final[k]; f.found {
			v = f.value
		}
		final = append(final, k+"="+v)
	}
	if err := writer.Set(ctx, childStop, []byte(strings.Join(final, " ")), 0); err != nil {
		t.Fatal(err)
	}
	wrote := time.Since(start)
	select {
	case <-exited:
	case <-time.After(childBound):
		childFailed("the child did not end %v after the last write", childBound)
	}
	if waitErr != nil {
		childFailed("the child failed: %v", waitErr)
	}

	// Check what the child saw, reader by reader, key by key.
	last := map[string]int{}     // by "reader key": the step whose state it saw last
	state := map[string]string{} // by "reader key": the last value printed
	changes, done := 0, false
	for _, line := range out.lines() {
		if line == childDone {
			done = true
		}
		f := strings.Fields(line)
		if len(f) != 4 || f[0] != childLine {
			continue
		}
		g, k, v := f[1], f[2], f[3]
		id := g + " " + k
		found := v != "-"
		if !found {
			v = ""
		}
		step, err := plan.observe(k, last[id], v, found, len(plan.steps)-1)
		if err != nil {
			childFailed("child reader %s: %v", g, err)
		}
		last[id], state[id] = step, f[3]
		changes++
	}
	if !done {
		childFailed("the child did not print %q", childDone)
	}
	for g := range childReaders {
		for i, k := range childKeys {
			id := fmt.Sprint(g, " ", k)
			if _, want, _ := strings.Cut(final[i], "="); state[id] != want {
				childFailed("child reader %d ended on %s = %s, want the final %s", g, k, state[id], want)
			}
		}
	}
	t.Logf("parent wrote %d steps in %v; %d child readers saw %d states in all (final: %s)",
		len(plan.steps)-1, wrote.Round(time.Millisecond), childReaders, changes, strings.Join(final, " "))
}

// childOutput collects the child's stdout, line by line, and closes ready
// when the child says it is.
type childOutput struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	ready   chan struct{}
	isReady bool
}

func (o *childOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	if !o.isReady && bytes.Contains(o.buf.Bytes(), []byte(childReady+"\n")) {
		o.isReady = true
		close(o.ready)
	}
	return len(p), nil
}

func (o *childOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

func (o *childOutput) lines() []string {
	return strings.Split(o.String(), "\n")
}

// TestNearChildProcess is the child of TestNearMonotonicAcrossOSProcesses,
// and skips unless run as such (USHKA_NEAR_CHILD set). It opens a
// near-cached Store on the parent's Redis and key prefix, reads every key
// once (printing "near-child ready"), then reads them in a loop from two
// goroutines, printing "near-child READER KEY VALUE" (VALUE "-" for
// absent) each time a reader sees a key change. Each loop also reads the
// sentinel, through a Store without a near cache; once a reader has read
// it, it goes on until it sees the final states listed there (within
// 10s); then the child prints "near-child done" and ends.
func TestNearChildProcess(t *testing.T) {
	spec := os.Getenv(nearChildEnv)
	if spec == "" {
		t.Skip("run by TestNearMonotonicAcrossOSProcesses as its child process")
	}
	url, prefix, ok := strings.Cut(spec, " ")
	if !ok {
		t.Fatalf("%s=%q, want \"redis_url key_prefix\"", nearChildEnv, spec)
	}
	s := openStore(t, nearConfig(url, prefix))
	// The sentinel is read without a near cache: the end of the test must
	// not depend on what it checks.
	ctl := openStore(t, cache.Config{RedisURL: cache.SecretURL(url), KeyPrefix: prefix})
	ctx := t.Context()
	deadline := time.Now().Add(childBound)

	var sayMu sync.Mutex
	say := func(format string, args ...any) {
		sayMu.Lock()
		defer sayMu.Unlock()
		fmt.Fprintf(os.Stdout, format+"\n", args...)
	}
	// read returns key's value, or "-" for absent, and whether the near
	// cache answered.
	read := func(key string) (string, bool, error) {
		b, found, near, err := s.GetNear(ctx, key)
		if err != nil {
			say("%s error: %v", childLine, err)
			return "", false, fmt.Errorf("GetNear(%q): %w", key, err)
		}
		if !found {
			return "-", near, nil
		}
		return string(b), near, nil
	}

	seen := make([]map[string]string, childReaders)
	for g := range childReaders {
		seen[g] = map[string]string{}
		for _, k := range childKeys {
			v, _, err := read(k)
			if err != nil {
				t.Fatal(err)
			}
			seen[g][k] = v
			say("%s %d %s %s", childLine, g, k, v)
		}
	}
	say("%s", childReady)

	var wg sync.WaitGroup
	for g := range childReaders {
		wg.Go(func() {
			var want map[string]string // the final states, once the sentinel is read
			end := deadline
			for {
				if time.Now().After(end) {
					say("%s %d timeout: last saw %v, want %v", childLine, g, seen[g], want)
					if want == nil {
						t.Errorf("reader %d: no sentinel after %v", g, childBound)
					} else {
						t.Errorf("reader %d: %v after it read the sentinel, it reads %v; want the final %v", g, childConverge, seen[g], want)
					}
					return
				}
				anyNear := false
				for _, k := range childKeys {
					v, near, err := read(k)
					if err != nil {
						t.Errorf("reader %d: %v", g, err)
						return
					}
					anyNear = anyNear || near
					if v != seen[g][k] {
						seen[g][k] = v
						say("%s %d %s %s", childLine, g, k, v)
					}
				}
				if want == nil {
					b, found, err := ctl.Get(ctx, childStop)
					if err != nil {
						t.Errorf("reader %d: sentinel: %v", g, err)
						return
					}
					if v := string(b); found {
						want = map[string]string{}
						for kv := range strings.FieldsSeq(v) {
							k, v, _ := strings.Cut(kv, "=")
							want[k] = v
						}
						end = time.Now().Add(childConverge)
					}
				}
				if want != nil && maps.Equal(seen[g], want) {
					return
				}
				if anyNear {
					time.Sleep(time.Microsecond) // leave the CPUs to the writer and Redis
				}
			}
		})
	}
	wg.Wait()
	say("%s", childDone)
}
