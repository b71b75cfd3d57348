package otel_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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
	"go.opentelemetry.io/otel/trace"
	_ "modernc.org/sqlite"
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
		Name: "distrlock.lock.held", Description: "Locks held.", Unit: "{lock}",
		Data: metricdata.Sum[int64]{Temporality: metricdata.CumulativeTemporality, IsMonotonic: false,
			DataPoints: []metricdata.DataPoint[int64]{{Attributes: attribute.NewSet(job), Value: 0}}},
	}, ms["distrlock.lock.held"], metricdatatest.IgnoreTimestamp(), metricdatatest.IgnoreExemplars())
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
	// Given without StartSpan, the events' spans are recorded when they arrive, from their durations.
	if want := "distrlock.acquire distrlock.acquire distrlock.release distrlock.acquire distrlock.wait distrlock.release caller"; strings.Join(names, " ") != want {
		t.Fatalf("spans %v, want %s", names, want)
	}
	w := spans[4]
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

// spanRecorder is an executor that records the span in the context of each statement, as a database
// driver's instrumentation would parent its own span there.
type spanRecorder struct {
	db      *sql.DB
	mu      sync.Mutex
	spans   []trace.SpanID
	notLive int // statements whose span had ended already
}

func (r *spanRecorder) record(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.spans = append(r.spans, trace.SpanContextFromContext(ctx).SpanID())
	if !trace.SpanFromContext(ctx).IsRecording() {
		r.notLive++
	}
}

// waitStarted is an observer that signals each EventWaitStarted.
func waitStarted() (distrlock.Observer, <-chan struct{}) {
	ch := make(chan struct{}, 10)
	return distrlock.ObserverFunc(func(_ context.Context, e distrlock.Event) {
		if e.Kind == distrlock.EventWaitStarted {
			ch <- struct{}{}
		}
	}), ch
}

func (r *spanRecorder) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	r.record(ctx)
	return r.db.ExecContext(ctx, query, args...)
}

func (r *spanRecorder) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	r.record(ctx)
	return r.db.QueryRowContext(ctx, query, args...)
}

