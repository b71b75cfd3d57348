package otel_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/distrlock/distrlock"
	"github.com/distrlock/distrlock/internal/observetest"
	distrlockotel "github.com/distrlock/distrlock/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// fixture is an Observer on an in-memory metric reader and span recorder.
type fixture struct {
	obs    *distrlockotel.Observer
	reader *sdkmetric.ManualReader
	spans  *tracetest.SpanRecorder
	tracer *sdktrace.TracerProvider
}

func newFixture(t *testing.T, opts ...distrlockotel.Option) *fixture {
	t.Helper()
	f := &fixture{reader: sdkmetric.NewManualReader(), spans: tracetest.NewSpanRecorder()}
	f.tracer = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(f.spans))
	obs, err := distrlockotel.New(append([]distrlockotel.Option{
		distrlockotel.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(f.reader))),
		distrlockotel.WithTracerProvider(f.tracer),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	f.obs = obs
	return f
}

// metrics returns the metrics collected so far, by name.
func (f *fixture) metrics(t *testing.T) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := f.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	ms := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != distrlockotel.ScopeName {
			t.Errorf("scope %q, want %q", sm.Scope.Name, distrlockotel.ScopeName)
		}
		for _, m := range sm.Metrics {
			ms[m.Name] = m
		}
	}
	return ms
}

func sum(dps ...metricdata.DataPoint[int64]) metricdata.Sum[int64] {
	return metricdata.Sum[int64]{DataPoints: dps, Temporality: metricdata.CumulativeTemporality, IsMonotonic: true}
}

// TestObserverEvents: scripted events with fixed durations give exactly these data points, with the lock
// attribute from WithLockAttribute and no raw key; the acquire and wait spans have the caller's span as
// parent, the event's times, key, fence and outcome.
func TestObserverEvents(t *testing.T) {
	f := newFixture(t, distrlockotel.WithLockAttribute(func(key string) string { kind, _, _ := strings.Cut(key, ":"); return kind }))
	ctx, parent := f.tracer.Tracer("test").Start(context.Background(), "caller")
	held := fmt.Errorf("distrlock: acquire %q: %w", "job:1", distrlock.ErrLockAlreadyAcquired)
	for _, e := range []distrlock.Event{
		{Kind: distrlock.EventAcquire, Key: "job:1", Fence: 1, Duration: 250 * time.Millisecond},
		{Kind: distrlock.EventAcquire, Key: "job:1", Err: held, Duration: 500 * time.Millisecond},
		{Kind: distrlock.EventWaitStarted, Key: "job:1", Attempts: 1},
		{Kind: distrlock.EventRelease, Key: "job:1", Fence: 1},
		{Kind: distrlock.EventAcquire, Key: "job:1", Fence: 2, Duration: 125 * time.Millisecond},
		{Kind: distrlock.EventWaitEnded, Key: "job:1", Fence: 2, Attempts: 2, Duration: 2 * time.Second},
		{Kind: distrlock.EventExtend, Key: "job:1", Fence: 2, Err: distrlock.ErrLockAlreadyReleased},
		{Kind: distrlock.EventLeaseLost, Key: "job:1", Fence: 2, Err: distrlock.ErrLockLost},
		{Kind: distrlock.EventRelease, Key: "job:1", Fence: 2, Err: distrlock.ErrLockAlreadyReleased},
	} {
		f.obs.ObserveLock(ctx, e)
	}
	parent.End()
	job := attribute.String("distrlock.lock", "job")
	ok, contended := attribute.String("distrlock.outcome", "ok"), attribute.String("distrlock.outcome", "contended")
	ms := f.metrics(t)
	if len(ms) != 5 {
		t.Errorf("%d metrics, want 5: %v", len(ms), ms)
	}
	metricdatatest.AssertEqual(t, metricdata.Metrics{
		Name: "distrlock.acquire.duration", Description: "Latency of acquire statements.", Unit: "s",
		Data: metricdata.Histogram[float64]{Temporality: metricdata.CumulativeTemporality, DataPoints: []metricdata.HistogramDataPoint[float64]{
			{Attributes: attribute.NewSet(ok, job), Count: 2, Sum: 0.375, Min: metricdata.NewExtrema(0.125), Max: metricdata.NewExtrema(0.25)},
			{Attributes: attribute.NewSet(contended, job), Count: 1, Sum: 0.5, Min: metricdata.NewExtrema(0.5), Max: metricdata.NewExtrema(0.5)},
		}},
	}, ms["distrlock.acquire.duration"], metricdatatest.IgnoreTimestamp(), metricdatatest.IgnoreValue(), metricdatatest.IgnoreExemplars())
	for _, dp := range ms["distrlock.acquire.duration"].Data.(metricdata.Histogram[float64]).DataPoints {
		if o, _ := dp.Attributes.Value("distrlock.outcome"); o.AsString() == "ok" && (dp.Count != 2 || dp.Sum != 0.375) ||
			o.AsString() == "contended" && (dp.Count != 1 || dp.Sum != 0.5) {
			t.Errorf("acquire data point %v: count %d, sum %v", dp.Attributes, dp.Count, dp.Sum)
		}
	}
	// Seconds, not the SDK's millisecond boundaries: 0.125 s and 0.25 s fall in buckets of their own.
	for _, dp := range ms["distrlock.acquire.duration"].Data.(metricdata.Histogram[float64]).DataPoints {
		if want := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}; !slices.Equal(dp.Bounds, want) {
			t.Errorf("acquire buckets %v, want %v", dp.Bounds, want)
		}
		if o, _ := dp.Attributes.Value("distrlock.outcome"); o.AsString() == "ok" {
			// (0.1, 0.25]: index 7 of the counts holds both 0.125 and 0.25.
			if want := []uint64{0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0}; !slices.Equal(dp.BucketCounts, want) {
				t.Errorf("ok acquires' bucket counts %v, want %v", dp.BucketCounts, want)
			}
		}
	}
	wait := ms["distrlock.wait.duration"].Data.(metricdata.Histogram[float64]).DataPoints
	if len(wait) != 1 || wait[0].Count != 1 || wait[0].Sum != 2 || !wait[0].Attributes.Equals(ptr(attribute.NewSet(ok, job))) {
		t.Errorf("wait data points %+v, want one: ok, job, 1 sample of 2 s", wait)
	}
	metricdatatest.AssertEqual(t, metricdata.Metrics{
		Name: "distrlock.locks.held", Description: "Locks held.", Unit: "{lock}",
		Data: metricdata.Sum[int64]{Temporality: metricdata.CumulativeTemporality, IsMonotonic: false,
			DataPoints: []metricdata.DataPoint[int64]{{Attributes: attribute.NewSet(job), Value: 0}}},
	}, ms["distrlock.locks.held"], metricdatatest.IgnoreTimestamp(), metricdatatest.IgnoreExemplars())
	metricdatatest.AssertEqual(t, metricdata.Metrics{
		Name: "distrlock.extend.failures", Description: "Extends of a lease that failed.", Unit: "{extend}",
		Data: sum(metricdata.DataPoint[int64]{Attributes: attribute.NewSet(job), Value: 1}),
	}, ms["distrlock.extend.failures"], metricdatatest.IgnoreTimestamp(), metricdatatest.IgnoreExemplars())
	metricdatatest.AssertEqual(t, metricdata.Metrics{
		Name: "distrlock.lease.losses", Description: "Leases that may have ended while held: the work was cancelled.", Unit: "{lease}",
		Data: sum(metricdata.DataPoint[int64]{Attributes: attribute.NewSet(job), Value: 1}),
	}, ms["distrlock.lease.losses"], metricdatatest.IgnoreTimestamp(), metricdatatest.IgnoreExemplars())

	spans := f.spans.Ended()
	var names []string
	for _, s := range spans {
		names = append(names, s.Name())
	}
	if want := "distrlock.acquire distrlock.acquire distrlock.acquire distrlock.wait caller"; strings.Join(names, " ") != want {
		t.Fatalf("spans %v, want %s", names, want)
	}
	w := spans[3]
	if w.Parent().SpanID() != parent.SpanContext().SpanID() || w.EndTime().Sub(w.StartTime()) != 2*time.Second ||
		w.Status().Code != codes.Unset {
		t.Errorf("wait span: parent %v, lasted %v, status %v; want the caller's, 2s, unset", w.Parent().SpanID(), w.EndTime().Sub(w.StartTime()), w.Status())
	}
	want := map[attribute.Key]string{"distrlock.key": "job:1", "distrlock.outcome": "ok", "distrlock.fence": "2", "distrlock.attempts": "2"}
	for _, kv := range w.Attributes() {
		if want[kv.Key] != kv.Value.Emit() {
			t.Errorf("wait span attribute %s=%s, want %s", kv.Key, kv.Value.Emit(), want[kv.Key])
		}
		delete(want, kv.Key)
	}
	if len(want) != 0 {
		t.Errorf("wait span lacks %v", want)
	}
}

