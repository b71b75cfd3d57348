// Package otel exports distrlock's events to OpenTelemetry: an [Observer] (pass it to
// [distrlock.WithObserver]) records metrics with a [metric.Meter] and spans with a [trace.Tracer].
//
// Instruments, with the attribute distrlock.outcome where it has one (see [distrlock.Event.Outcome]) and
// distrlock.lock only with [WithLockAttribute]:
//
//	distrlock.acquire.duration   histogram, s  one acquire statement
//	distrlock.wait.duration      histogram, s  a wait for a held lock, from its first attempt
//	distrlock.lock.held          up-down counter  locks held
//	distrlock.extend.failures    counter  failed extends (a heartbeat's, or Extend)
//	distrlock.lease.losses       counter  leases lost: the work was cancelled
//
// The held, extend-failure and loss series exist at 0 from the start (with a lock attribute, from its
// value's first acquire), so that an alert on their increase fires on the first loss.
//
// Spans (internal: the driver's spans inside them are the clients): distrlock.acquire for each acquire
// statement, distrlock.wait for each wait (from its first refused attempt) and distrlock.release for each
// release, children of the span in the caller's context, with the attributes distrlock.key,
// distrlock.fence, distrlock.outcome and distrlock.attempts (waits). The Observer is a
// [distrlock.SpanObserver]: the spans are open while their statements run, so the spans a database driver
// records for them are their children, and the acquire attempts of a wait are children of its span.
package otel

import (
	"context"
	"sync"
	"time"

	"github.com/distrlock/distrlock"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the meter and tracer.
const ScopeName = "github.com/distrlock/distrlock/otel"

// Option configures [New].
type Option func(*options)

type options struct {
	meters    metric.MeterProvider
	tracers   trace.TracerProvider
	lockLabel func(key string) string
}

// WithMeterProvider sets where the metrics go; default [otel.GetMeterProvider].
func WithMeterProvider(p metric.MeterProvider) Option { return func(o *options) { o.meters = p } }

// WithTracerProvider sets where the spans go; default [otel.GetTracerProvider].
func WithTracerProvider(p trace.TracerProvider) Option { return func(o *options) { o.tracers = p } }

// WithLockAttribute adds the attribute distrlock.lock, set to label(key), to every measurement. label must
// map the keys to a small set of values (a key's prefix, a job's kind). Default: none, as raw keys would
// make one series per key.
func WithLockAttribute(label func(key string) string) Option {
	return func(o *options) { o.lockLabel = label }
}

// Observer is a [distrlock.Observer] that records metrics and spans. It is safe for concurrent use.
type Observer struct {
	lockLabel      func(string) string
	tracer         trace.Tracer
	acquire, wait  metric.Float64Histogram
	held           metric.Int64UpDownCounter
	extendFailures metric.Int64Counter
	losses         metric.Int64Counter

	mu      sync.Mutex
	holding map[string]struct{} // keys held
	labeled map[string]struct{} // lock attribute values whose zero series exist
}

// New returns an Observer, or the error of creating its instruments.
func New(opts ...Option) (*Observer, error) {
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	if o.meters == nil {
		o.meters = otel.GetMeterProvider()
	}
	if o.tracers == nil {
		o.tracers = otel.GetTracerProvider()
	}
	meter := o.meters.Meter(ScopeName)
	obs := &Observer{lockLabel: o.lockLabel, tracer: o.tracers.Tracer(ScopeName),
		holding: make(map[string]struct{}), labeled: make(map[string]struct{})}
	var err error
	if obs.acquire, err = meter.Float64Histogram("distrlock.acquire.duration", metric.WithUnit("s"),
		metric.WithDescription("Latency of acquire statements."), metric.WithExplicitBucketBoundaries(durationBuckets()...)); err != nil {
		return nil, err
	}
	if obs.wait, err = meter.Float64Histogram("distrlock.wait.duration", metric.WithUnit("s"),
		metric.WithDescription("Time from a wait's first attempt to its end."), metric.WithExplicitBucketBoundaries(durationBuckets()...)); err != nil {
		return nil, err
	}
	if obs.held, err = meter.Int64UpDownCounter("distrlock.lock.held", metric.WithUnit("{lock}"),
		metric.WithDescription("Locks held.")); err != nil {
		return nil, err
	}
	if obs.extendFailures, err = meter.Int64Counter("distrlock.extend.failures", metric.WithUnit("{extend}"),
		metric.WithDescription("Extends of a lease that failed.")); err != nil {
		return nil, err
	}
	if obs.losses, err = meter.Int64Counter("distrlock.lease.losses", metric.WithUnit("{lease}"),
		metric.WithDescription("Leases that may have ended while held: the work was cancelled.")); err != nil {
		return nil, err
	}
	if o.lockLabel == nil {
		obs.zeroSeries(context.Background(), metric.WithAttributes())
	}
	return obs, nil
}

// zeroSeries records 0 on the instruments alerts watch for an increase, so that their series exist before
// the first loss.
func (o *Observer) zeroSeries(ctx context.Context, attrs metric.MeasurementOption) {
	o.held.Add(ctx, 0, attrs)
	o.extendFailures.Add(ctx, 0, attrs)
	o.losses.Add(ctx, 0, attrs)
}

// zeroLabel makes the zero series of key's lock attribute the first time it is seen.
func (o *Observer) zeroLabel(ctx context.Context, key string) {
	label := o.lockLabel(key)
	o.mu.Lock()
	_, seen := o.labeled[label]
	o.labeled[label] = struct{}{}
	o.mu.Unlock()
	if !seen {
		o.zeroSeries(ctx, metric.WithAttributes(attribute.String("distrlock.lock", label)))
	}
}

func (o *Observer) attrs(key string, withOutcome bool, outcome string) metric.MeasurementOption {
	kv := make([]attribute.KeyValue, 0, 2)
	if withOutcome {
		kv = append(kv, attribute.String("distrlock.outcome", outcome))
	}
	if o.lockLabel != nil {
		kv = append(kv, attribute.String("distrlock.lock", o.lockLabel(key)))
	}
	return metric.WithAttributes(kv...)
}

// spanKey is the context key of the span an Observer's StartSpan opened: each Observer has its own, so that
// joined observers (distrlock.JoinObservers) end their own spans.
type spanKey struct{ o *Observer }

// openSpan is a span StartSpan opened, until ObserveLock ends it.
type openSpan struct {
	kind distrlock.EventKind // the kind of the event that ends it
	span trace.Span
}

// StartSpan opens the span of the acquire statement, wait or release that e begins, and returns ctx with it.
func (o *Observer) StartSpan(ctx context.Context, e distrlock.Event) context.Context {
	name, ends := "", e.Kind
	switch e.Kind {
	case distrlock.EventAcquire:
		name = "distrlock.acquire"
	case distrlock.EventWaitStarted:
		name, ends = "distrlock.wait", distrlock.EventWaitEnded
	case distrlock.EventRelease:
		name = "distrlock.release"
	default:
		return ctx
	}
	ctx, span := o.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attribute.String("distrlock.key", e.Key)))
	return context.WithValue(ctx, spanKey{o}, &openSpan{kind: ends, span: span})
}

