package httpcache_test

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
	_ "github.com/ushka-go/ushka/cache/redis"
	"github.com/ushka-go/ushka/httpcache"
	"github.com/ushka-go/ushka/internal/redistest"
)

// TestStampedeAcrossCaches: two caches on one Redis, each with its own
// connection as two workers have, serve a stampede on one page: the
// handler runs once in all (the key's lease), and every request gets its
// page.
func TestStampedeAcrossCaches(t *testing.T) {
	srv := redistest.Start(t)
	p := &page{set: func(w http.ResponseWriter, _ *http.Request) { time.Sleep(100 * time.Millisecond) }}
	var handlers []http.Handler
	for range 2 {
		c, err := cache.Open(t.Context(), cache.Config{Enabled: true, Backend: "redis", RedisURL: cache.SecretURL("redis://" + srv.Addr), Timeout: 2 * time.Second}, cache.WithLogger(nil))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		handlers = append(handlers, httpcache.Middleware(c, httpcache.Options{})(p))
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if b := body(t, do(t, handlers[i%2], httptest.NewRequest("GET", "/p", nil))); b != "run 1" {
				t.Errorf("request %d got %q, want run 1", i, b)
			}
		})
	}
	wg.Wait()
	if n := p.runs.Load(); n != 1 {
		t.Fatalf("the handler ran %d times across two workers, want once", n)
	}
}