func ptr[T any](v T) *T { return &v }

// TestObserverSQLite: a scripted run on SQLite (acquire, refusal, wait, loss) through the manager gives
// 3 successful and at least 2 refused acquires, 1 wait, 1 extend failure, 1 loss and 1 lock held, with
// no lock attribute by default.
func TestObserverSQLite(t *testing.T) {
	f := newFixture(t)
	observetest.Run(t, f.obs)

	ms := f.metrics(t)
	counts := map[string]uint64{}
	for _, dp := range ms["distrlock.acquire.duration"].Data.(metricdata.Histogram[float64]).DataPoints {
		o, _ := dp.Attributes.Value("distrlock.outcome")
		if dp.Attributes.Len() != 1 {
			t.Errorf("acquire attributes %v, want the outcome alone", dp.Attributes)
		}
		counts[o.AsString()] = dp.Count
	}
	if counts["ok"] != 3 || counts["contended"] < 2 {
		t.Errorf("acquires by outcome %v, want 3 ok and at least 2 contended", counts)
	}
	single := func(name string) int64 {
		dps := ms[name].Data.(metricdata.Sum[int64]).DataPoints
		if len(dps) != 1 {
			t.Fatalf("%s: %d data points, want 1", name, len(dps))
		}
		return dps[0].Value
	}
	if held, ext, lost := single("distrlock.locks.held"), single("distrlock.extend.failures"), single("distrlock.lease.losses"); held != 1 || ext != 1 || lost != 1 {
		t.Errorf("held %d, extend failures %d, losses %d; want 1, 1, 1", held, ext, lost)
	}
	waits := ms["distrlock.wait.duration"].Data.(metricdata.Histogram[float64]).DataPoints
	if len(waits) != 1 || waits[0].Count != 1 || waits[0].Sum < 0.1 {
		t.Errorf("waits %+v, want 1 of at least 100 ms", waits)
	}
}
