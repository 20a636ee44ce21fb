// Command manyproc measures what a user sees with several `ushka serve`
// workers on one Redis: how many times the report is computed for a cold
// burst, the latency of steady traffic across expiries with and without
// early refresh, and the answers while the report's computation fails or
// Redis is dead, with fail-safe on. It builds the ushka binary, starts its
// own redis-server on a free loopback port, and prints one table.
//
//	cd bench && go run ./manyproc            # 4 workers, report delay 1s
//	go run ./manyproc -workers 4 -delay 1s -ttl 10s -steady 25s
package main

import (
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	only    = flag.String("only", "burst,steady,failsafe,near", "the scenarios to run, comma-separated")
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
}

type redisProc struct {
	addr string
	cmd  *exec.Cmd
}

func startRedis(dir string) *redisProc {
	addr := freeAddr()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no", "--dir", dir)
	check(cmd.Start())
	waitFor(func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return &redisProc{addr, cmd}
}

func (r *redisProc) stop() { r.cmd.Process.Kill(); r.cmd.Wait() }

type worker struct {
	url string
	cmd *exec.Cmd
}

func startWorkers(bin, dir, redisAddr, extra, ttl string) []*worker {
	cfg := filepath.Join(dir, "ushka.toml")
	check(os.WriteFile(cfg, []byte("[cache]\nenabled = true\nbackend = \"redis\"\nredis_url = \"redis://"+redisAddr+"/0\"\n"+extra), 0o600))
	var ws []*worker
	for range *workers {
		addr := freeAddr()
		cmd := exec.Command(bin, "serve", "--config", cfg, "--addr", addr, "--delay", delay.String(), "--ttl", ttl)
		check(cmd.Start())
		w := &worker{"http://" + addr, cmd}
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

type result struct {
	lat     []time.Duration
	non200  int
	xcache  map[string]int
	started time.Time
}

// fire sends n requests from c clients spread over the workers, or, when
// n is 0, keeps c clients busy for d.
func fire(ws []*worker, c, n int, d time.Duration) result {
	var mu sync.Mutex
	res := result{xcache: map[string]int{}, started: time.Now()}
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	var sent int
	for i := range c {
		wg.Go(func() {
			client := &http.Client{Timeout: 30 * time.Second}
			for j := 0; ; j++ {
				mu.Lock()
				if (n > 0 && sent >= n) || (n == 0 && time.Now().After(deadline)) {
					mu.Unlock()
					return
				}
				sent++
				mu.Unlock()
				w := ws[(i+j)%len(ws)]
				start := time.Now()
				resp, err := client.Get(w.url + "/report")
				took := time.Since(start)
				mu.Lock()
				res.lat = append(res.lat, took)
				if err != nil || resp.StatusCode != http.StatusOK {
					res.non200++
				}
				if err == nil {
					res.xcache[resp.Header.Get("X-Cache")]++
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				mu.Unlock()
				if n > 0 {
					return // a burst: one request per client
				}
			}
		})
	}
	wg.Wait()
	return res
}

// loads sums the workers' computations of the report.
func loads(ws []*worker) int {
	total := 0
	for _, w := range ws {
		resp, err := http.Get(w.url + "/cache/stats")
		check(err)
		var st struct {
			Loads int `json:"loads"`
		}
		check(json.NewDecoder(resp.Body).Decode(&st))
		resp.Body.Close()
		total += st.Loads
	}
	return total
}

func row(name string, r result, computations int) {
	slices.Sort(r.lat)
	q := func(p float64) time.Duration { return r.lat[min(len(r.lat)-1, int(p*float64(len(r.lat))))] }
	var xs []string
	for _, k := range []string{"MISS", "HIT", "STALE"} {
		if r.xcache[k] > 0 {
			xs = append(xs, k+" "+strconv.Itoa(r.xcache[k]))
		}
	}
	fmt.Printf("| %s | %d | %d | %d | %s | %v | %v | %v |\n", name, len(r.lat), r.non200, computations,
		cmp.Or(fmt.Sprint(xs), "-"), q(0.5).Round(10*time.Microsecond), q(0.99).Round(10*time.Microsecond), r.lat[len(r.lat)-1].Round(10*time.Microsecond))
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
