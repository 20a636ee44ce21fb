// Package cache is Ushka's caching framework: one cache service, configured
// by the [cache] section of ushka.toml, over a pluggable back end.
//
// Application code receives a *[Cache] and calls [Cache.Get], [Cache.Set],
// [Cache.Delete], [Cache.Clear] and [Cache.Close], or the one-liner
// [GetOrSet], which does cache-aside (check, compute, store with a TTL)
// safely under concurrency:
//
//	report, err := cache.GetOrSet(ctx, c, "complex_report", time.Minute,
//		func(ctx context.Context) (Report, error) { return generate(ctx) })
//
// Which back end stores the bytes is configuration, not code: [Open] picks
// the [Store] registered under the configured backend name, "in_memory" (built
// in) or "redis" (package cache/redis), as database/sql picks a driver. A
// disabled cache (the default) is a working Cache whose reads miss and whose
// writes do nothing.
//
// # Semantics, on every backend
//
//   - A missing or expired key is found == false with a nil error; an expired
//     value is never returned.
//   - ttl > 0 expires after ttl, with millisecond precision; ttl == 0 uses the
//     default TTL, which by default is "never expires"; ttl < 0 or ttl >
//     [MaxTTL] is [ErrInvalidTTL] and nothing is written.
//   - Keys are 1 to [MaxKeyLen] bytes of anything; others are [ErrInvalidKey].
//   - Values are encoded by a codec (JSON by default); []byte and string are
//     stored as they are. What is read back equals what was written, and
//     changing a value read back never changes the cache.
//   - After Close, every call returns [ErrClosed].
//   - A failed Delete or Clear is always returned, never hidden: a lost
//     invalidation would serve stale data later.
//   - Invalidation is final: once Delete, Set or Clear has returned, no later
//     call returns, and no process stores, a value whose load began before.
//
// # Many processes
//
// On a [Store] that several processes share and that implements [Locker]
// (Redis), [GetOrSet] runs a key's load once across all of them, under a
// lease kept in the key's own entry. Per call or from the configuration it
// can also refresh hot keys before they expire ([RefreshAhead],
// refresh_ahead) and serve a value past its ttl when a fresh one cannot be
// had ([StaleFor], stale_ttl), with load timeouts ([LoadTimeout],
// [LoadHardTimeout]); [ReportOutcome] tells a hit, a load or a stale value
// apart. Entries that need this metadata carry a versioned header before
// their value ([Entry]); values written by [Cache.Set] are stored as they
// are.
//
// # Outages
//
// A Store that is not in the process sits behind a circuit breaker
// ([BreakerConfig], the breaker_* keys of [Config]): after a few calls in a
// row fail for want of an answer, or as soon as the store has answered
// nothing for a while as calls waited on it, calls fail at once with
// [ErrUnavailable] until a probe finds it answering ([Cache.Breaker]). A
// Delete, Clear or Set that fails then is still returned as an error, and
// also queued and replayed on the store before the breaker lets calls
// through again; until then this process reads the key as missing.
// [GetOrSet] with fail-safe on answers from this process's copies
// meanwhile.
package cache
