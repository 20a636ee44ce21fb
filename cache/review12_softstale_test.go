package cache_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"

	"github.com/ushka-go/ushka/cache"
)

// TestReview12SoftTimeoutUndecodableStaleReturnsZeroNil: a stale entry that
// does not decode as the T asked for (the type of the key changed in a
// deploy, or two call sites use different types), fail-safe on, and a load
// slower than load_timeout: GetOrSet returns the zero T with a nil error,
// and its span says "load panicked" though nothing panicked.
func TestReview12SoftTimeoutUndecodableStaleReturnsZeroNil(t *testing.T) {
	rec, withTP := traced(t)
	c, err := cache.Open(t.Context(), cache.Config{Enabled: true}, withTP, cache.WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := t.Context()
	opts := []cache.GetOrSetOption{cache.StaleFor(time.Hour), cache.LoadTimeout(30 * time.Millisecond)}
	if _, err := cache.GetOrSet(ctx, c, "k", 20*time.Millisecond, func(context.Context) (string, error) { return "not a number", nil }, opts...); err != nil {
		t.Fatal(err)
	}
	time.Sleep(40 * time.Millisecond) // stale now
	v, err := cache.GetOrSet(ctx, c, "k", time.Minute, func(context.Context) (int, error) {
		time.Sleep(300 * time.Millisecond)
		return 7, nil
	}, opts...)
	t.Logf("GetOrSet[int] = %d, %v", v, err)
	for _, s := range spansNamed(rec, "cache.GetOrSet") {
		t.Logf("span %s status %v %q", s.Name(), s.Status().Code, s.Status().Description)
		if s.Status().Code == codes.Error && s.Status().Description == "load panicked" {
			t.Errorf("span of a GetOrSet whose load did not panic says %q", s.Status().Description)
		}
	}
	if err == nil && v != 7 {
		t.Errorf("GetOrSet[int] returned %d and a nil error: neither the loaded value (7) nor an error", v)
	}
}
