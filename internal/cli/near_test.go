package cli_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ushka-go/ushka/internal/redistest"
	"github.com/ushka-go/ushka/internal/testutil"
)

// TestServeNearCache runs two `ushka serve` workers with near_cache on one
// Redis, as the seed's production setup does. A report one worker computed
// is served by the other from Redis once, then from its near cache (its
// /cache/stats count near hits); a refresh on one worker is seen by the
// other at its next request, which computes a new report; `ushka cache
// stats` shows the near cache's connections tracked by the server.
func TestServeNearCache(t *testing.T) {
	srv := redistest.Start(t)
	config := fmt.Sprintf("[cache]\nenabled = true\nbackend = \"redis\"\nredis_url = \"redis://%s/0\"\nnear_cache = true\n", srv.Addr)
	a, _, _ := startServe(t, config, "50ms")
	b, _, _ := startServe(t, config, "50ms")
	report := func(url string) (string, string) {
		t.Helper()
		resp, err := http.Get(url + "/report")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.Header.Get("X-Cache"), string(body)
	}
	stats := func(url string) (s struct {
		Hits     uint64 `json:"hits"`
		NearHits uint64 `json:"near_hits"`
		Entries  int    `json:"near_entries"`
		Bytes    int64  `json:"near_bytes"`
	}) {
		t.Helper()
		resp, err := http.Get(url + "/cache/stats")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	x, first := report(a)
	if x != "MISS" {
		t.Fatalf("first GET /report on worker A: X-Cache %s", x)
	}
	for i := range 3 {
		x, body := report(b)
		if x != "HIT" || body != first {
			t.Fatalf("GET /report %d on worker B = %s %s, want a HIT of A's report", i, x, body)
		}
	}
	if st := stats(b); st.Hits != 3 || st.NearHits != 2 || st.Entries < 1 || st.Bytes <= 0 {
		t.Fatalf("worker B's /cache/stats = %+v, want 3 hits, 2 of them near, and the entry held", st)
	}
	resp, err := http.Post(a+"/report/refresh", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// B held the report in its near cache; A's Delete reaches it through
	// Redis's invalidation, which comes within milliseconds: B's next
	// request computes a new report, never serving the old one again.
	var second string
	for i := range 100 {
		x, body := report(b)
		if body == first {
			if second != "" {
				t.Fatalf("worker B served the refreshed report again after a new one")
			}
			continue // the invalidation was still on its way
		}
		if x != "MISS" && second == "" {
			t.Fatalf("worker B's first new report: X-Cache %s, want MISS", x)
		}
		if second != "" && body != second {
			t.Fatalf("worker B's report changed again: %s then %s", second, body)
		}
		second = body
		if i > 5 {
			break
		}
	}
	if second == "" {
		t.Fatal("worker B never computed a new report after the refresh")
	}
	// The worker's own counters, from outside it.
	r := run(t, "cache", "stats", "--url", b)
	var served struct {
		Hits     uint64 `json:"hits"`
		NearHits uint64 `json:"near_hits"`
		Bytes    int64  `json:"near_bytes"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &served) != nil || served.NearHits < 2 || served.Bytes <= 0 {
		t.Fatalf("cache stats --url = exit %d %s %s, want worker B's near hits", r.code, strings.TrimSpace(r.stdout), r.stderr)
	}
	r = run(t, "cache", "stats", "--config", testutil.WriteConfig(t, config))
	var info struct {
		NearCache       bool  `json:"near_cache"`
		TrackingClients int64 `json:"tracking_clients"`
		TrackingKeys    int64 `json:"tracking_keys"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &info) != nil || !info.NearCache || info.TrackingClients < 2 || info.TrackingKeys < 1 {
		t.Fatalf("cache stats = exit %d %s, want near_cache and the two workers' tracking", r.code, strings.TrimSpace(r.stdout))
	}
}

// TestCacheStatsURLRejects: --url wants a running service's base URL; any
// other is one clear error, and a service that does not answer is exit 3.
func TestCacheStatsURLRejects(t *testing.T) {
	for _, tt := range []struct {
		url, want string
		code      int
	}{
		{"localhost:8080", "want the service's base URL, such as http://127.0.0.1:8080", 2},
		{"ftp://127.0.0.1:8080", "want the service's base URL", 2},
		{"http://", "want the service's base URL", 2},
		{"http://127.0.0.1:8080/report", `not the path "/report"`, 2},
		{"http://" + testutil.UnusedAddr(t), "did not answer", 3},
	} {
		expect(t, run(t, "cache", "stats", "--url", tt.url), tt.code, "", tt.want)
	}
	// A password in the URL never shows (the hostile review found it echoed).
	for _, u := range []string{"http://admin:hunter2@127.0.0.1:1/report", "ftp://admin:hunter2@127.0.0.1:1",
		"http://admin:hunter2@127.0.0.1:1/%zz", "http://admin:hunter2@" + testutil.UnusedAddr(t)} {
		if r := run(t, "cache", "stats", "--url", u); r.code == 0 || strings.Contains(r.stdout+r.stderr, "hunter2") {
			t.Errorf("cache stats --url %s: exit %d, %q", u, r.code, r.stderr)
		}
	}
	// A server that is not an Ushka service.
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	expect(t, run(t, "cache", "stats", "--url", srv.URL), 3, "", "404 Not Found, not the cache's counters")
}
