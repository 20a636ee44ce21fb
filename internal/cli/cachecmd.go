package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/cache/redis"
)

const cacheUsage = `Usage:
  ushka cache get    [--config PATH] KEY                   print the stored value; exit 1 when missing
  ushka cache set    [--config PATH] [--ttl DURATION] KEY VALUE   store VALUE as it is (a string)
  ushka cache delete [--config PATH] KEY
  ushka cache clear  [--config PATH] [--yes] [--dry-run]   delete every key under key_prefix, master by
                                                          master; --dry-run counts them and deletes none
  ushka cache invalidate-tag [--config PATH] TAG...        invalidate every entry written with any of the tags
                                                          (cache.WithTags), in every process
  ushka cache stats  [--config PATH]                     the keys and servers of the shared backend
  ushka cache stats  --url http://HOST:PORT               a running service's own counters (GET /cache/stats):
                                                          hits, near-cache hits and memory, ...

These commands reach a shared backend (redis). An in_memory cache lives
inside one process: ask the running service (stats --url) instead.
"--" ends the flags: ushka cache set -- KEY -VALUE.
Exit codes: 0 success, 1 key not found, 2 usage or config error,
3 backend unreachable, 4 backend refused the command (WRONGTYPE, OOM,
READONLY, NOPERM, ...).
`

func (e *env) cacheCmd(args []string) int {
	return e.group("cache", cacheUsage, args, map[string]func([]string) int{
		"get":            e.cacheGet,
		"set":            e.cacheSet,
		"delete":         e.cacheDelete,
		"clear":          e.cacheClear,
		"invalidate-tag": e.cacheInvalidateTag,
		"stats":          e.cacheStats,
	})
}

// openCache loads the config and opens its cache, checking that the backend
// answers. It refuses caches that cannot be seen from outside a process.
func (e *env) openCache() (*cache.Cache, cache.Config, int, bool) {
	cfg, code, ok := e.loadConfig()
	if !ok {
		return nil, cache.Config{}, code, false
	}
	cc := cfg.Cache
	switch {
	case !cc.Enabled:
		return nil, cc, e.errorf(ExitUsage, "caching is disabled in %s (enabled = false): there is no cache to reach", cfg.File), false
	case cc.Backend == cache.DefaultBackend:
		return nil, cc, e.errorf(ExitUsage, "the in_memory backend lives inside one process, so a command run "+
			"from outside it has nothing to show. Ask the running service (ushka cache stats --url http://HOST:PORT, POST /report/refresh), "+
			"or use a shared backend such as redis"), false
	}
	c, err := cache.Open(e.ctx, cc, cache.WithLogger(nil))
	if err != nil {
		return nil, cc, e.errorf(ExitUsage, "%v", err), false
	}
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx); err != nil {
		c.Close()
		if errors.Is(err, cache.ErrRefused) {
			return nil, cc, e.errorf(ExitRefused, "the %s backend refused PING: %v", cc.Backend, err), false
		}
		return nil, cc, e.errorf(ExitUnreachable, "the %s backend is unreachable: %v", cc.Backend, err), false
	}
	return c, cc, 0, true
}

// keyCommand parses the arguments of a command whose first argument is a
// KEY, checks the key, and opens the cache.
func (e *env) keyCommand(fs *flag.FlagSet, args []string, argNames ...string) ([]string, *cache.Cache, int, bool) {
	rest, code, ok := e.command(fs, cacheUsage, args, argNames...)
	if !ok {
		return nil, nil, code, false
	}
	if err := cache.ValidateKey(rest[0]); err != nil {
		return nil, nil, e.errorf(ExitUsage, "%v", err), false
	}
	c, _, code, ok := e.openCache()
	return rest, c, code, ok
}

func (e *env) cacheGet(args []string) int {
	rest, c, code, ok := e.keyCommand(e.flags("cache get"), args, "KEY")
	if !ok {
		return code
	}
	defer c.Close()
	var raw []byte
	found, err := c.Get(e.ctx, rest[0], &raw)
	if err != nil {
		return e.backendError(err)
	}
	if !found {
		return e.errorf(ExitNotFound, "%q not found", rest[0])
	}
	fmt.Fprintf(e.stdout, "%s\n", raw)
	return ExitOK
}

