// Package reports is the seed's ReportService in Go: an expensive report,
// cached under "complex_report" for 60 seconds, served over HTTP. `ushka
// serve` runs it.
//
//	GET  /report          the report as JSON; X-Cache: MISS when this request computed it,
//	                      HIT when it came from the cache (or from a computation in flight)
//	POST /report/refresh  deletes the cached report
//	GET  /healthz         200 when the cache backend answers, 503 otherwise
//	GET  /cache/stats     the cache's counters as JSON
package reports

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/ushka-go/ushka/cache"
)

// Key and TTL of the cached report, as in the seed.
const (
	Key = "complex_report"
	TTL = 60 * time.Second
)

// DefaultDelay is how long the "expensive" report takes to compute.
const DefaultDelay = 2 * time.Second

// Report is the expensive result.
type Report struct {
	GeneratedAt string `json:"generated_at"`
	Data        []int  `json:"data"`
}

// ReportService computes the report, through the cache.
type ReportService struct {
	cache *cache.Cache
	delay time.Duration
	log   *slog.Logger
	now   func() time.Time
}

// NewReportService receives the configured cache by type: the Go form of
// the seed's `def __init__(self, cache: BaseCache)`. The report takes
// DefaultDelay and nothing is logged, unless WithDelay and WithLogger say
// otherwise.
func NewReportService(c *cache.Cache) *ReportService {
	return &ReportService{cache: c, delay: DefaultDelay, log: slog.New(slog.DiscardHandler), now: time.Now}
}

// WithDelay sets how long the expensive report takes, and returns s.
func (s *ReportService) WithDelay(d time.Duration) *ReportService {
	s.delay = d
	return s
}

// WithLogger makes s log whether each report came from the cache or was
// computed, as the seed prints, and returns s.
func (s *ReportService) WithLogger(l *slog.Logger) *ReportService {
	if l != nil {
		s.log = l
	}
	return s
}

// GenerateComplexReport returns the report: from the cache when it is
// there, otherwise computed and cached for TTL. computed reports whether this
// call ran the expensive work; a call that found a computation already
// running waits for it and shares its result (computed == false), so a burst
// of requests computes the report once.
func (s *ReportService) GenerateComplexReport(ctx context.Context) (Report, bool, error) {
	// The load runs on its own goroutine, which may outlive this call when
	// ctx ends first: hence an atomic flag.
	var computed atomic.Bool
	// 1. check the cache; 2. on a miss, compute; 3. store it with a TTL of
	// 60 seconds. GetOrSet does the three, safely under concurrency.
	r, err := cache.GetOrSet(ctx, s.cache, Key, TTL, func(ctx context.Context) (Report, error) {
		computed.Store(true)
		s.log.InfoContext(ctx, "Generating report from SCRATCH")
		select { // ... pretend this is a slow, expensive operation ...
		case <-time.After(s.delay):
		case <-ctx.Done():
			return Report{}, ctx.Err()
		}
		return Report{GeneratedAt: s.now().UTC().Format(time.RFC3339Nano), Data: []int{1, 2, 3}}, nil
	})
	if err != nil {
		return Report{}, false, err
	}
	if !computed.Load() {
		s.log.InfoContext(ctx, "Returning report from CACHE")
	}
	return r, computed.Load(), nil
}

// Refresh drops the cached report, so that the next request computes it.
func (s *ReportService) Refresh(ctx context.Context) error {
	return s.cache.Delete(ctx, Key)
}

// NewHandler serves the service over HTTP.
func NewHandler(svc *ReportService) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /report", func(w http.ResponseWriter, r *http.Request) {
		rep, computed, err := svc.GenerateComplexReport(r.Context())
		if err != nil {
			svc.log.ErrorContext(r.Context(), "report failed", "err", err)
			http.Error(w, "report failed", http.StatusInternalServerError)
			return
		}
		w.Header().Set("X-Cache", map[bool]string{true: "MISS", false: "HIT"}[computed])
		writeJSON(w, http.StatusOK, rep)
	})
	mux.HandleFunc("POST /report/refresh", func(w http.ResponseWriter, r *http.Request) {
		if err := svc.Refresh(r.Context()); err != nil {
			svc.log.ErrorContext(r.Context(), "refresh failed", "err", err)
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "cache delete failed; the old report may still be served"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "refreshed"})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := svc.cache.Ping(r.Context()); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /cache/stats", func(w http.ResponseWriter, r *http.Request) {
		st := svc.cache.Stats()
		writeJSON(w, http.StatusOK, struct {
			cache.Stats
			HitRatio float64 `json:"hit_ratio"`
		}{st, st.HitRatio()})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
