// Package cli is the ushka command: serve the demo, check a config, and
// read, write, delete, clear and count a cache from outside the application.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/config"
)

// Exit codes.
const (
	ExitOK          = 0 // success
	ExitNotFound    = 1 // cache get: the key is not there
	ExitUsage       = 2 // bad arguments or a bad config
	ExitUnreachable = 3 // the cache backend did not answer
	ExitRefused     = 4 // the cache backend answered but refused the command (cache.ErrRefused)
)

const usage = `ushka: the Ushka cache command

Usage:
  ushka serve        [--config PATH] [--addr HOST:PORT] [--delay DURATION] [--ttl DURATION]
  ushka config check [--config PATH]
  ushka cache get    [--config PATH] KEY
  ushka cache set    [--config PATH] [--ttl DURATION] KEY VALUE
  ushka cache delete [--config PATH] KEY
  ushka cache clear  [--config PATH] [--yes]
  ushka cache stats  [--config PATH]

The configuration is --config, else $USHKA_CONFIG, else ./ushka.toml; a
file named by --config or USHKA_CONFIG must exist, while a missing
./ushka.toml means the defaults.
Flags may come before or after the command names and arguments; "--" ends
the flags, so that every argument after it is taken as it is, even one that
starts with "-": ushka cache set -- KEY -VALUE.

Exit codes: 0 success, 1 key not found, 2 usage or config error,
3 cache backend unreachable, 4 cache backend refused the command (such as
WRONGTYPE, OOM, READONLY or NOPERM from Redis).
`

// env is what a command runs with.
type env struct {
	ctx            context.Context
	stdin          io.Reader
	stdout, stderr io.Writer
	configPath     string
}

func (e *env) errorf(code int, format string, args ...any) int {
	fmt.Fprintf(e.stderr, "ushka: "+format+"\n", args...)
	return code
}

// Run runs the ushka command with args (without the program name) and
// returns its exit code. ctx ends on SIGINT or SIGTERM in main.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	return e.group("", usage, args, map[string]func([]string) int{
		"serve":  e.serve,
		"config": e.configCmd,
		"cache":  e.cacheCmd,
	})
}

// flags returns a FlagSet with the --config flag every level accepts.
func (e *env) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&e.configPath, "config", e.configPath, "configuration file (default $USHKA_CONFIG or ./ushka.toml)")
	return fs
}

// command parses args for a leaf command with usage text help, wanting
// nargs positional arguments (named in argNames for the error). Flags may
// come between the arguments; the first "--" ends them, wherever it is.
func (e *env) command(fs *flag.FlagSet, help string, args []string, argNames ...string) ([]string, int, bool) {
	var after []string
	if i := slices.Index(args, "--"); i >= 0 {
		args, after = args[:i], args[i+1:]
	}
	var rest []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(e.stdout, help)
			return nil, ExitOK, false
		}
		if err != nil {
			fmt.Fprintf(e.stderr, "ushka: %v\n\n%s", err, help)
			return nil, ExitUsage, false
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		rest = append(rest, args[0])
		args = args[1:]
	}
	rest = append(rest, after...)
	variadic := len(argNames) > 0 && strings.HasSuffix(argNames[len(argNames)-1], "...")
	if len(rest) != len(argNames) && !(variadic && len(rest) >= len(argNames)) {
		want := "no arguments"
		if len(argNames) > 0 {
			want = strings.Join(argNames, " ")
		}
		fmt.Fprintf(e.stderr, "ushka: want %s, got %d argument(s)\n\n%s", want, len(rest), help)
		return nil, ExitUsage, false
	}
	return rest, 0, true
}

// group dispatches a command that has subcommands (config, cache).
func (e *env) group(name, help string, args []string, subs map[string]func([]string) int) int {
	fs := e.flags(name)
	err := fs.Parse(args) // flags before the subcommand name; the rest are its own
	rest := fs.Args()
	if errors.Is(err, flag.ErrHelp) || (len(rest) > 0 && rest[0] == "help") {
		fmt.Fprint(e.stdout, help)
		return ExitOK
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "ushka: %v\n\n%s", err, help)
		return ExitUsage
	}
	if len(rest) == 0 {
		fmt.Fprint(e.stderr, help)
		return ExitUsage
	}
	sub, ok := subs[rest[0]]
	if !ok {
		return e.errorf(ExitUsage, "unknown command %q\n\n%s", strings.TrimSpace(name+" "+rest[0]), help)
	}
	return sub(rest[1:])
}

