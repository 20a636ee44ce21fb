// Command manyproc measures what a user sees with several `ushka serve`
// workers on one Redis: how many times the report is computed for a cold
// burst, the latency of steady traffic across expiries with and without
// early refresh, the answers while the report's computation fails or
// Redis is dead, with fail-safe on, and steady traffic while Redis is killed
// and restarted, then hung (the outage scenario). It builds the ushka
// binary, starts its own redis-server on a free loopback port, and prints
// one table (the outage scenario adds a second, and the workers' log lines
// about their circuit breakers).
//
//	cd bench && go run ./manyproc            # 4 workers, report delay 1s
//	go run ./manyproc -workers 4 -delay 1s -ttl 10s -steady 25s
//	go run ./manyproc -only outage -calm 5s -killed 5s -hung 5s
package main

import (
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

var (
	workers = flag.Int("workers", 4, "ushka serve processes")
	delay   = flag.Duration("delay", time.Second, "how long the report takes to compute")
	steady  = flag.Duration("steady", 25*time.Second, "how long each steady-traffic phase lasts")
	ttl     = flag.Duration("ttl", 10*time.Second, "the report's ttl in the steady phases: early refresh needs its last fifth to be longer than the computation")
	clients = flag.Int("clients", 8, "concurrent clients of the steady phases")
	burst   = flag.Int("burst", 80, "requests of the cold burst")
	root    = flag.String("root", "..", "the repository's root, where cmd/ushka is")
	only    = flag.String("only", "burst,steady,failsafe,near,outage", "the scenarios to run, comma-separated")
	calm    = flag.Duration("calm", 5*time.Second, "outage: the traffic before Redis is killed, and after each recovery")
	killed  = flag.Duration("killed", 5*time.Second, "outage: how long Redis stays dead (SIGKILL) before a new one starts on its port")
	hung    = flag.Duration("hung", 5*time.Second, "outage: how long Redis stays hung (SIGSTOP) before SIGCONT")
	logs    = flag.String("logs", "", "the directory to keep the workers' stderr in, worker-N.log (default: a temporary one, removed at exit)")
)

// want reports whether the scenario is among -only.
func want(scenario string) bool { return slices.Contains(strings.Split(*only, ","), scenario) }

func main() {
	flag.Parse()
	dir, err := os.MkdirTemp("", "manyproc-")
	check(err)
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "ushka")
	build := exec.Command("go", "build", "-o", bin, "./cmd/ushka")
	build.Dir = *root // the library's own module, with its own go.sum
	run(build)

	fmt.Printf("%d workers (`ushka serve --delay %v`) on one redis-server, loopback, %s\n\n", *workers, *delay, time.Now().UTC().Format(time.RFC3339))
	fmt.Println("| scenario | requests | non-200 | computations | X-Cache | p50 | p99 | max |")
	fmt.Println("|---|---|---|---|---|---|---|---|")

	// 1. A cold burst, fail-safe and refresh off: the seed's configuration.
	if want("burst") {
		r := startRedis(dir)
		ws := startWorkers(bin, dir, r.addr, "", "60s")
		res := fire(ws, *burst, *burst, 0)
		row(fmt.Sprintf("cold burst of %d, across %d workers", *burst, *workers), res, loads(ws))
		stopAll(ws)
		r.stop()
	}
	// 2. Steady traffic across expiries, early refresh off then on.
	for _, ra := range []string{"", "refresh_ahead = 0.8\n"} {
		if !want("steady") {
			break
		}
		r := startRedis(dir)
		ws := startWorkers(bin, dir, r.addr, ra, ttl.String())
		fire(ws, 1, 1, 0) // warm
		res := fire(ws, *clients, 0, *steady)
		name := fmt.Sprintf("steady, ttl %v, refresh_ahead off", *ttl)
		if ra != "" {
			name = fmt.Sprintf("steady, ttl %v, refresh_ahead = 0.8", *ttl)
		}
		row(name, res, loads(ws)-1)
		stopAll(ws)
		r.stop()
	}
	// 3. Fail-safe on: the report failing, then Redis dead.
	if want("failsafe") {
		r := startRedis(dir)
		ws := startWorkers(bin, dir, r.addr, "stale_ttl = \"1h\"\n", "2s")
		fire(ws, 1, 1, 0)
		before := loads(ws)
		for _, w := range ws {
			resp, err := http.Post(w.url+"/report/fail?for=1h", "", nil)
			check(err)
			resp.Body.Close()
		}
		time.Sleep(2500 * time.Millisecond) // past the ttl
		res := fire(ws, *clients, 0, *steady)
		row("stale_ttl 1h, the report failing", res, loads(ws)-before)
		r.stop() // Redis dead, the report still failing
		before = loads(ws)
		res = fire(ws, *clients, 0, *steady)
		row("stale_ttl 1h, the report failing, Redis killed", res, loads(ws)-before)
		stopAll(ws)
	}
	// 4. Steady traffic with early refresh, the near cache off then on; in
	// the last phase, a refresh every second on a worker: the other workers
	// must drop their copies and serve the new report.
	for _, near := range []string{"", "near_cache = true\n"} {
		if !want("near") {
			break
		}
		r := startRedis(dir)
		ws := startWorkers(bin, dir, r.addr, "refresh_ahead = 0.8\n"+near, ttl.String())
		fire(ws, 1, 1, 0)
		res := fire(ws, *clients, 0, *steady)
		name := fmt.Sprintf("steady, ttl %v, refresh_ahead = 0.8, near_cache off", *ttl)
		if near != "" {
			name = fmt.Sprintf("steady, ttl %v, refresh_ahead = 0.8, near_cache = true", *ttl)
		}
		row(name, res, loads(ws)-1)
		if near != "" {
			before := loads(ws)
			stop := make(chan struct{})
			go func() {
				t := time.NewTicker(time.Second)
				defer t.Stop()
				for {
					select {
					case <-stop:
						return
					case <-t.C:
						resp, err := http.Post(ws[0].url+"/report/refresh", "", nil)
						if err == nil {
							resp.Body.Close()
						}
					}
				}
			}()
			res := fire(ws, *clients, 0, *steady)
			close(stop)
			row(fmt.Sprintf("same, POST /report/refresh on worker 1 every second"), res, loads(ws)-before)
		}
		stopAll(ws)
		r.stop()
	}
	// 5. Fail-safe on, steady traffic while Redis is killed, then hung.
	if want("outage") {
		outage(bin, dir)
	}
}

