package redis

// WatchReady returns a channel closed once s's subscription for Watch has
// been confirmed by the server (call Watch first).
func WatchReady(s *Store) <-chan struct{} { return s.watchReady() }
