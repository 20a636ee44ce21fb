package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Metrics (WithMeterProvider): the cache's own OpenTelemetry instruments.
// The counters a Cache keeps anyway ([Stats]) are read by asynchronous
// instruments when the reader collects, so a hit costs nothing more with
// metrics on; only a load and a call to a remote store record a duration.

// meterName is the instrumentation scope of the cache's instruments.
const meterName = "github.com/ushka-go/ushka/cache"

// metrics is what a Cache records into synchronously; nil without a
// MeterProvider.
type metrics struct {
	loadDuration metric.Float64Histogram // seconds per load
	callDuration metric.Float64Histogram // seconds per call to a remote store
	attrs        attribute.Set           // the cache's own: its backend
	reg          metric.Registration

	// callOpts are the record options of each operation and error.type,
	// made once: a call to Redis records its duration without building an
	// attribute set (which cost a fifth of a Get on loopback).
	// Each is a slice of one, passed on as it is: a variadic argument
	// made at the call would be allocated on every call.
	callOpts map[string]*[len(errorTypes)][]metric.RecordOption
	loadOpts [len(errorTypes)][]metric.RecordOption
}

// operations are the store calls the breaker times (db.operation.name).
var operations = []string{"get", "set", "delete", "clear", "ping", "lock", "renew", "fill", "unlock",
	"get_many", "set_many", "delete_many", "add", "increment"}

// errorTypes are the values of error.type; "" for a call that succeeded.
var errorTypes = [...]string{"", "unavailable", "refused", "timeout", "canceled", "closed", "panic", "_OTHER"}

// WithMeterProvider makes the cache report its metrics through mp: its
// counters (hits, misses, sets, deletes, loads, errors, stale values
// served, early refreshes, near-cache hits, and the circuit breaker's
// openings, refused calls and queued, replayed and dropped invalidations)
// and gauges (the near cache's entries and bytes, the breaker's state, the
// invalidations waiting), read when mp's reader collects, and the duration
// of loads and of calls to a remote store as histograms. Their names are
// listed in the README. A nil mp turns metrics off, the default.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc{"WithMeterProvider", func(c *Cache) { c.meterProvider = mp }}
}

// WithName names the cache in its metrics and spans (the cache.name
// attribute), so that several caches reporting to one MeterProvider have
// series of their own. Without it, the caches of a process with metrics or
// traces are named cache1, cache2, ... in the order they were made.
func WithName(name string) Option {
	return optionFunc{fmt.Sprintf("WithName(%q)", name), func(c *Cache) { c.name = name }}
}

// unnamedCaches counts the caches made with metrics or traces and without
// a name.
var unnamedCaches atomic.Int64

// histogramBounds are the buckets of the duration histograms, in seconds:
// from 50µs (a call to Redis on loopback) to 10s (a slow load).
var histogramBounds = []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// attributes are what every metric and span of c carries: its name
// (WithName's, or cache1, cache2, ... in the order caches were made), its
// backend, and db.system.name for Redis.
func (c *Cache) attributes() []attribute.KeyValue {
	name := c.name
	if name == "" {
		name = fmt.Sprintf("cache%d", unnamedCaches.Add(1))
	} else if c.meterProvider != nil {
		name = c.claimName(name)
	}
	kv := []attribute.KeyValue{attribute.String("cache.name", name), attribute.String("cache.backend", c.backend)}
	if c.backend == "redis" {
		kv = append(kv, attribute.String("db.system.name", "redis"))
	}
	return kv
}

// names are the cache names in use on each MeterProvider, so that two
// live caches never report under one name: their gauges would collide and
// one cache's open breaker could read as closed.
var names = struct {
	sync.Mutex
	taken map[nameKey]bool
}{taken: make(map[nameKey]bool)}

type nameKey struct {
	mp   metric.MeterProvider
	name string
}

