package cli_test

import (
	"bytes"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/internal/redistest"
	"github.com/ushka-go/ushka/internal/testutil"
)

// onTerminal runs the ushka binary with a pseudo-terminal as its standard
// input and output, through script(1) (util-linux, on every Debian), typing
// input into it. It returns what the terminal showed, with the terminal's
// \r\n line ends made \n.
func onTerminal(t *testing.T, input string, args ...string) (string, int) {
	t.Helper()
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script(1) is missing (apt-get install bsdutils): no pseudo-terminal to run the command on")
	}
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	cmd := exec.Command(script, "-qec", "'"+binary+"' "+strings.Join(quoted, " "), "/dev/null")
	cmd.Env = cleanEnv()
	cmd.Stdin = strings.NewReader(input)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	defer func() { t.Logf("ushka %s on a terminal:\n%q", strings.Join(args, " "), out.String()) }()
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(out.String(), "\r\n", "\n"), code
}

// TestClearProgressOnATerminal: on a terminal, clear asks before it
// deletes, saying how many keys; shows, master by master, the keys found
// and deleted, rewriting the line as batches come; and --dry-run shows the
// keys found. On a Cluster, each master has its line.
func TestClearProgressOnATerminal(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	a := cl.Addrs()
	url := "redis://" + a[0] + "?addr=" + a[1] + "&addr=" + a[2]
	cfgPath := testutil.WriteConfig(t, fmt.Sprintf("[cache]\nenabled = true\nbackend = \"redis\"\nredis_url = %q\ntimeout = \"2s\"\n", url))
	c, err := cache.Open(t.Context(), cache.Config{Enabled: true, Backend: "redis", RedisURL: cache.SecretURL(url), Timeout: 2e9})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 6000 // several SCAN batches on each master
	for i := range n {
		if err := c.Set(t.Context(), fmt.Sprint("k", i), "v", 0); err != nil {
			t.Fatal(err)
		}
	}

	out, code := onTerminal(t, "", "cache", "clear", "--dry-run", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("would delete %d keys", n)) {
		t.Fatalf("clear --dry-run on a terminal: exit %d, output %q", code, out)
	}
	for _, addr := range a {
		if !regexp.MustCompile(`\r` + regexp.QuoteMeta(addr) + `: [1-9][0-9]* keys found\n`).MatchString(out) {
			t.Errorf("clear --dry-run on a terminal shows no final progress line for master %s: %q", addr, out)
		}
	}

	out, code = onTerminal(t, "n\n", "cache", "clear", "--config", cfgPath)
	if code == 0 || !strings.Contains(out, fmt.Sprintf("Delete the %d keys under \"ushka:\"", n)) || !strings.Contains(out, "nothing deleted") {
		t.Fatalf("clear answered n: exit %d, output %q; want the count asked about and nothing deleted", code, out)
	}

	out, code = onTerminal(t, "y\n", "cache", "clear", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("cleared %d keys", n)) {
		t.Fatalf("clear answered y: exit %d, output %q", code, out)
	}
	updates := 0
	for _, addr := range a {
		re := regexp.MustCompile(`\r` + regexp.QuoteMeta(addr) + `: ([0-9]+) keys found, ([0-9]+) deleted`)
		m := re.FindAllStringSubmatch(out, -1)
		if len(m) == 0 || m[len(m)-1][1] != m[len(m)-1][2] || m[len(m)-1][1] == "0" {
			t.Errorf("master %s: progress %q, want lines ending with as many deleted as found", addr, m)
		}
		updates += len(m)
	}
	if updates <= len(a) {
		t.Errorf("%d progress lines for %d masters: the line is not rewritten as batches come\n%q", updates, len(a), out)
	}
	if _, found, _ := cache.Get[string](t.Context(), c, "k1"); found {
		t.Error("k1 is still there after clear")
	}
}