func (e *env) cacheSet(args []string) int {
	fs := e.flags("cache set")
	var ttl time.Duration
	fs.Var(durationFlag{&ttl}, "ttl", "time to live, such as 60s or 1h (default: the config's default_ttl)")
	rest, c, code, ok := e.keyCommand(fs, args, "KEY", "VALUE")
	if !ok {
		return code
	}
	defer c.Close()
	if err := c.Set(e.ctx, rest[0], rest[1], ttl); err != nil {
		return e.backendError(err)
	}
	return ExitOK
}

func (e *env) cacheDelete(args []string) int {
	rest, c, code, ok := e.keyCommand(e.flags("cache delete"), args, "KEY")
	if !ok {
		return code
	}
	defer c.Close()
	if err := c.Delete(e.ctx, rest[0]); err != nil {
		return e.backendError(err)
	}
	return ExitOK
}

func (e *env) cacheInvalidateTag(args []string) int {
	fs := e.flags("cache invalidate-tag")
	tags, code, ok := e.command(fs, cacheUsage, args, "TAG...")
	if !ok {
		return code
	}
	c, _, code, ok := e.openCache()
	if !ok {
		return code
	}
	defer c.Close()
	if err := c.InvalidateTags(e.ctx, tags...); err != nil {
		return e.backendError(err)
	}
	fmt.Fprintf(e.stdout, "invalidated the entries tagged %s\n", strings.Join(quoteAll(tags), ", "))
	return ExitOK
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = fmt.Sprintf("%q", v)
	}
	return out
}

// clearer is a store that clears master by master, reporting its
// progress, and can count what it would clear (the redis store).
type clearer interface {
	ClearWith(ctx context.Context, o redis.ClearOptions) ([]redis.ClearProgress, error)
}

func (e *env) cacheClear(args []string) int {
	fs := e.flags("cache clear")
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	dry := fs.Bool("dry-run", false, "count the keys it would delete, per master, and delete none")
	if _, code, ok := e.command(fs, cacheUsage, args); !ok {
		return code
	}
	c, cc, code, ok := e.openCache()
	if !ok {
		return code
	}
	defer c.Close()
	cl, _ := c.Store().(clearer)
	if cl == nil {
		cl = frontEndClearer{c}
	}
	if *dry {
		report, err := cl.ClearWith(e.ctx, redis.ClearOptions{DryRun: true, Progress: e.clearProgress(true)})
		if err != nil {
			if report != nil {
				fmt.Fprintf(e.stdout, "stopped after finding %d keys under %q%s\n", total(report, false), cc.KeyPrefix, perMaster(report, false))
			}
			return e.backendError(err)
		}
		fmt.Fprintf(e.stdout, "would delete %d keys under %q%s; nothing deleted (dry run)\n", total(report, false), cc.KeyPrefix, perMaster(report, false))
		return ExitOK
	}
	if !*yes {
		if !isTerminal(e.stdin) {
			return e.errorf(ExitUsage, "refusing to clear without --yes: standard input is not a terminal to confirm on")
		}
		what := "every key"
		if report, err := cl.ClearWith(e.ctx, redis.ClearOptions{DryRun: true}); err == nil {
			what = fmt.Sprintf("the %d keys", total(report, false))
		}
		fmt.Fprintf(e.stdout, "Delete %s under %q on %s? [y/N] ", what, cc.KeyPrefix, cc.RedisURL)
		answer, _ := bufio.NewReader(e.stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			return e.errorf(ExitUsage, "not confirmed; nothing deleted")
		}
	}
	report, err := cl.ClearWith(e.ctx, redis.ClearOptions{Progress: e.clearProgress(false)})
	if err != nil {
		if report != nil {
			// Interrupted (Ctrl-C, a master down): say what was deleted.
			fmt.Fprintf(e.stdout, "stopped after deleting %d keys under %q%s\n", total(report, true), cc.KeyPrefix, perMaster(report, true))
		}
		return e.backendError(err)
	}
	if report == nil { // a backend that does not count
		fmt.Fprintf(e.stdout, "cleared the keys under %q\n", cc.KeyPrefix)
		return ExitOK
	}
	fmt.Fprintf(e.stdout, "cleared %d keys under %q%s\n", total(report, true), cc.KeyPrefix, perMaster(report, true))
	return ExitOK
}

// clearProgress returns the progress function of a clear: on a terminal,
// one line per master (the masters are cleared one after another),
// rewritten as its batches come, with the keys found and, unless it is a
// dry run, deleted; elsewhere nothing (the summary says it all).
func (e *env) clearProgress(dry bool) func(redis.ClearProgress) {
	if !isTerminal(e.stdout) {
		return nil
	}
	return func(p redis.ClearProgress) {
		if dry {
			fmt.Fprintf(e.stdout, "\r%s: %d keys found", p.Node, p.Found)
		} else {
			fmt.Fprintf(e.stdout, "\r%s: %d keys found, %d deleted", p.Node, p.Found, p.Unlinked)
		}
		if p.Done {
			fmt.Fprintln(e.stdout)
		}
	}
}