// claimName returns name, or name#2, name#3, ... when a live cache reports
// under it on c's MeterProvider already, saying so; Close gives it back.
// A MeterProvider of a type that cannot be compared is not tracked.
func (c *Cache) claimName(name string) string {
	if !reflect.TypeOf(c.meterProvider).Comparable() {
		return name
	}
	names.Lock()
	defer names.Unlock()
	got := name
	for i := 2; names.taken[nameKey{c.meterProvider, got}]; i++ {
		got = fmt.Sprintf("%s#%d", name, i)
	}
	if got != name {
		c.log.Warn("cache name already in use on this MeterProvider: its metrics go under another", event(EventNameTaken),
			"name", name, "reported_as", got)
	}
	names.taken[nameKey{c.meterProvider, got}] = true
	c.claimed = got
	return got
}

// releaseName gives back the name c claimed.
func (c *Cache) releaseName() {
	if c.claimed == "" {
		return
	}
	names.Lock()
	delete(names.taken, nameKey{c.meterProvider, c.claimed})
	names.Unlock()
}

// startMetrics registers c's instruments with its MeterProvider, if any,
// with attributes kv.
func (c *Cache) startMetrics(kv []attribute.KeyValue) error {
	if c.meterProvider == nil {
		return nil
	}
	m := c.meterProvider.Meter(meterName)
	mt := &metrics{attrs: attribute.NewSet(kv...)}
	var errs []error
	counter := func(name, unit, desc string) metric.Int64ObservableCounter {
		i, err := m.Int64ObservableCounter(name, metric.WithDescription(desc), metric.WithUnit(unit))
		errs = append(errs, err)
		return i
	}
	gauge := func(name, unit, desc string) metric.Int64ObservableGauge {
		i, err := m.Int64ObservableGauge(name, metric.WithDescription(desc), metric.WithUnit(unit))
		errs = append(errs, err)
		return i
	}
	hits := counter("cache.hits", "{read}", "Reads that found a value, near-cache hits included.")
	misses := counter("cache.misses", "{read}", "Reads that found nothing.")
	sets := counter("cache.sets", "{write}", "Values written.")
	deletes := counter("cache.deletes", "{write}", "Deletes that succeeded.")
	loads := counter("cache.loads", "{load}", "Calls of a GetOrSet load function.")
	errored := counter("cache.errors", "{error}", "Failed operations: store errors, values that do not encode or decode, failed loads.")
	stale := counter("cache.stale", "{value}", "Values fail-safe served past their ttl.")
	refreshes := counter("cache.refreshes", "{load}", "Early refreshes that ran a load.")
	nearHits := counter("cache.near.hits", "{read}", "Hits served from the near cache, without a round trip.")
	opened := counter("cache.breaker.opened", "{opening}", "Times the circuit breaker opened.")
	refused := counter("cache.breaker.refused", "{call}", "Calls the circuit breaker refused without asking the store.")
	queued := counter("cache.invalidations.queued", "{invalidation}", "Invalidations queued because the store did not answer.")
	replayed := counter("cache.invalidations.replayed", "{invalidation}", "Queued invalidations applied once the store answered.")
	dropped := counter("cache.invalidations.dropped", "{invalidation}", "Queued invalidations dropped because the queue was full (a Clear replaces them).")
	nearEntries := gauge("cache.near.entries", "{entry}", "Entries the near cache holds.")
	nearBytes := gauge("cache.near.bytes", "By", "Memory the near cache accounts for its entries.")
	state := gauge("cache.breaker.state", "{state}", "The circuit breaker's state: 0 closed, 1 open, 2 half-open.")
	pending := gauge("cache.invalidations.pending", "{invalidation}", "Invalidations waiting to be replayed.")
	var err error
	mt.loadDuration, err = m.Float64Histogram("cache.load.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of GetOrSet loads."), metric.WithExplicitBucketBoundaries(histogramBounds...))
	errs = append(errs, err)
	mt.callDuration, err = m.Float64Histogram("cache.operation.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of calls to a remote store, by operation."), metric.WithExplicitBucketBoundaries(histogramBounds...))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	withType := func(kv []attribute.KeyValue, i int) []metric.RecordOption {
		if errorTypes[i] != "" {
			kv = append(kv, attribute.String("error.type", errorTypes[i]))
		}
		return []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(kv...))}
	}
	mt.callOpts = make(map[string]*[len(errorTypes)][]metric.RecordOption, len(operations))
	for _, op := range operations {
		var opts [len(errorTypes)][]metric.RecordOption
		for i := range errorTypes {
			opts[i] = withType(append(slices.Clone(kv), attribute.String("db.operation.name", op)), i)
		}
		mt.callOpts[op] = &opts
	}
	for i := range errorTypes {
		mt.loadOpts[i] = withType(slices.Clone(kv), i)
	}
	opt := metric.WithAttributeSet(mt.attrs)
	mt.reg, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := c.Stats()
		for _, v := range []struct {
			i metric.Int64Observable
			n uint64
		}{
			{hits, s.Hits}, {misses, s.Misses}, {sets, s.Sets}, {deletes, s.Deletes}, {loads, s.Loads},
			{errored, s.Errors}, {stale, s.Stale}, {refreshes, s.Refreshes}, {nearHits, s.NearHits},
		} {
			o.ObserveInt64(v.i, int64(v.n), opt)
		}
		o.ObserveInt64(nearEntries, int64(s.NearEntries), opt)
		o.ObserveInt64(nearBytes, s.NearBytes, opt)
		if c.brk != nil {
			for _, v := range []struct {
				i metric.Int64Observable
				n uint64
			}{{opened, s.BreakerOpened}, {refused, s.Refused}, {queued, s.Queued}, {replayed, s.Replayed}, {dropped, s.Dropped}} {
				o.ObserveInt64(v.i, int64(v.n), opt)
			}
			o.ObserveInt64(state, int64(c.brk.state.Load()), opt)
			o.ObserveInt64(pending, int64(s.QueuedNow), opt)
		}
		return nil
	}, hits, misses, sets, deletes, loads, errored, stale, refreshes, nearHits, nearEntries, nearBytes,
		opened, refused, queued, replayed, dropped, state, pending)
	if err != nil {
		return err
	}
	c.metrics = mt
	return nil
}

