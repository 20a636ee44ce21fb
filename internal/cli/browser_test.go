package cli_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"go.uber.org/goleak"
)

// chromiumPath finds Debian's chromium (or Ubuntu's chromium-browser). The
// test skips without it, unless USHKA_REQUIRE_CHROMIUM=1 (as in CI) makes
// it fail.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("USHKA_REQUIRE_CHROMIUM") == "1" {
		t.Fatal("chromium is missing and USHKA_REQUIRE_CHROMIUM=1: apt-get install chromium")
	}
	t.Skip("chromium is missing: apt-get install chromium (required in CI: USHKA_REQUIRE_CHROMIUM=1)")
	return ""
}

// pageLoad is what a browser saw of one load of GET /.
type pageLoad struct {
	xCache, age               string
	title                     string
	generated, data, rendered string
}

// header reads a response header the browser reports, whatever its case.
func header(h network.Headers, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return fmt.Sprint(v)
		}
	}
	return ""
}

// TestDemoPageInABrowser loads the demo's page twice in headless Chromium:
// the first load computes it (X-Cache: MISS), the second is the very same
// page from the cache (X-Cache: HIT, with an Age), rendered the same.
func TestDemoPageInABrowser(t *testing.T) {
	execPath := chromiumPath(t)
	// Registered first, so it runs last: after the browser and the server
	// stopped, no goroutine of this test may remain.
	t.Cleanup(func() {
		http.DefaultClient.CloseIdleConnections()
		goleak.VerifyNone(t, goleak.IgnoreCurrent())
	})

	url, _, logs := startServe(t, "[cache]\nenabled = true\n", "100ms")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(execPath),
		chromedp.Headless,
		chromedp.NoSandbox, // root in a container
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		stop, cancelStop := context.WithTimeout(bctx, 10*time.Second)
		if err := chromedp.Cancel(stop); err != nil && ctx.Err() == nil {
			t.Logf("closing the browser: %v", err)
		}
		cancelStop()
		cancelBrowser()
		cancelAlloc()
		cancel()
	})

	// The main document's responses, in the order the browser got them.
	var (
		mu   sync.Mutex
		docs []*network.Response
	)
	if err := chromedp.Listen(bctx, func(ev any) {
		if e, ok := ev.(*network.EventResponseReceived); ok && e.Type == network.ResourceTypeDocument {
			mu.Lock()
			docs = append(docs, e.Response)
			mu.Unlock()
		}
	}); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	// The browser's own HTTP cache must not answer the second load: the
	// page must come from Ushka's.
	if _, err := chromedp.Call(bctx, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: true}); err != nil {
		t.Fatal(err)
	}

	load := func(i int, nav chromedp.Action[chromedp.Void]) pageLoad {
		t.Helper()
		if err := chromedp.Do(bctx, nav); err != nil {
			t.Fatalf("load %d: %v\nserver logs:\n%s", i, err, logs.String())
		}
		var p pageLoad
		var err error
		for _, q := range []struct {
			dst *string
			a   chromedp.Action[string]
		}{
			{&p.title, chromedp.Title()},
			{&p.generated, chromedp.Text(chromedp.ID("generated"))},
			{&p.data, chromedp.Text(chromedp.ID("data"))},
			{&p.rendered, chromedp.Text(chromedp.ID("rendered"))},
		} {
			if *q.dst, err = chromedp.Run(bctx, q.a); err != nil {
				t.Fatalf("load %d: reading the page: %v", i, err)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if len(docs) != i {
			t.Fatalf("load %d: the browser saw %d document responses, want %d", i, len(docs), i)
		}
		r := docs[i-1]
		if r.Status != http.StatusOK {
			t.Fatalf("load %d: status %d", i, r.Status)
		}
		p.xCache, p.age = header(r.Headers, "X-Cache"), header(r.Headers, "Age")
		t.Logf("load %d: X-Cache=%q Age=%q title=%q generated=%q data=%q rendered=%q",
			i, p.xCache, p.age, p.title, p.generated, p.data, p.rendered)
		return p
	}

	start := time.Now()
	first := load(1, chromedp.Navigate(url+"/"))
	second := load(2, chromedp.Reload())
	t.Logf("two loads in %v", time.Since(start))

	if first.xCache != "MISS" {
		t.Errorf("first load: X-Cache = %q, want MISS", first.xCache)
	}
	if second.xCache != "HIT" || second.age == "" {
		t.Errorf("second load: X-Cache = %q, Age = %q; want HIT with an Age", second.xCache, second.age)
	}
	for _, p := range []pageLoad{first, second} {
		if p.title != "Ushka report" {
			t.Errorf("title = %q, want %q", p.title, "Ushka report")
		}
		if p.generated == "" || p.data == "" || p.rendered == "" {
			t.Errorf("the page shows no report: %+v", p)
		}
	}
	if first.generated != second.generated || first.data != second.data || first.rendered != second.rendered {
		t.Errorf("the two loads render differently:\n first  %+v\n second %+v", first, second)
	}
}
