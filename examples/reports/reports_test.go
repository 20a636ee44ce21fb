package reports_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/cache/cachetest"
	"github.com/ushka-go/ushka/cache/memory"
	"github.com/ushka-go/ushka/examples/reports"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newServer(t *testing.T, delay time.Duration) (*httptest.Server, *cache.Cache) {
	t.Helper()
	return newServerWith(t, cache.Config{Enabled: true}, func(s *reports.ReportService) { s.WithDelay(delay) })
}

// newServerWith serves a ReportService over a cache opened with cfg,
// configured by setup.
func newServerWith(t *testing.T, cfg cache.Config, setup func(*reports.ReportService)) (*httptest.Server, *cache.Cache) {
	t.Helper()
	c, err := cache.Open(context.Background(), cfg, cache.WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	svc := reports.NewReportService(c)
	setup(svc)
	srv := httptest.NewServer(reports.NewHandler(svc))
	t.Cleanup(srv.Close)
	return srv, c
}

func get(t *testing.T, url string) (status int, xcache, body string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Cache"), string(b)
}

func post(t *testing.T, url string) int {
	t.Helper()
	status, _ := postBody(t, url)
	return status
}

func postBody(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// generatedAt returns the generated_at of a report body.
func generatedAt(t *testing.T, body string) string {
	t.Helper()
	var r reports.Report
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.GeneratedAt == "" {
		t.Fatalf("body %q is not a report: %v", body, err)
	}
	return r.GeneratedAt
}

func TestMissThenHit(t *testing.T) {
	srv, _ := newServer(t, 300*time.Millisecond)
	start := time.Now()
	status, x1, body1 := get(t, srv.URL+"/report")
	slow := time.Since(start)
	if status != 200 || x1 != "MISS" {
		t.Fatalf("first GET /report = %d X-Cache %q, want 200 MISS", status, x1)
	}
	if slow < 300*time.Millisecond {
		t.Fatalf("first GET took %v, want the report's delay", slow)
	}
	var r reports.Report
	if err := json.Unmarshal([]byte(body1), &r); err != nil || len(r.Data) != 3 || r.GeneratedAt == "" {
		t.Fatalf("body %q is not a report: %v", body1, err)
	}
	start = time.Now()
	status, x2, body2 := get(t, srv.URL+"/report")
	if status != 200 || x2 != "HIT" || body2 != body1 {
		t.Fatalf("second GET /report = %d %q %q, want 200 HIT with the same body", status, x2, body2)
	}
	if fast := time.Since(start); fast >= 300*time.Millisecond {
		t.Fatalf("cached GET took %v", fast)
	}
}

func TestRefreshRecomputes(t *testing.T) {
	srv, _ := newServer(t, 10*time.Millisecond)
	_, _, body1 := get(t, srv.URL+"/report")
	if status := post(t, srv.URL+"/report/refresh"); status != 200 {
		t.Fatalf("POST /report/refresh = %d", status)
	}
	_, x, body2 := get(t, srv.URL+"/report")
	if x != "MISS" || body2 == body1 {
		t.Fatalf("after refresh: X-Cache %q, same body %v; want a fresh MISS", x, body2 == body1)
	}
}

func TestBurstComputesOnce(t *testing.T) {
	srv, c := newServer(t, 200*time.Millisecond)
	var wg sync.WaitGroup
	bodies := make(chan string, 20)
	for range 20 {
		wg.Go(func() {
			status, _, body := get(t, srv.URL+"/report")
			if status != 200 {
				t.Errorf("status %d", status)
			}
			bodies <- body
		})
	}
	wg.Wait()
	close(bodies)
	first := ""
	for b := range bodies {
		if first == "" {
			first = b
		}
		if b != first {
			t.Fatal("concurrent requests got different reports")
		}
	}
	if loads := c.Stats().Loads; loads != 1 {
		t.Fatalf("20 concurrent requests computed the report %d times, want 1", loads)
	}
}

func TestHealthAndStats(t *testing.T) {
	srv, c := newServer(t, time.Millisecond)
	if status, _, body := get(t, srv.URL+"/healthz"); status != 200 {
		t.Fatalf("GET /healthz = %d %s", status, body)
	}
	get(t, srv.URL+"/report")
	get(t, srv.URL+"/report")
	status, _, body := get(t, srv.URL+"/cache/stats")
	var st struct {
		Hits, Misses, Sets, Loads uint64
		HitRatio                  float64 `json:"hit_ratio"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil || status != 200 {
		t.Fatalf("GET /cache/stats = %d %q (%v)", status, body, err)
	}
	if st.Hits != 1 || st.Misses != 1 || st.Sets != 1 || st.Loads != 1 || st.HitRatio != 0.5 {
		t.Fatalf("stats = %+v, want 1 hit, 1 miss, 1 set, 1 load", st)
	}
	// A closed cache: health fails, refresh reports that it could not delete.
	c.Close()
	if status, _, _ := get(t, srv.URL+"/healthz"); status != 503 {
		t.Fatalf("GET /healthz on a closed cache = %d, want 503", status)
	}
	if status := post(t, srv.URL+"/report/refresh"); status != 503 {
		t.Fatalf("POST /report/refresh on a closed cache = %d, want 503: a failed invalidation is not hidden", status)
	}
}

// The report's TTL is the service's: a report older than it is computed again.
func TestWithTTL(t *testing.T) {
	const ttl = 100 * time.Millisecond
	srv, _ := newServerWith(t, cache.Config{Enabled: true}, func(s *reports.ReportService) {
		s.WithTTL(ttl).WithDelay(time.Millisecond)
	})
	_, x1, body1 := get(t, srv.URL+"/report")
	_, x2, body2 := get(t, srv.URL+"/report")
	if x1 != "MISS" || x2 != "HIT" || body2 != body1 {
		t.Fatalf("GET /report twice = %s, %s (same body %v), want MISS then HIT", x1, x2, body1 == body2)
	}
	time.Sleep(ttl + 50*time.Millisecond) // nothing signals an expiry
	if _, x3, body3 := get(t, srv.URL+"/report"); x3 != "MISS" || body3 == body1 {
		t.Fatalf("GET /report after the TTL = %s (same body %v), want a new MISS", x3, body3 == body1)
	}
}

func TestFailParameter(t *testing.T) {
	srv, _ := newServer(t, time.Millisecond)
	tests := []struct {
		query  string
		status int
		want   string
	}{
		{"", 400, `want one \"for\" parameter with a duration, such as POST /report/fail?for=5s`},
		{"?for=", 400, `want one \"for\" parameter`},
		{"?for=5s&for=6s", 400, `want one \"for\" parameter`},
		{"?for=soon", 400, `for: want a duration such as 5s or 1m, got \"soon\"`},
		{"?for=5", 400, `for: want a duration such as 5s or 1m, got \"5\"`},
		{"?for=0s", 400, `for: must be more than 0s and at most 1h0m0s, got 0s`},
		{"?for=-1s", 400, `for: must be more than 0s and at most 1h0m0s, got -1s`},
		{"?for=1h0m0.001s", 400, `for: must be more than 0s and at most 1h0m0s, got 1h0m0.001s`},
		{"?for=2h", 400, `for: must be more than 0s and at most 1h0m0s, got 2h0m0s`},
		{"?for=1ns", 200, `{"for":"1ns","status":"failing","until":"`},
		{"?for=1h", 200, `{"for":"1h0m0s","status":"failing","until":"`},
		{"?for=5s", 200, `{"for":"5s","status":"failing","until":"`},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			status, body := postBody(t, srv.URL+"/report/fail"+tt.query)
			if status != tt.status || !strings.Contains(body, tt.want) {
				t.Fatalf("POST /report/fail%s = %d %s, want %d with %s", tt.query, status, body, tt.status, tt.want)
			}
			if status == 400 && !strings.HasPrefix(body, `{"error":`) {
				t.Fatalf("a refused POST /report/fail%s answered %q, want a JSON error", tt.query, body)
			}
		})
	}
	if got := post(t, srv.URL+"/report/fail/now"); got != 404 {
		t.Fatalf("POST /report/fail/now = %d, want 404", got)
	}
}

