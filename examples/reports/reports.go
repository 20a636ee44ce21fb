// Package reports is the seed's ReportService in Go: an expensive report,
// cached under "complex_report" (for 60 seconds unless told otherwise),
// served over HTTP. `ushka serve` runs it.
//
//	GET  /report              the report as JSON; X-Cache: MISS when this request computed it,
//	                          HIT when it came from the cache (or from a computation in flight),
//	                          STALE when the computation failed and fail-safe served the last good one
//	POST /report/refresh      deletes the cached report
//	POST /report/fail?for=5s  makes the computation fail for that long, as a database that is down
//	GET  /healthz             {"status": "ok"}, or "degraded" while the cache backend does not answer
//	                          (still 200: the service answers), with its circuit breaker's state;
//	                          503 once the cache is closed
//	GET  /cache/stats         the cache's counters as JSON
package reports

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/httpcache"
)

// Key and TTL of the cached report, as in the seed. TTL is the default;
// [ReportService.WithTTL] changes it.
const (
	Key = "complex_report"
	TTL = 60 * time.Second
)

// DefaultDelay is how long the "expensive" report takes to compute.
const DefaultDelay = 2 * time.Second

// MaxFailFor bounds how long POST /report/fail may make the computation fail.
const MaxFailFor = time.Hour

// ErrDatabaseDown is the error of a computation while [ReportService.FailFor]
// holds: the database behind the report is down.
var ErrDatabaseDown = errors.New("reports: the database is down")

// Report is the expensive result.
type Report struct {
	GeneratedAt string `json:"generated_at"`
	Data        []int  `json:"data"`
}

// Source says where a report came from, as the X-Cache header shows it.
type Source string

// The sources of a report.
const (
	// Miss: this call computed the report.
	Miss Source = "MISS"
	// Hit: the report came from the cache, or from a computation that
	// another call had started.
	Hit Source = "HIT"
	// Stale: a fresh report could not be computed, and fail-safe served
	// the last good one (stale_ttl in ushka.toml).
	Stale Source = "STALE"
)

// ReportService computes the report, through the cache.
type ReportService struct {
	cache     *cache.Cache
	ttl       time.Duration
	delay     time.Duration
	log       *slog.Logger
	now       func() time.Time
	failUntil atomic.Int64 // Unix nanoseconds; the computation fails before it
}

// NewReportService receives the configured cache by type: the Go form of
// the seed's `def __init__(self, cache: BaseCache)`. The report is cached
// for TTL, takes DefaultDelay and nothing is logged, unless WithTTL,
// WithDelay and WithLogger say otherwise.
func NewReportService(c *cache.Cache) *ReportService {
	return &ReportService{cache: c, ttl: TTL, delay: DefaultDelay, log: slog.New(slog.DiscardHandler), now: time.Now}
}