// ObserveLock records e.
func (o *Observer) ObserveLock(ctx context.Context, e distrlock.Event) {
	switch e.Kind {
	case distrlock.EventAcquire:
		if o.lockLabel != nil {
			o.zeroLabel(ctx, e.Key)
		}
		o.acquire.Record(ctx, e.Duration.Seconds(), o.attrs(e.Key, true, e.Outcome()))
		if e.Err == nil {
			o.setHeld(ctx, e.Key, true)
		}
		o.span(ctx, "distrlock.acquire", e)
	case distrlock.EventWaitEnded:
		o.wait.Record(ctx, e.Duration.Seconds(), o.attrs(e.Key, true, e.Outcome()))
		o.span(ctx, "distrlock.wait", e)
	case distrlock.EventExtend:
		if e.Err != nil {
			o.extendFailures.Add(ctx, 1, o.attrs(e.Key, false, ""))
		}
	case distrlock.EventLeaseLost:
		o.losses.Add(ctx, 1, o.attrs(e.Key, false, ""))
		o.setHeld(ctx, e.Key, false)
	case distrlock.EventRelease:
		// A release the database failed may have left the lock held.
		if out := e.Outcome(); out == distrlock.OutcomeOK || out == distrlock.OutcomeNotHeld {
			o.setHeld(ctx, e.Key, false)
		}
		o.span(ctx, "distrlock.release", e)
	}
}

// setHeld records that key is held or not, and moves the counter when that changes: a release after a
// loss, or after an expiry, is not counted twice.
func (o *Observer) setHeld(ctx context.Context, key string, held bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, was := o.holding[key]
	switch {
	case held && !was:
		o.holding[key] = struct{}{}
		o.held.Add(ctx, 1, o.attrs(key, false, ""))
	case !held && was:
		delete(o.holding, key)
		o.held.Add(ctx, -1, o.attrs(key, false, ""))
	}
}

// span ends the span StartSpan opened for e's operation, found in ctx; without one (e came from another
// caller than the manager) it records a finished span that ended now and lasted e.Duration.
func (o *Observer) span(ctx context.Context, name string, e distrlock.Event) {
	var span trace.Span
	end := time.Now()
	if open, ok := ctx.Value(spanKey{o}).(*openSpan); ok && open.kind == e.Kind {
		span = open.span
	} else {
		_, span = o.tracer.Start(ctx, name, trace.WithTimestamp(end.Add(-e.Duration)), trace.WithSpanKind(trace.SpanKindInternal),
			trace.WithAttributes(attribute.String("distrlock.key", e.Key)))
	}
	span.SetAttributes(attribute.String("distrlock.outcome", e.Outcome()))
	if e.Fence != 0 {
		span.SetAttributes(attribute.Int64("distrlock.fence", e.Fence))
	}
	if e.Attempts != 0 {
		span.SetAttributes(attribute.Int("distrlock.attempts", e.Attempts))
	}
	if o := e.Outcome(); o != distrlock.OutcomeOK && o != distrlock.OutcomeContended && o != distrlock.OutcomeNotHeld {
		span.RecordError(e.Err)
		span.SetStatus(codes.Error, o)
	}
	span.End(trace.WithTimestamp(end))
}

var _ distrlock.SpanObserver = (*Observer)(nil)

// durationBuckets are the duration histograms' bucket boundaries in seconds, from a 1 ms acquire to a 1 min
// wait: the SDK's default boundaries (0, 5, 10, … 10000) suit milliseconds.
func durationBuckets() []float64 {
	return []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
}
