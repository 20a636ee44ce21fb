package httpcache_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/ushka-go/ushka/cache"
	"github.com/ushka-go/ushka/httpcache"
)

// A product page cached for five minutes, tagged so that a change of the
// product drops it.
func ExampleMiddleware() {
	ctx := context.Background()
	c, err := cache.Open(ctx, cache.Config{Enabled: true}) // in_memory
	if err != nil {
		panic(err)
	}
	defer c.Close()

	mux := http.NewServeMux()
	mux.Handle("GET /products/{id}", httpcache.Middleware(c, httpcache.Options{
		TTL:  5 * time.Minute,
		Tags: func(r *http.Request) []string { return []string{"product:" + r.PathValue("id")} },
	})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "product %s", r.PathValue("id"))
	})))

	get := func() string {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("GET", "/products/42", nil))
		return w.Header().Get("X-Cache")
	}
	fmt.Println(get(), get())
	_ = c.InvalidateTags(ctx, "product:42")
	fmt.Println(get())
	// Output:
	// MISS HIT
	// MISS
}

// Dropping one page by its URL: Key gives its cache key.
func ExampleKey() {
	ctx := context.Background()
	c, err := cache.Open(ctx, cache.Config{Enabled: true})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	h := httpcache.Middleware(c, httpcache.Options{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "page")
	}))
	get := func() string {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "http://example.com/about?lang=en", nil))
		return w.Header().Get("X-Cache")
	}
	fmt.Println(get(), get())
	_ = c.Delete(ctx, httpcache.Key(httptest.NewRequest("GET", "http://example.com/about?lang=en", nil)))
	fmt.Println(get())
	// Output:
	// MISS HIT
	// MISS
}