// loadConfig loads --config, else $USHKA_CONFIG, else ./ushka.toml; the
// first two must exist.
func (e *env) loadConfig() (*config.Config, int, bool) {
	cfg, err := config.Open(e.configPath)
	if err != nil {
		return nil, e.errorf(ExitUsage, "%v", err), false
	}
	return cfg, 0, true
}

const configUsage = `Usage:
  ushka config check [--config PATH]   validate the configuration and print it, password masked
`

func (e *env) configCmd(args []string) int {
	return e.group("config", configUsage, args, map[string]func([]string) int{
		"check": e.configCheck,
	})
}

func (e *env) configCheck(args []string) int {
	fs := e.flags("config check")
	if _, code, ok := e.command(fs, configUsage, args); !ok {
		return code
	}
	cfg, code, ok := e.loadConfig()
	if !ok {
		return code
	}
	c := cfg.Cache
	status := "ok"
	if !cfg.Found {
		status = "not found, using the defaults"
	}
	fmt.Fprintf(e.stdout, "# %s: %s\n[cache]\n", cfg.File, status)
	line := func(k string, v any) { fmt.Fprintf(e.stdout, "%-18s = %v\n", k, v) }
	line("enabled", c.Enabled)
	line("backend", fmt.Sprintf("%q", c.Backend))
	if c.RedisURL != "" {
		line("redis_url", fmt.Sprintf("%q", c.RedisURL.String()))
	}
	if c.TLSCAFile != "" {
		line("tls_ca_file", fmt.Sprintf("%q", c.TLSCAFile))
	}
	line("key_prefix", fmt.Sprintf("%q", c.KeyPrefix))
	line("default_ttl", fmt.Sprintf("%q", c.DefaultTTL.String()))
	line("codec", fmt.Sprintf("%q", c.Codec))
	line("timeout", fmt.Sprintf("%q", c.Timeout.String()))
	if c.MaxEntries > 0 {
		line("max_entries", c.MaxEntries)
	} else {
		line("max_bytes", c.MaxBytes)
	}
	line("stale_ttl", fmt.Sprintf("%q", c.StaleTTL.String()))
	line("refresh_ahead", c.RefreshAhead)
	line("fail_safe_throttle", fmt.Sprintf("%q", c.FailSafeThrottle.String()))
	line("stale_max_bytes", c.StaleMaxBytes)
	line("load_timeout", fmt.Sprintf("%q", c.LoadTimeout.String()))
	line("load_hard_timeout", fmt.Sprintf("%q", c.LoadHardTimeout.String()))
	line("lock_lease", fmt.Sprintf("%q", c.LockLease.String()))
	line("near_cache", c.NearCache)
	line("near_cache_max_bytes", c.NearCacheMaxBytes)
	line("breaker_failures", c.BreakerFailures)
	line("breaker_hang_after", fmt.Sprintf("%q", c.BreakerHangAfter.String()))
	line("breaker_retry", fmt.Sprintf("%q", c.BreakerRetry.String()))
	line("invalidation_queue_max", c.InvalidationQueueMax)
	for _, k := range []string{config.EnvCacheEnabled, config.EnvCacheBackend, config.EnvCacheRedisURL} {
		if os.Getenv(k) != "" {
			fmt.Fprintf(e.stdout, "# %s is set and overrides the file\n", k)
		}
	}
	return ExitOK
}

// backendError reports err from the cache backend and returns its exit
// code: ExitUsage for a key or ttl the cache refuses before asking the
// backend, ExitRefused when the backend answered but refused the command,
// ExitUnreachable otherwise.
func (e *env) backendError(err error) int {
	if errors.Is(err, cache.ErrInvalidKey) || errors.Is(err, cache.ErrInvalidTTL) {
		return e.errorf(ExitUsage, "%v", err)
	}
	if errors.Is(err, cache.ErrRefused) {
		return e.errorf(ExitRefused, "the backend refused the command: %v", err)
	}
	return e.errorf(ExitUnreachable, "%v", err)
}

// durationFlag parses a duration from 0 to cache.MaxTTL.
type durationFlag struct{ d *time.Duration }

func (f durationFlag) String() string {
	if f.d == nil {
		return "0s"
	}
	return f.d.String()
}

func (f durationFlag) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as 60s or 1h, got %q", s)
	}
	if d < 0 {
		return fmt.Errorf("must not be negative, got %s", s)
	}
	if d > cache.MaxTTL {
		return fmt.Errorf("must be at most 100 years (cache.MaxTTL), got %s", s)
	}
	*f.d = d
	return nil
}
