package reports_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/examples/reports"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newServer(t *testing.T, delay time.Duration) (*httptest.Server, *cache.Cache) {
	t.Helper()
	c, err := cache.Open(context.Background(), cache.Config{Enabled: true}, cache.WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	srv := httptest.NewServer(reports.NewHandler(reports.NewReportService(c).WithDelay(delay)))
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
	resp, err := http.Post(url, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
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