// total sums the keys a clear found (or deleted).
func total(report []redis.ClearProgress, deleted bool) int {
	n := 0
	for _, p := range report {
		if deleted {
			n += p.Unlinked
		} else {
			n += p.Found
		}
	}
	return n
}

// perMaster lists a clear's counts by master, when there are several.
func perMaster(report []redis.ClearProgress, deleted bool) string {
	if len(report) < 2 {
		return ""
	}
	parts := make([]string, len(report))
	for i, p := range report {
		n := p.Found
		if deleted {
			n = p.Unlinked
		}
		parts[i] = fmt.Sprintf("%s: %d", p.Node, n)
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// frontEndClearer clears a store that cannot report its progress through
// the cache: no count, no dry run.
type frontEndClearer struct{ c *cache.Cache }

func (f frontEndClearer) ClearWith(ctx context.Context, o redis.ClearOptions) ([]redis.ClearProgress, error) {
	if o.DryRun {
		return nil, errors.New("this backend cannot count its keys: --dry-run needs the redis backend")
	}
	return nil, f.c.Clear(ctx)
}

func (e *env) cacheStats(args []string) int {
	fs := e.flags("cache stats")
	url := fs.String("url", "", "a running service's base URL (http://host:port): show its GET /cache/stats")
	if _, code, ok := e.command(fs, cacheUsage, args); !ok {
		return code
	}
	if *url != "" {
		return e.serviceStats(*url)
	}
	c, cc, code, ok := e.openCache()
	if !ok {
		return code
	}
	defer c.Close()
	rs, ok := c.Store().(*redis.Store)
	if !ok {
		return e.errorf(ExitUsage, "the %s backend has no statistics to show from outside the application", cc.Backend)
	}
	info, err := rs.Info(e.ctx)
	if err != nil {
		return e.backendError(err)
	}
	out := struct {
		Backend   string  `json:"backend"`
		URL       string  `json:"redis_url"`
		KeyPrefix string  `json:"key_prefix"`
		NearCache bool    `json:"near_cache"`
		HitRatio  float64 `json:"server_hit_ratio"`
		redis.Info
	}{cc.Backend, cc.RedisURL.String(), cc.KeyPrefix, cc.NearCache, 0, info}
	if n := info.KeyspaceHits + info.KeyspaceMisses; n > 0 {
		out.HitRatio = float64(info.KeyspaceHits) / float64(n)
	}
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(out)
	return ExitOK
}

// serviceStats prints a running service's GET /cache/stats: its own
// counters, which only the process knows (hits served by its near cache,
// the near cache's memory, loads). base is the service's URL; a path
// other than /cache/stats is refused, so that a typo is not read as stats.
func (e *env) serviceStats(base string) int {
	shown := cache.Redact(base) // errors never show a password the URL holds
	u, err := neturl.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return e.errorf(ExitUsage, "--url %q: want the service's base URL, such as http://127.0.0.1:8080", shown)
	}
	switch strings.TrimSuffix(u.Path, "/") {
	case "", "/cache/stats":
		u.Path = "/cache/stats"
	default:
		return e.errorf(ExitUsage, "--url %q: want the service's base URL (its /cache/stats is read), not the path %q", shown, u.Path)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return e.errorf(ExitUsage, "--url %q: %v", shown, err)
	}
	// A redirect is shown as the answer it is, not followed to another host.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		if ue, ok := errors.AsType[*neturl.Error](err); ok {
			err = ue.Err // its text holds the whole URL, password and all
		}
		return e.errorf(ExitUnreachable, "the service at %s did not answer: %v", cache.Redact(u.String()), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return e.errorf(ExitUnreachable, "reading %s: %v", cache.Redact(u.String()), err)
	}
	var stats map[string]any
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &stats) != nil {
		return e.errorf(ExitUnreachable, "%s answered %s, not the cache's counters: %.200q", cache.Redact(u.String()), resp.Status, body)
	}
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(stats)
	return ExitOK
}

// isTerminal reports whether r is a terminal (a character device that
// answers the terminal ioctl, not /dev/null, as under cron or ssh -n).
func isTerminal(r any) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