// With nothing cached and the database down, GET /report is a 503 with a
// JSON error, not a 500; when the database is back, the report is computed.
func TestFailWithoutAReportIs503(t *testing.T) {
	srv, c := newServer(t, time.Millisecond)
	if status, body := postBody(t, srv.URL+"/report/fail?for=1m"); status != 200 {
		t.Fatalf("POST /report/fail?for=1m = %d %s", status, body)
	}
	resp, err := http.Get(srv.URL + "/report")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var e struct{ Error string }
	if resp.StatusCode != 503 || resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &e) != nil ||
		!strings.Contains(e.Error, "the database is down") {
		t.Fatalf("GET /report while failing = %d %q %q, want 503 with a JSON error about the database", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "60" {
		t.Errorf("Retry-After = %q, want 60", ra)
	}
	if x := resp.Header.Get("X-Cache"); x != "" {
		t.Errorf("a failed GET /report says X-Cache %q", x)
	}
	if found, _ := c.Get(t.Context(), reports.Key, new(reports.Report)); found {
		t.Fatal("a failed computation cached something")
	}
	// The failure is over: the report is computed again.
	if status, _ := postBody(t, srv.URL+"/report/fail?for=1ns"); status != 200 {
		t.Fatal("POST /report/fail?for=1ns failed")
	}
	if status, x, _ := get(t, srv.URL+"/report"); status != 200 || x != "MISS" {
		t.Fatalf("GET /report after the failure = %d %s, want 200 MISS", status, x)
	}
}

// TestStaleWhileFailing is the demo of fail-safe: with stale_ttl set, a
// report past its TTL whose recomputation fails is served as STALE, the
// last good one, until the database is back.
//
// It needs the front end's fail-safe (issue 9).
func TestStaleWhileFailing(t *testing.T) {
	const ttl = 100 * time.Millisecond
	const throttle = 200 * time.Millisecond
	srv, c := newServerWith(t, cache.Config{Enabled: true, StaleTTL: time.Hour, FailSafeThrottle: throttle},
		func(s *reports.ReportService) { s.WithTTL(ttl).WithDelay(time.Millisecond) })
	status, x, body := get(t, srv.URL+"/report")
	if status != 200 || x != "MISS" {
		t.Fatalf("first GET /report = %d %s, want 200 MISS", status, x)
	}
	first := generatedAt(t, body)
	if status, _ := postBody(t, srv.URL+"/report/fail?for=1h"); status != 200 {
		t.Fatal("POST /report/fail?for=1h failed")
	}
	time.Sleep(ttl + 50*time.Millisecond) // the report is past its TTL
	loads := c.Stats().Loads
	for i := range 3 {
		status, x, body := get(t, srv.URL+"/report")
		if status != 200 || x != "STALE" || generatedAt(t, body) != first {
			t.Fatalf("GET /report %d while failing = %d %s %s, want 200 STALE with generated_at %s", i, status, x, body, first)
		}
	}
	// The throttle: one failed load, not one per request.
	if n := c.Stats().Loads - loads; n != 1 {
		t.Errorf("3 requests while failing ran %d loads, want 1 (fail_safe_throttle)", n)
	}
	// Get keeps its contract: never a value past its TTL.
	if found, _ := c.Get(t.Context(), reports.Key, new(reports.Report)); found {
		t.Error("Get returned the stale report")
	}
	// The database is back: after the throttle, the next request computes.
	postBody(t, srv.URL+"/report/fail?for=1ns")
	time.Sleep(throttle + 50*time.Millisecond)
	status, x, body = get(t, srv.URL+"/report")
	if status != 200 || x != "MISS" || generatedAt(t, body) == first {
		t.Fatalf("GET /report after the failure = %d %s %s, want a new report, MISS", status, x, body)
	}
}

// TestRefreshAheadServesHit: a request late in the report's TTL is served
// from the cache at once (HIT, although it started a computation in the
// background), and the next one gets the refreshed report.
//
// It needs the front end's early refresh (issue 9).
func TestRefreshAheadServesHit(t *testing.T) {
	const ttl, delay = 400 * time.Millisecond, 100 * time.Millisecond
	srv, c := newServerWith(t, cache.Config{Enabled: true, RefreshAhead: 0.5},
		func(s *reports.ReportService) { s.WithTTL(ttl).WithDelay(delay) })
	_, x, body := get(t, srv.URL+"/report")
	if x != "MISS" {
		t.Fatalf("first GET /report = %s, want MISS", x)
	}
	first := generatedAt(t, body)
	time.Sleep(ttl / 2) // past refresh_ahead of the TTL, before its end
	start := time.Now()
	status, x, body := get(t, srv.URL+"/report")
	if took := time.Since(start); status != 200 || x != "HIT" || generatedAt(t, body) != first || took >= delay {
		t.Fatalf("GET /report late in the TTL = %d %s in %v (same report %v), want an immediate HIT of the cached report",
			status, x, took, generatedAt(t, body) == first)
	}
	// The refreshed report lands when its load returns: wait for it to be
	// stored, before the first one's TTL is over.
	deadline := time.Now().Add(ttl / 2)
	for c.Stats().Sets < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := c.Stats(); st.Loads != 2 || st.Sets != 2 {
		t.Fatalf("after a hit late in the TTL: %d loads, %d sets; want 2 and 2: one background refresh", st.Loads, st.Sets)
	}
	if _, x, body := get(t, srv.URL+"/report"); x != "HIT" || generatedAt(t, body) == first {
		t.Fatalf("GET /report after the refresh = %s, same report %v; want a HIT of the refreshed report", x, generatedAt(t, body) == first)
	}
}

// TestHealthzReportsTheBreaker: while the backend fails, /healthz says
// "degraded" with the breaker open, and stays 200 (the service answers from
// fail-safe's copies); once the backend answers, "ok" again.
func TestHealthzReportsTheBreaker(t *testing.T) {
	store, err := memory.New(memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var chaos cachetest.Chaos
	c := cache.New(chaos.Wrap(store), cache.WithLogger(nil), cache.WithBreaker(cache.BreakerConfig{Retry: 10 * time.Millisecond}))
	t.Cleanup(func() { c.Close() })
	svc := reports.NewReportService(c).WithDelay(time.Millisecond)
	srv := httptest.NewServer(reports.NewHandler(svc))
	t.Cleanup(srv.Close)
	var h struct {
		Status  string
		Error   string
		Breaker struct{ Backend, State string }
	}
	health := func() int {
		status, _, body := get(t, srv.URL+"/healthz")
		h.Breaker.State, h.Error = "", ""
		if err := json.Unmarshal([]byte(body), &h); err != nil {
			t.Fatalf("GET /healthz = %q: %v", body, err)
		}
		return status
	}
	if status := health(); status != 200 || h.Status != "ok" || h.Breaker.State != "closed" || h.Breaker.Backend == "" {
		t.Fatalf("GET /healthz = %d %+v, want ok with the breaker closed", status, h)
	}
	chaos.Fail(errors.New("connection refused"))
	for range 3 {
		get(t, srv.URL+"/report")
	}
	if status := health(); status != 200 || h.Status != "degraded" || h.Breaker.State != "open" || !strings.Contains(h.Error, "unavailable") {
		t.Fatalf("GET /healthz with the backend down = %d %+v, want 200, degraded, the breaker open", status, h)
	}
	chaos.Heal()
	for deadline := time.Now().Add(5 * time.Second); health() != 200 || h.Status != "ok"; {
		if time.Now().After(deadline) {
			t.Fatalf("GET /healthz 5s after the backend came back = %+v, want ok", h)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
