package cli_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/ushka-go/ushka/internal/redistest"
	"github.com/ushka-go/ushka/internal/testutil"
)

// TestReview12ClearStdinDevNullTakenForATerminal: `ushka cache clear` run
// from cron, systemd, `ssh -n`, or a CI step with stdin at /dev/null (a
// character device, not a terminal) should refuse for want of --yes
// (README), but takes /dev/null for a terminal: it counts the keys,
// prints an interactive prompt into the job's log, reads EOF, and says
// "not confirmed"; progress lines likewise go to a stdout that is
// /dev/null or any other character device.
func TestReview12ClearStdinDevNullTakenForATerminal(t *testing.T) {
	srv := redistest.Start(t)
	cfgPath := testutil.WriteConfig(t, fmt.Sprintf("[cache]\nenabled = true\nbackend = \"redis\"\nredis_url = %q\ntimeout = \"2s\"\n", "redis://"+srv.Addr+"/0"))
	srv.Do("SET", "ushka:a", "1")
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	cmd := exec.Command(binary, "cache", "clear", "--config", cfgPath)
	cmd.Env = cleanEnv()
	cmd.Stdin = null
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	_ = cmd.Run()
	if !strings.Contains(errb.String(), "refusing to clear without --yes") {
		t.Errorf("stdin /dev/null: exit %d, stdout %q, stderr %q; want the refusal for a non-terminal stdin", cmd.ProcessState.ExitCode(), out.String(), errb.String())
	}
}

// TestReview12StatsURLPasswordInQuery: a password in the --url's query is
// not printed when the service does not answer.
func TestReview12StatsURLPasswordInQuery(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	r := run(t, "cache", "stats", "--url", "http://"+addr+"/?password=hunter2")
	if r.code != 3 || strings.Contains(r.stdout+r.stderr, "hunter2") {
		t.Fatalf("exit %d, stdout %q, stderr %q: want exit 3 and no password", r.code, r.stdout, r.stderr)
	}
}
