package cache

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Traces (WithTracerProvider): a span for each GetOrSet that goes past a
// fresh hit (cache.GetOrSet), for each load it runs (cache.load), and for
// each call to a remote store ("<backend> <operation>", a client span). A
// hit records nothing, so that tracing costs a hot key nothing; keys are
// left out unless WithTracedKeys asks for them, since they can carry
// personal data.

// tracing is what a Cache traces with; nil without a TracerProvider.
//
// Spans start with no attributes: a span that the sampler drops would
// only allocate them. Those that record get theirs with SetAttributes.
type tracing struct {
	tracer trace.Tracer
	keys   bool                                 // WithTracedKeys: put the key on spans
	attrs  []attribute.KeyValue                 // the cache's own: name, backend, db.system.name
	calls  map[string]callSpan                  // per operation: the span's name and attributes
	client []trace.SpanStartOption              // a call's: a client span
	result [OutcomeStale + 1]attribute.KeyValue // cache.result, by outcome
}

// callSpan is the name and the attributes of the span of a call to the
// remote store.
type callSpan struct {
	name  string
	attrs []attribute.KeyValue
}

// WithTracerProvider makes the cache trace through tp: a span per
// [GetOrSet] that does not find a fresh value (with cache.result: miss,
// stale or hit), per load it runs (whose context carries that span, so that
// what the load traces nests under it), and per call to a remote store
// (named "redis get", "redis set", ...). Spans carry the cache's name and
// backend, and the key only with [WithTracedKeys]. A nil tp turns tracing
// off, the default.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc{"WithTracerProvider", func(c *Cache) { c.tracerProvider = tp }}
}

// WithTracedKeys puts the key on the cache's spans, as the cache.key
// attribute. It is off by default: keys can carry personal data (an e-mail
// address, a user's id) that a tracing backend should not receive.
func WithTracedKeys() Option {
	return optionFunc{"WithTracedKeys", func(c *Cache) { c.tracedKeys = true }}
}

// startTracing makes c's spans' names and attributes once, if c traces.
func (c *Cache) startTracing(attrs []attribute.KeyValue) {
	if c.tracerProvider == nil {
		return
	}
	tr := &tracing{
		tracer: c.tracerProvider.Tracer(meterName),
		keys:   c.tracedKeys,
		attrs:  attrs,
		calls:  make(map[string]callSpan, len(operations)),
		client: []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)},
		result: [...]attribute.KeyValue{
			OutcomeHit:    attribute.String("cache.result", "hit"),
			OutcomeLoaded: attribute.String("cache.result", "miss"),
			OutcomeStale:  attribute.String("cache.result", "stale"),
		},
	}
	for _, op := range operations {
		tr.calls[op] = callSpan{c.backend + " " + op, append(slices.Clip(attrs), attribute.String("db.operation.name", op))}
	}
	c.tracing = tr
}

// annotate gives a span that records the attributes attrs and, if the
// cache traces keys, the key.
func (tr *tracing) annotate(span trace.Span, attrs []attribute.KeyValue, key string) {
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(attrs...)
	if tr.keys && key != "" {
		span.SetAttributes(attribute.String("cache.key", key))
	}
}

// startGetOrSet starts the span of a GetOrSet of key, once its read has
// missed.
func (tr *tracing) startGetOrSet(ctx context.Context, key string) (context.Context, trace.Span) {
	ctx, span := tr.tracer.Start(ctx, "cache.GetOrSet")
	tr.annotate(span, tr.attrs, key)
	return ctx, span
}

// endGetOrSet ends the span of a GetOrSet of key with how it had its
// value, or its error. A GetOrSet that returns neither is raising a load's
// panic.
func (tr *tracing) endGetOrSet(span trace.Span, key string, o Outcome, err error) {
	switch {
	case err != nil:
		tr.fail(span, key, err)
	case o == OutcomeNone:
		span.SetStatus(codes.Error, "load panicked")
	default:
		span.SetAttributes(tr.result[o])
	}
	span.End()
}

// startLoad starts the span of a load of key, refresh telling whether it
// is an early refresh.
func (tr *tracing) startLoad(ctx context.Context, key string, refresh bool) (context.Context, trace.Span) {
	ctx, span := tr.tracer.Start(ctx, "cache.load")
	tr.annotate(span, tr.attrs, key)
	if refresh {
		span.SetAttributes(attribute.Bool("cache.refresh", true))
	}
	return ctx, span
}

// startCall starts the span of a call to the remote store; key is "" for a
// call on no one key.
func (tr *tracing) startCall(ctx context.Context, op, key string) trace.Span {
	cs, ok := tr.calls[op]
	if !ok {
		cs = callSpan{op, tr.attrs}
	}
	_, span := tr.tracer.Start(ctx, cs.name, tr.client...)
	tr.annotate(span, cs.attrs, key)
	return span
}

// end ends the span of a call or load of key, marking it failed by err
// when err is not nil.
func (tr *tracing) end(span trace.Span, key string, err error) {
	if err != nil {
		tr.fail(span, key, err)
	}
	span.End()
}

// fail records err on span and marks it failed. Unless keys are traced,
// the key is taken out of the message: the cache's errors quote it.
func (tr *tracing) fail(span trace.Span, key string, err error) {
	msg := err.Error()
	if !tr.keys && key != "" {
		msg = strings.ReplaceAll(msg, strconv.Quote(key), `"…"`)
	}
	span.RecordError(errors.New(msg), trace.WithAttributes(attribute.String("error.type", errorTypes[errorType(err)])))
	span.SetStatus(codes.Error, msg)
}
