package cache

import "log/slog"

// The events a Cache logs, as the value of each line's "event" attribute:
// names that stay the same from release to release, so that an operator's
// alerts can match them while the messages are free to read better. The
// README lists each with its level and attributes.
const (
	// EventBreakerOpen (WARN): the circuit breaker opened; calls fail at
	// once until the backend answers again. Attributes: backend, reason,
	// retry.
	EventBreakerOpen = "cache.breaker.open"
	// EventBreakerClosed (INFO): the backend answers again and the queued
	// invalidations were replayed. Attributes: backend, down_for.
	EventBreakerClosed = "cache.breaker.closed"
	// EventInvalidationRefused (WARN): the backend refused a queued
	// invalidation (READONLY, NOPERM, ...); this process reads the key as
	// missing and retries it. Attributes: backend, err.
	EventInvalidationRefused = "cache.invalidation.refused"
	// EventInvalidationQueueFull (ERROR): more invalidations failed than
	// invalidation_queue_max; their keys are dropped and the whole cache is
	// cleared when the backend answers. Attributes: backend,
	// invalidation_queue_max, dropped.
	EventInvalidationQueueFull = "cache.invalidation.queue_full"
	// EventInvalidationsLost (ERROR): the cache closed with invalidations
	// the backend never took. Attributes: backend, lost.
	EventInvalidationsLost = "cache.invalidation.lost"
	// EventStaleServed (WARN): fail-safe served a value past its ttl
	// because a fresh one could not be had. Attributes: key, reason.
	EventStaleServed = "cache.failsafe.stale_served"
	// EventReadFailed (WARN; DEBUG while the breaker is open): GetOrSet
	// could not read the store and loads instead. Attributes: key, err.
	EventReadFailed = "cache.read_failed"
	// EventStoreFailed (WARN; DEBUG while the breaker is open): a loaded or
	// stale value could not be stored. Attributes: key, err.
	EventStoreFailed = "cache.store_failed"
	// EventEntryUndecodable (WARN): a stored entry does not decode into
	// the type asked for; GetOrSet loads and overwrites it. Attributes:
	// key, err.
	EventEntryUndecodable = "cache.entry_undecodable"
	// EventLoadPanicked (ERROR): a load panicked and either a stale value
	// was served or no caller was left to receive the panic. Attributes:
	// key, panic, stack.
	EventLoadPanicked = "cache.load_panicked"
	// EventRefreshFailed (WARN): an early refresh failed; the entry stays
	// until its ttl. Attributes: key, err.
	EventRefreshFailed = "cache.refresh_failed"
	// EventLockFailed (WARN): taking a key's cross-process lease failed;
	// the load runs without it. Attributes: key, err.
	EventLockFailed = "cache.lock_failed"
	// EventUnlockFailed (WARN; DEBUG while the breaker is open): releasing
	// a lease failed; it lapses by itself. Attributes: key, err.
	EventUnlockFailed = "cache.unlock_failed"
	// EventLeaseLost (DEBUG): another process deleted, replaced or took
	// over a key while it loaded; its value is not stored. Attributes: key.
	EventLeaseLost = "cache.lease_lost"
	// EventNotStoredWithoutLease (DEBUG): a value loaded without the key's
	// lease is not stored, so as not to undo another process's Delete.
	// Attributes: key.
	EventNotStoredWithoutLease = "cache.not_stored_without_lease"
	// EventMetricsOff (WARN): the MeterProvider refused an instrument.
	// Attributes: err.
	EventMetricsOff = "cache.metrics_off"
	// EventNameTaken (WARN): a cache was given a name (WithName) that a
	// live cache reports under on the same MeterProvider already; its
	// metrics go under name#2 (#3, ...) so that the two do not mix.
	// Attributes: name, reported_as.
	EventNameTaken = "cache.metrics.name_taken"
	// EventNearCacheOff (WARN): the Redis server refuses client tracking;
	// the near cache is off and every read goes to Redis. Attributes:
	// redis (the server, without its password), reason.
	EventNearCacheOff = "cache.near_cache.off"
)

// event is the attribute that names a log line's event.
func event(name string) slog.Attr { return slog.String("event", name) }
