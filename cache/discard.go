package cache

import (
	"context"
	"sync/atomic"
	"time"
)

// DiscardStore returns a [Store] that keeps nothing: every Get misses and
// every write succeeds without effect, until Close. It is the store of a
// disabled cache (enabled = false), as [log/slog.DiscardHandler] is a real
// handler that drops records, so that code written for caching runs unchanged
// with caching off.
func DiscardStore() Store { return &discardStore{} }

type discardStore struct{ closed atomic.Bool }

func (s *discardStore) err() error {
	if s.closed.Load() {
		return ErrClosed
	}
	return nil
}

func (s *discardStore) Get(context.Context, string) ([]byte, bool, error) {
	return nil, false, s.err()
}
func (s *discardStore) Set(context.Context, string, []byte, time.Duration) error { return s.err() }
func (s *discardStore) Delete(context.Context, string) error                     { return s.err() }
func (s *discardStore) Clear(context.Context) error                              { return s.err() }
func (s *discardStore) Close() error                                             { s.closed.Store(true); return nil }

var _ Store = (*discardStore)(nil)