// outage keeps steady traffic on workers with fail-safe on through five
// phases: before, Redis killed, after a new Redis started on its port
// (empty: the report is computed again), Redis hung (SIGSTOP), after
// SIGCONT. Each phase is a row of the table, of the requests that started
// in it, with the computations run in it; a second table has the
// breakers' counters of each phase, and the workers' log lines about their
// breakers follow.
func outage(bin, dir string) {
	r := startRedis(dir)
	defer r.stop()
	ws := startWorkers(bin, dir, r.addr, "stale_ttl = \"10m\"\n", "60s") // no entry expires during the run
	defer stopAll(ws)
	fire(ws, len(ws), len(ws), 0) // warm: every worker reads the report once, and keeps its copy

	phases := []struct {
		name   string
		length time.Duration
		begin  func()
	}{
		{"before", *calm, func() {}},
		{fmt.Sprintf("Redis killed (SIGKILL) for %v", *killed), *killed, r.stop},
		{"after a new Redis started, empty", *calm, r.start},
		{fmt.Sprintf("Redis hung (SIGSTOP) for %v", *hung), *hung, func() { r.signal(syscall.SIGSTOP) }},
		{"after SIGCONT", *calm, func() { r.signal(syscall.SIGCONT) }},
	}
	var stop atomic.Bool
	traffic := make(chan result)
	go func() { traffic <- send(ws, *clients, false, func(int) bool { return stop.Load() }) }()
	// marks[i] is when phase i's action began and counts[i] the workers'
	// counters just before: phase i has the requests that started from
	// then on, and what its action set off (a new Redis may answer before
	// waitFor sees it). The last ones are the end.
	marks := make([]time.Time, len(phases)+1)
	counts := make([]map[string]int, len(phases)+1)
	for i, p := range phases {
		counts[i], _ = stats(ws)
		marks[i] = time.Now()
		p.begin()
		time.Sleep(time.Until(marks[i].Add(p.length)))
	}
	stop.Store(true)
	res := <-traffic
	n := len(phases)
	marks[n] = time.Now()
	var breakers []string
	counts[n], breakers = stats(ws)

	name := fmt.Sprintf("outage, stale_ttl 10m, ttl 60s, %d clients: ", *clients)
	p99s := make([]time.Duration, n) // each phase's
	slow := make([]int, n)           // each phase's requests over 50ms
	for i, p := range phases {
		in := res.between(marks[i], marks[i+1])
		row(name+p.name, in, counts[i+1]["loads"]-counts[i]["loads"])
		p99s[i] = quantile(in.latencies(), 0.99)
		for _, rq := range in {
			if rq.took > 50*time.Millisecond {
				slow[i]++
			}
		}
	}

	fields := []string{"breaker_opened", "refused", "queued", "replayed", "dropped", "errors"}
	fmt.Printf("\nThe outage scenario's phases: its requests over 50ms, its p99 against the p99 before, and the breakers' counters, summed over the %d workers (times as in the workers' logs)\n\n", *workers)
	fmt.Printf("| phase | from | length | over 50ms | p99 / p99 before | %s |\n", strings.Join(fields, " | "))
	fmt.Printf("|---|---|---|---|---|%s\n", strings.Repeat("---|", len(fields)))
	for i, p := range phases {
		fmt.Printf("| %s | %s | %v | %d | %.2f× |", p.name, marks[i].Format("15:04:05.000"),
			marks[i+1].Sub(marks[i]).Round(time.Millisecond), slow[i], float64(p99s[i])/float64(p99s[0]))
		for _, f := range fields {
			fmt.Printf(" %d |", counts[i+1][f]-counts[i][f])
		}
		fmt.Println()
	}
	fmt.Printf("| whole run, from the workers' start | | | | |")
	for _, f := range fields {
		fmt.Printf(" %d |", counts[n][f])
	}
	fmt.Printf("\n\nAt the end: breakers %v, invalidations still queued %d.\n", breakers, counts[n]["queued_now"])
	breakerLog(ws)
}