// WithTTL sets how long the report is cached, and returns s.
func (s *ReportService) WithTTL(d time.Duration) *ReportService {
	s.ttl = d
	return s
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

// FailFor makes every computation of the report that starts within d from
// now fail with [ErrDatabaseDown], as when the database behind it is down,
// and returns when that ends. A d <= 0 ends a failure now.
func (s *ReportService) FailFor(d time.Duration) time.Time {
	until := s.now().Add(max(d, 0))
	s.failUntil.Store(until.UnixNano())
	return until
}

// failing returns how long the computation still fails, or 0.
func (s *ReportService) failing() time.Duration {
	return max(time.Unix(0, s.failUntil.Load()).Sub(s.now()), 0)
}

// GenerateComplexReport returns the report: from the cache when it is
// there, otherwise computed and cached for the service's TTL, and where it
// came from. A call that finds a computation already running waits for it
// and shares its result (Hit), so a burst of requests computes the report
// once. With stale_ttl set in ushka.toml, a computation that fails while an
// expired report is still kept serves that report (Stale) instead of the
// error.
func (s *ReportService) GenerateComplexReport(ctx context.Context) (Report, Source, error) {
	// The load runs on its own goroutine, which may outlive this call when
	// ctx ends first, or run in the background for an early refresh: hence
	// an atomic flag.
	var computed atomic.Bool
	var how cache.Outcome
	// 1. check the cache; 2. on a miss, compute; 3. store it with a TTL.
	// GetOrSet does the three, safely under concurrency.
	r, err := cache.GetOrSet(ctx, s.cache, Key, s.ttl, func(ctx context.Context) (Report, error) {
		computed.Store(true)
		s.log.InfoContext(ctx, "Generating report from SCRATCH")
		if left := s.failing(); left > 0 {
			s.log.WarnContext(ctx, "report computation failed: the database is down", "for", left.Round(time.Millisecond))
			return Report{}, fmt.Errorf("%w (for %s more)", ErrDatabaseDown, left.Round(time.Millisecond))
		}
		select { // ... pretend this is a slow, expensive operation ...
		case <-time.After(s.delay):
		case <-ctx.Done():
			return Report{}, ctx.Err()
		}
		return Report{GeneratedAt: s.now().UTC().Format(time.RFC3339Nano), Data: []int{1, 2, 3}}, nil
	}, cache.ReportOutcome(&how))
	if err != nil {
		return Report{}, "", err
	}
	src := Hit
	switch {
	case how == cache.OutcomeStale:
		src = Stale
		s.log.WarnContext(ctx, "Returning a STALE report: a fresh one cannot be computed")
	case how == cache.OutcomeHit:
		// From the cache; a computation this call may have started is an
		// early refresh in the background.
	case computed.Load():
		src = Miss
	}
	if src == Hit {
		s.log.InfoContext(ctx, "Returning report from CACHE")
	}
	return r, src, nil
}

// Refresh drops the cached report, so that the next request computes it.
func (s *ReportService) Refresh(ctx context.Context) error {
	return s.cache.Delete(ctx, Key)
}

// NewHandler serves the service over HTTP.
func NewHandler(svc *ReportService) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /report", func(w http.ResponseWriter, r *http.Request) {
		rep, src, err := svc.GenerateComplexReport(r.Context())
		if err != nil {
			svc.log.ErrorContext(r.Context(), "report failed", "err", err)
			msg := "the report cannot be computed now, and no earlier report is cached"
			if errors.Is(err, ErrDatabaseDown) {
				msg = "the report cannot be computed: the database is down, and no earlier report is cached"
				if left := svc.failing(); left > 0 {
					w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(left.Seconds()))))
				}
			}
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": msg})
			return
		}
		w.Header().Set("X-Cache", string(src))
		writeJSON(w, http.StatusOK, rep)
	})
	// GET / is a page for people: the report and the cache's counters,
	// cached whole by httpcache (X-Cache: HIT on the second load), and
	// dropped with the report by POST /report/refresh (the tag "page").
	mux.Handle("GET /{$}", httpcache.Middleware(svc.cache, httpcache.Options{
		TTL:  PageTTL,
		Tags: func(*http.Request) []string { return []string{PageTag} },
	})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep, _, err := svc.GenerateComplexReport(r.Context())
		if err != nil {
			w.Header().Set("Cache-Control", "no-store") // an error page is not kept
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		st := svc.cache.Stats()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = pageTemplate.Execute(w, struct {
			Report   Report
			Err      error
			Stats    cache.Stats
			Rendered string
			PageTTL  time.Duration
		}{rep, err, st, time.Now().UTC().Format(time.RFC3339Nano), PageTTL})
	})))
	mux.HandleFunc("POST /report/refresh", func(w http.ResponseWriter, r *http.Request) {
		err := svc.Refresh(r.Context())
		// The page after the report: a GET / between the two would render
		// the old report again and cache that page.
		if ierr := svc.cache.InvalidateTags(r.Context(), PageTag); ierr != nil {
			svc.log.WarnContext(r.Context(), "page invalidation failed", "err", ierr)
		}
		if err != nil {
			svc.log.ErrorContext(r.Context(), "refresh failed", "err", err)
			msg := "cache delete failed; the old report may still be served"
			if errors.Is(err, cache.ErrUnavailable) {
				msg = "the cache backend is unavailable: the delete is queued and replayed before this service reads from it again"
			}
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": msg})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "refreshed"})
	})
	mux.HandleFunc("POST /report/fail", func(w http.ResponseWriter, r *http.Request) {
		d, err := parseFailFor(r.URL.Query())
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		until := svc.FailFor(d)
		svc.log.WarnContext(r.Context(), "the report's computation fails from now on", "for", d, "until", until.UTC())
		writeJSON(w, http.StatusOK, map[string]string{"status": "failing", "for": d.String(), "until": until.UTC().Format(time.RFC3339Nano)})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		h := health{Status: "ok"}
		if br := svc.cache.Breaker(); br.Backend != "" {
			h.Breaker = &br
		}
		status := http.StatusOK
		switch err := svc.cache.Ping(r.Context()); {
		case errors.Is(err, cache.ErrClosed):
			status, h.Status, h.Error = http.StatusServiceUnavailable, "unavailable", err.Error()
		case err != nil:
			// The service still answers (from fail-safe's copies, or by
			// computing): a readiness check that failed here would take
			// every worker out of rotation, turning a cache outage into a
			// site outage.
			h.Status, h.Error = "degraded", err.Error()
		}
		writeJSON(w, status, h)
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

// PageTTL is how long GET / is cached; PageTag is its cache tag.
const (
	PageTTL = 30 * time.Second
	PageTag = "page"
)

// pageTemplate is GET /: the report and the cache's counters when the page
// was rendered.
var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Ushka report</title>
<style>body{font:16px system-ui,sans-serif;max-width:40em;margin:2em auto}td{padding:.2em 1em}</style></head>
<body>
<h1>The complex report</h1>
{{if .Err}}<p id="error">The report cannot be computed now: {{.Err}}</p>{{else}}
<p>Generated at <time id="generated">{{.Report.GeneratedAt}}</time>: <span id="data">{{range $i, $v := .Report.Data}}{{if $i}}, {{end}}{{$v}}{{end}}</span></p>{{end}}
<h2>The cache</h2>
<table id="stats">
<tr><td>hits</td><td>{{.Stats.Hits}}</td></tr>
<tr><td>misses</td><td>{{.Stats.Misses}}</td></tr>
<tr><td>loads</td><td>{{.Stats.Loads}}</td></tr>
<tr><td>stale values served</td><td>{{.Stats.Stale}}</td></tr>
</table>
<p>This page was rendered at <time id="rendered">{{.Rendered}}</time> and is cached whole for {{.PageTTL}}
(see its X-Cache and Age headers); POST /report/refresh drops it with the report.</p>
</body>
</html>
`))

// health is the answer of GET /healthz.
type health struct {
	// Status is "ok"; "degraded" while the cache backend does not answer
	// (the service still does: 200); "unavailable" once the cache is closed
	// (503).
	Status string `json:"status"`
	// Breaker is the state of the circuit breaker in front of a remote
	// cache backend (absent for in_memory).
	Breaker *cache.BreakerStatus `json:"breaker,omitempty"`
	Error   string               `json:"error,omitempty"`
}

// parseFailFor reads the for parameter of POST /report/fail: a positive
// duration up to MaxFailFor.
func parseFailFor(q map[string][]string) (time.Duration, error) {
	vs := q["for"]
	if len(vs) != 1 || vs[0] == "" {
		return 0, errors.New(`want one "for" parameter with a duration, such as POST /report/fail?for=5s`)
	}
	d, err := time.ParseDuration(vs[0])
	if err != nil {
		return 0, fmt.Errorf(`for: want a duration such as 5s or 1m, got %q`, vs[0])
	}
	if d <= 0 || d > MaxFailFor {
		return 0, fmt.Errorf("for: must be more than 0s and at most %s, got %s", MaxFailFor, d)
	}
	return d, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