// TestObserverSpansEncloseStatements: through a manager on SQLite, every statement of an acquire, a wait
// and a release runs in the context of its distrlock span, which is open while it runs; the wait's attempts
// are children of the wait's span, and the other spans children of the caller's.
func TestObserverSpansEncloseStatements(t *testing.T) {
	f := newFixture(t)
	ctx, caller := f.tracer.Tracer("test").Start(context.Background(), "caller")
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "locks.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	started, waiting := waitStarted()
	m, err := distrlock.NewDBManager(distrlock.DialectSQLite, distrlock.WithObserver(distrlock.JoinObservers(f.obs, started)))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CreateTable(ctx, db); err != nil {
		t.Fatal(err)
	}
	rec := &spanRecorder{db: db}
	a, _ := m.NewLock(ctx, rec, "k")
	w, _ := m.NewLock(ctx, rec, "k")
	v, _ := m.NewLock(ctx, rec, "k")
	if err := a.Acquire(ctx, rec, time.Minute); err != nil {
		t.Fatal(err)
	}
	// A wait that times out leaves the queue (a dequeue statement) inside its span.
	if err := v.AcquireWait(ctx, rec, time.Minute, 100*time.Millisecond); !errors.Is(err, distrlock.ErrWaitTimeout) {
		t.Fatalf("v.AcquireWait = %v, want a timeout", err)
	}
	<-waiting
	waited := make(chan error)
	go func() { waited <- w.AcquireWait(ctx, rec, time.Minute, 10*time.Second) }()
	select {
	case <-waiting:
	case err := <-waited:
		t.Fatalf("w.AcquireWait returned %v before waiting", err)
	}
	if err := a.Release(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	caller.End()
	if rec.notLive != 0 {
		t.Errorf("%d statements ran in spans that had ended", rec.notLive)
	}

	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	count := map[string]int{}
	for _, s := range f.spans.Ended() {
		byID[s.SpanContext().SpanID()] = s
		count[s.Name()]++
	}
	// a's acquire, v's and w's refused first attempts, w's attempt after the release (and v's or w's other
	// refused attempts, if any); the two waits; a's release.
	if count["distrlock.acquire"] < 4 || count["distrlock.wait"] != 2 || count["distrlock.release"] != 1 {
		t.Fatalf("spans by name %v, want at least 4 acquire, 2 wait, 1 release", count)
	}
	if started, ended := len(f.spans.Started()), len(f.spans.Ended()); started != ended {
		t.Errorf("%d spans started, %d ended", started, ended)
	}
	waits := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for id, s := range byID {
		if s.SpanKind() != trace.SpanKindInternal && s.Name() != "caller" {
			t.Errorf("span %s of kind %v, want internal", s.Name(), s.SpanKind())
		}
		if s.Name() == "distrlock.wait" {
			waits[id] = s
		}
	}
	if len(rec.spans) < 5 {
		t.Fatalf("%d statements, want at least 5", len(rec.spans))
	}
	inWait := 0
	for i, id := range rec.spans {
		s, ok := byID[id]
		if !ok || !strings.HasPrefix(s.Name(), "distrlock.") {
			t.Fatalf("statement %d ran in span %v, not in one of distrlock's", i, id)
		}
		switch parent := s.Parent().SpanID(); {
		case s.Name() == "distrlock.acquire" && waits[parent] != nil:
			inWait++
		case parent != caller.SpanContext().SpanID():
			t.Errorf("statement %d ran in %s, whose parent %v is neither the caller's nor the wait's", i, s.Name(), parent)
		}
	}
	if inWait != count["distrlock.acquire"]-3 {
		t.Errorf("%d statements in acquire spans under a wait, want %d: all but a's, v's first and w's first", inWait, count["distrlock.acquire"]-3)
	}
	for id, w := range waits {
		if w.Parent().SpanID() != caller.SpanContext().SpanID() {
			t.Errorf("wait %v: parent %v, want the caller's span", id, w.Parent().SpanID())
		}
	}
}

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
	if held, ext, lost := single("distrlock.lock.held"), single("distrlock.extend.failures"), single("distrlock.lease.losses"); held != 1 || ext != 1 || lost != 1 {
		t.Errorf("held %d, extend failures %d, losses %d; want 1, 1, 1", held, ext, lost)
	}
	waits := ms["distrlock.wait.duration"].Data.(metricdata.Histogram[float64]).DataPoints
	if len(waits) != 1 || waits[0].Count != 1 || waits[0].Sum < 0.1 {
		t.Errorf("waits %+v, want 1 of at least 100 ms", waits)
	}
}

// TestObserverZeroSeries: before any event, the held, extend-failure and loss series exist at 0.
func TestObserverZeroSeries(t *testing.T) {
	f := newFixture(t)
	ms := f.metrics(t)
	for _, name := range []string{"distrlock.lock.held", "distrlock.extend.failures", "distrlock.lease.losses"} {
		dps := ms[name].Data.(metricdata.Sum[int64]).DataPoints
		if len(dps) != 1 || dps[0].Value != 0 || dps[0].Attributes.Len() != 0 {
			t.Errorf("%s: data points %+v, want one at 0 without attributes", name, dps)
		}
	}
}

// TestObserverJoined: two Observers joined on one manager each end every span they start.
func TestObserverJoined(t *testing.T) {
	f1, f2 := newFixture(t), newFixture(t)
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "locks.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m, err := distrlock.NewDBManager(distrlock.DialectSQLite, distrlock.WithObserver(distrlock.JoinObservers(f1.obs, f2.obs)))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CreateTable(ctx, db); err != nil {
		t.Fatal(err)
	}
	lock, _ := m.NewLock(ctx, db, "k")
	if err := lock.Acquire(ctx, db, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := lock.Release(ctx, db); err != nil {
		t.Fatal(err)
	}
	for i, f := range []*fixture{f1, f2} {
		if started, ended := len(f.spans.Started()), len(f.spans.Ended()); started != 2 || ended != 2 {
			t.Errorf("observer %d: %d spans started, %d ended; want 2 and 2 (acquire, release)", i+1, started, ended)
		}
	}
}