// breakerLog prints the workers' log lines about their breakers and
// invalidation queues, then how many lines each message had.
func breakerLog(ws []*worker) {
	fmt.Println("\nThe workers' log lines about their breakers:\n\n```")
	messages := map[string]int{}
	for i, w := range ws {
		b, err := os.ReadFile(w.log)
		check(err)
		for line := range strings.Lines(string(b)) {
			if strings.Contains(line, "cache breaker") || strings.Contains(line, "invalidation queue") {
				fmt.Printf("worker %d: %s", i+1, line)
			}
			if _, rest, ok := strings.Cut(line, " level="); ok {
				level, msg, _ := strings.Cut(rest, " msg=")
				if q, err := strconv.QuotedPrefix(msg); err == nil {
					msg = q
				} else {
					msg, _, _ = strings.Cut(msg, " ")
				}
				messages[level+" "+strings.TrimSpace(msg)]++
			}
		}
	}
	fmt.Println("```\n\nAll their log lines, by level and message:\n\n```")
	for _, m := range slices.Sorted(maps.Keys(messages)) {
		fmt.Printf("%8d %s\n", messages[m], m)
	}
	fmt.Println("```")
}

type redisProc struct {
	addr string
	dir  string
	cmd  *exec.Cmd
}

func startRedis(dir string) *redisProc {
	r := &redisProc{addr: freeAddr(), dir: dir}
	r.start()
	return r
}