// stopMetrics unregisters c's callback, so that a closed cache's counters
// and gauges are no longer reported (its histograms keep their last
// totals: the SDK keeps every cumulative series), and gives back its name.
func (c *Cache) stopMetrics() {
	if c.metrics != nil && c.metrics.reg != nil {
		_ = c.metrics.reg.Unregister()
	}
	c.releaseName()
}

// recordLoad records the duration of a load since start, with its outcome.
func (c *Cache) recordLoad(ctx context.Context, start time.Time, err error) {
	if c.metrics == nil {
		return
	}
	c.metrics.loadDuration.Record(ctx, time.Since(start).Seconds(), c.metrics.loadOpts[errorType(err)]...)
}

// recordCall records the duration d of a call to the remote store.
func (c *Cache) recordCall(ctx context.Context, op string, d time.Duration, err error) {
	if c.metrics == nil {
		return
	}
	if opts := c.metrics.callOpts[op]; opts != nil {
		c.metrics.callDuration.Record(ctx, d.Seconds(), opts[errorType(err)]...)
	}
}

// errorType is the index in errorTypes of err's low-cardinality type. A
// store that cannot be reached (a refused or reset connection, a closed
// socket) is unavailable, as is one the circuit breaker refuses.
func errorType(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrUnavailable):
		return 1
	case errors.Is(err, ErrRefused):
		return 2
	case errors.Is(err, context.DeadlineExceeded):
		return 3
	case errors.Is(err, context.Canceled):
		return 4
	case errors.Is(err, ErrClosed):
		return 5
	}
	return otherErrorType(err)
}

// otherErrorType is errorType past the sentinels, apart so that the
// targets of errors.As, which escape, cost a call that succeeded nothing.
func otherErrorType(err error) int {
	var lp *LoadPanicError
	if errors.As(err, &lp) {
		return 6
	}
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return 3
	case ne != nil, errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		// net.Error covers what a dead store answers with: a refused or
		// reset connection and a broken pipe (syscall.Errno), a closed
		// socket (net.ErrClosed), an expired deadline (a Timeout, above).
		return 1
	}
	return 7
}