// start runs a redis-server on r's port, and waits until it accepts
// connections: the first one, or a new one after stop, which starts empty
// (nothing is saved).
func (r *redisProc) start() {
	_, port, _ := net.SplitHostPort(r.addr)
	r.cmd = exec.Command("redis-server", "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no", "--dir", r.dir)
	check(r.cmd.Start())
	waitFor(func() bool {
		c, err := net.Dial("tcp", r.addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func (r *redisProc) stop() { r.cmd.Process.Kill(); r.cmd.Wait() }

// signal sends sig to the redis-server: SIGSTOP hangs it, SIGCONT lets it go.
func (r *redisProc) signal(sig syscall.Signal) { check(r.cmd.Process.Signal(sig)) }

type worker struct {
	url string
	cmd *exec.Cmd
	log string // the file of its stderr
}

func startWorkers(bin, dir, redisAddr, extra, ttl string) []*worker {
	cfg := filepath.Join(dir, "ushka.toml")
	check(os.WriteFile(cfg, []byte("[cache]\nenabled = true\nbackend = \"redis\"\nredis_url = \"redis://"+redisAddr+"/0\"\n"+extra), 0o600))
	var ws []*worker
	for i := range *workers {
		addr := freeAddr()
		cmd := exec.Command(bin, "serve", "--config", cfg, "--addr", addr, "--delay", delay.String(), "--ttl", ttl)
		logFile := filepath.Join(cmp.Or(*logs, dir), fmt.Sprintf("worker-%d.log", i+1))
		stderr, err := os.Create(logFile)
		check(err)
		cmd.Stderr = stderr
		check(cmd.Start())
		stderr.Close() // the worker has its own copy
		w := &worker{"http://" + addr, cmd, logFile}
		waitFor(func() bool {
			resp, err := http.Get(w.url + "/healthz")
			if err == nil {
				resp.Body.Close()
			}
			return err == nil
		})
		ws = append(ws, w)
	}
	return ws
}

func stopAll(ws []*worker) {
	for _, w := range ws {
		w.cmd.Process.Kill()
		w.cmd.Wait()
	}
}

// request is one GET /report of a client.
type request struct {
	start  time.Time
	took   time.Duration
	ok     bool   // answered 200
	xcache string // its X-Cache header, if answered
}

// result is the requests of a run, in the order they ended.
type result []request

// fire sends n requests from c clients spread over the workers, or, when
// n is 0, keeps c clients busy for d.
func fire(ws []*worker, c, n int, d time.Duration) result {
	if n > 0 {
		return send(ws, c, true, func(sent int) bool { return sent >= n })
	}
	deadline := time.Now().Add(d)
	return send(ws, c, false, func(int) bool { return time.Now().After(deadline) })
}

// send has c clients send requests, spread over the workers, until
// done(the requests sent so far) is true; once, one request per client.
func send(ws []*worker, c int, once bool, done func(sent int) bool) result {
	var mu sync.Mutex
	var res result
	var wg sync.WaitGroup
	var sent int
	for i := range c {
		wg.Go(func() {
			client := &http.Client{Timeout: 30 * time.Second}
			for j := 0; ; j++ {
				mu.Lock()
				if done(sent) {
					mu.Unlock()
					return
				}
				sent++
				mu.Unlock()
				w := ws[(i+j)%len(ws)]
				rq := request{start: time.Now()}
				resp, err := client.Get(w.url + "/report")
				rq.took = time.Since(rq.start)
				if err == nil {
					rq.ok = resp.StatusCode == http.StatusOK
					rq.xcache = resp.Header.Get("X-Cache")
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				mu.Lock()
				res = append(res, rq)
				mu.Unlock()
				if once {
					return
				}
			}
		})
	}
	wg.Wait()
	return res
}

// between returns the requests that started in [from, to).
func (r result) between(from, to time.Time) result {
	var in result
	for _, rq := range r {
		if !rq.start.Before(from) && rq.start.Before(to) {
			in = append(in, rq)
		}
	}
	return in
}

// latencies returns the requests' latencies, sorted.
func (r result) latencies() []time.Duration {
	lat := make([]time.Duration, len(r))
	for i, rq := range r {
		lat[i] = rq.took
	}
	slices.Sort(lat)
	return lat
}

// quantile returns the p-quantile of sorted latencies, or 0 for none.
func quantile(lat []time.Duration, p float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	return lat[min(len(lat)-1, int(p*float64(len(lat))))]
}

// stats sums the workers' numeric counters of GET /cache/stats, and lists
// the states of their breakers.
func stats(ws []*worker) (sum map[string]int, breakers []string) {
	sum = map[string]int{}
	for _, w := range ws {
		resp, err := http.Get(w.url + "/cache/stats")
		check(err)
		var st map[string]any
		check(json.NewDecoder(resp.Body).Decode(&st))
		resp.Body.Close()
		for k, v := range st {
			if n, ok := v.(float64); ok {
				sum[k] += int(n)
			}
		}
		breakers = append(breakers, fmt.Sprint(st["breaker"]))
	}
	return sum, breakers
}

// loads sums the workers' computations of the report.
func loads(ws []*worker) int {
	sum, _ := stats(ws)
	return sum["loads"]
}

func row(name string, r result, computations int) {
	non200, xcache := 0, map[string]int{}
	for _, rq := range r {
		if !rq.ok {
			non200++
		}
		xcache[rq.xcache]++
	}
	var xs []string
	for _, k := range []string{"MISS", "HIT", "STALE"} {
		if xcache[k] > 0 {
			xs = append(xs, k+" "+strconv.Itoa(xcache[k]))
		}
	}
	lat := r.latencies()
	q := func(p float64) time.Duration { return quantile(lat, p).Round(10 * time.Microsecond) }
	fmt.Printf("| %s | %d | %d | %d | %s | %v | %v | %v |\n", name, len(r), non200, computations,
		cmp.Or(fmt.Sprint(xs), "-"), q(0.5), q(0.99), q(1))
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	defer l.Close()
	return l.Addr().String()
}

func waitFor(ok func() bool) {
	for range 200 {
		if ok() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	check(fmt.Errorf("timed out waiting"))
}

func run(cmd *exec.Cmd) {
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	check(cmd.Run())
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "manyproc:", err)
		os.Exit(1)
	}
}
