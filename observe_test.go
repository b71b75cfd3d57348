package distrlock

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/jackc/pgx/v5/pgconn"
)

// recObserver keeps the events it is given, with the context value ctxKey of each.
type recObserver struct {
	mu     sync.Mutex
	events []Event
	ctxs   []any
}

type ctxKey struct{}

func (r *recObserver) ObserveLock(ctx context.Context, e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	r.ctxs = append(r.ctxs, ctx.Value(ctxKey{}))
}

// of returns the events of key, in the order they came.
func (r *recObserver) of(key string) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var es []Event
	for _, e := range r.events {
		if e.Key == key {
			es = append(es, e)
		}
	}
	return es
}

// kinds returns the kinds of es.
func kinds(es []Event) []EventKind {
	ks := make([]EventKind, len(es))
	for i, e := range es {
		ks[i] = e.Kind
	}
	return ks
}

// recHandler is a slog.Handler that keeps the records it is given, with the context value ctxKey of each.
type recHandler struct {
	mu      *sync.Mutex
	records *[]recRecord
}

type recRecord struct {
	level slog.Level
	msg   string
	attrs map[string]string
	ctx   any
}

func newRecHandler() recHandler { return recHandler{mu: &sync.Mutex{}, records: &[]recRecord{}} }

func (h recHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h recHandler) WithGroup(string) slog.Handler            { return h }
func (h recHandler) Handle(ctx context.Context, r slog.Record) error {
	rec := recRecord{level: r.Level, msg: r.Message, attrs: map[string]string{}, ctx: ctx.Value(ctxKey{})}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.records = append(*h.records, rec)
	return nil
}

func (h recHandler) all() []recRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(*h.records)
}

var uuidPattern = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}`)

// TestObserverAndSlogHeartbeat: DoExclusively with an observer and a slog logger on the manager, owner w1,
// TTL 4 s, work of 4 s, the extend at 2 s refused (read-only) and its retry at 2.5 s successful. The
// observer gets acquire, extend (failed), extend, release, each with the key, fence 7 and owner w1 and the
// caller's context; the logger gets them at Debug, Warn, Debug, Debug with the distrlock.* attributes and
// no token.
func TestObserverAndSlogHeartbeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newHeartbeatFixture(t)
		defer f.db.Close()
		rec, h := &recObserver{}, newRecHandler()
		f.lock.manager.observer, f.lock.manager.logger = rec, SlogLogger(slog.New(h))
		f.expectAcquire()
		f.expectExtend(4 * time.Second).WillReturnError(&pgconn.PgError{Code: "25006", Message: "read-only"})
		f.expectExtend(4 * time.Second).WillReturnResult(sqlmock.NewResult(0, 1))
		f.expectRelease()
		ctx := context.WithValue(context.Background(), ctxKey{}, "caller")
		err := f.run(ctx, func(ctx context.Context) error {
			time.Sleep(4 * time.Second)
			return nil
		}, WithLockTTL(4*time.Second), WithOwner("w1"))
		if err != nil {
			t.Fatal(err)
		}
		es := rec.of("job")
		want := []EventKind{EventAcquire, EventExtend, EventExtend, EventRelease}
		if !slices.Equal(kinds(es), want) {
			t.Fatalf("events %v, want %v", kinds(es), want)
		}
		for i, e := range es {
			if e.Fence != 7 || e.Owner != "w1" || rec.ctxs[i] != "caller" {
				t.Errorf("event %d %v: fence %d, owner %q, context value %v; want 7, w1, caller", i, e.Kind, e.Fence, e.Owner, rec.ctxs[i])
			}
		}
		if es[1].Outcome() != OutcomeError || !errors.Is(es[1].Err, ErrReadOnly) || es[2].Err != nil || es[2].Shared {
			t.Errorf("extends: %v (%s), %v shared %v; want ErrReadOnly, then success alone", es[1].Err, es[1].Outcome(), es[2].Err, es[2].Shared)
		}
		records := h.all()
		wantLevels := []slog.Level{slog.LevelDebug, slog.LevelWarn, slog.LevelDebug, slog.LevelDebug}
		if len(records) != len(wantLevels) {
			t.Fatalf("%d records, want %d: %+v", len(records), len(wantLevels), records)
		}
		for i, r := range records {
			if r.level != wantLevels[i] || r.ctx != "caller" || r.attrs["distrlock.key"] != "job" ||
				r.attrs["distrlock.fence"] != "7" || r.attrs["distrlock.owner"] != "w1" {
				t.Errorf("record %d: %+v; want level %v, context value caller, key job, fence 7, owner w1", i, r, wantLevels[i])
			}
			for k, v := range r.attrs {
				if uuidPattern.MatchString(v) || k == "token" {
					t.Errorf("record %d carries a token: %s=%s", i, k, v)
				}
			}
		}
	})
}

// TestObserverLeaseLost: an extend that finds the lock gone gives EventExtend (not held), then
// EventLeaseLost matching ErrLockLost, logged at Error, then the release's EventRelease; a per-call
// WithLogger(SlogLogger) takes the records instead of the manager's logger.
func TestObserverLeaseLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newHeartbeatFixture(t)
		defer f.db.Close()
		rec, managerLog, callLog := &recObserver{}, newRecHandler(), newRecHandler()
		f.lock.manager.observer, f.lock.manager.logger = rec, SlogLogger(slog.New(managerLog))
		f.expectAcquire()
		f.expectExtend(4 * time.Second).WillReturnResult(sqlmock.NewResult(0, 0))
		f.expectRelease()
		err := f.run(context.Background(), func(ctx context.Context) error {
			<-ctx.Done()
			return nil
		}, WithLockTTL(4*time.Second), WithLogger(SlogLogger(slog.New(callLog))))
		unitWantErr(t, err, "do exclusively", "job", ErrLockLost, ErrLockAlreadyReleased)
		es := rec.of("job")
		want := []EventKind{EventAcquire, EventExtend, EventLeaseLost, EventRelease}
		if !slices.Equal(kinds(es), want) {
			t.Fatalf("events %v, want %v", kinds(es), want)
		}
		if es[1].Outcome() != OutcomeNotHeld || es[2].Outcome() != OutcomeLost || !errors.Is(es[2].Err, ErrLockAlreadyReleased) || es[2].Fence != 7 {
			t.Errorf("extend %v (%s), loss %v (%s) fence %d; want not_held, then lost because not held, fence 7",
				es[1].Err, es[1].Outcome(), es[2].Err, es[2].Outcome(), es[2].Fence)
		}
		if n := len(managerLog.all()); n != 0 {
			t.Errorf("the manager's logger got %d records, want 0: the call has its own", n)
		}
		records := callLog.all()
		if len(records) != 4 || records[2].level != slog.LevelError || records[2].msg != "distrlock: lease lost" {
			t.Fatalf("records %+v; want 4, the third the loss at Error", records)
		}
	})
}

// TestObserverUnsetBuildsNothing: without an observer or slog logger no event is built, and a plain
// Logger gets only what it got before (here: nothing, for a successful run).
func TestObserverUnsetBuildsNothing(t *testing.T) {
	m, err := NewDBManager(DialectPgx, WithManagerLogger(&unitPlainLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	if m.observing(nil) || m.observing(&unitPlainLogger{}) {
		t.Error("observing with no observer and a plain logger")
	}
	if !m.observing(SlogLogger(slog.Default())) {
		t.Error("not observing with a slog logger")
	}
	if got := (Event{Err: errors.Join(ErrLockAlreadyAcquired, ErrWaitTimeout)}).Outcome(); got != OutcomeTimeout {
		t.Errorf("outcome of a wait that timed out = %q, want %q", got, OutcomeTimeout)
	}
	if EventLeaseLost.String() != "lease_lost" || EventKind(99).String() != "EventKind(99)" {
		t.Errorf("EventKind names: %q, %q", EventLeaseLost, EventKind(99))
	}
}

// TestIntegrationObserver: on each database, a scripted run gives every kind of event with its fields:
// an acquire, a contended wait that gets the lock when it is released, an extend, a release, a lease lost
// because its row was released behind its back, two heartbeats' extends sharing a statement, and an
// election's start, new leader and stop.
func TestIntegrationObserver(t *testing.T) {
	integEach(t, allDBs(t), func(t *testing.T, tdb *testDB) {
		rec := &recObserver{}
		base := newTestManager(t, tdb)
		m, err := NewDBManager(tdb.dialect, WithTableName(base.TableName()), WithObserver(rec))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.WithValue(context.Background(), ctxKey{}, "caller")

		// Acquire, contention, wait, release, extend.
		a, b := integLock(t, m, tdb.db, "k"), integLock(t, m, tdb.db, "k")
		a.Owner, b.Owner = "a", "b"
		if err := a.Acquire(ctx, tdb.db, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		waited := make(chan error)
		go func() { waited <- b.AcquireWait(ctx, tdb.db, 10*time.Second, 10*time.Second) }()
		for !slices.Contains(kinds(rec.of("k")), EventWaitStarted) {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond)
		if err := a.Release(ctx, tdb.db); err != nil {
			t.Fatal(err)
		}
		if err := <-waited; err != nil {
			t.Fatal(err)
		}
		if err := b.Extend(ctx, tdb.db); err != nil {
			t.Fatal(err)
		}
		c := integLock(t, m, tdb.db, "k")
		if err := c.AcquireWait(ctx, tdb.db, 10*time.Second, 100*time.Millisecond); !errors.Is(err, ErrWaitTimeout) {
			t.Fatalf("c.AcquireWait = %v, want ErrWaitTimeout", err)
		}
		if err := b.Release(ctx, tdb.db); err != nil {
			t.Fatal(err)
		}
		es := rec.of("k")
		find := func(kind EventKind, owner string) Event {
			t.Helper()
			for _, e := range es {
				if e.Kind == kind && (owner == "" || e.Owner == owner) {
					return e
				}
			}
			t.Fatalf("no %v event of %q in %v", kind, owner, kinds(es))
			return Event{}
		}
		if e := find(EventAcquire, "a"); e.Err != nil || e.Fence != a.Fence() || e.Duration <= 0 {
			t.Errorf("a's acquire: %+v; want success, fence %d, a latency", e, a.Fence())
		}
		contended := 0
		for _, e := range es {
			if e.Kind == EventAcquire && e.Outcome() == OutcomeContended {
				contended++
			}
		}
		if contended < 1 {
			t.Errorf("no contended acquire in %v", kinds(es))
		}
		if e := find(EventWaitStarted, ""); e.Attempts != 1 || e.Owner != "" {
			t.Errorf("wait started: %+v; want 1 attempt", e)
		}
		if e := find(EventWaitEnded, "b"); e.Err != nil || e.Fence != b.Fence() || e.Fence <= a.Fence() || e.Attempts < 2 || e.Duration < 100*time.Millisecond {
			t.Errorf("wait ended: %+v; want the lock with fence %d > %d, at least 2 attempts and 100 ms", e, b.Fence(), a.Fence())
		}
		if e := find(EventRelease, "a"); e.Err != nil || e.Fence != a.Fence() || e.Duration <= 0 {
			t.Errorf("a's release: %+v", e)
		}
		if e := find(EventExtend, "b"); e.Err != nil || e.Fence != b.Fence() || e.Shared || e.Duration <= 0 {
			t.Errorf("b's extend: %+v", e)
		}
		if e := find(EventRelease, "b"); e.Err != nil || e.Fence != b.Fence() || e.Duration <= 0 {
			t.Errorf("b's release: %+v", e)
		}
		if e := es[len(es)-2]; e.Kind != EventWaitEnded || e.Outcome() != OutcomeTimeout || e.Attempts < 1 || e.Duration < 100*time.Millisecond || e.Fence != 0 {
			t.Errorf("c's wait ended: %+v; want a timeout after 100 ms, no fence", e)
		}
		if i, j := slices.Index(kinds(es), EventWaitStarted), slices.Index(kinds(es), EventWaitEnded); i > j {
			t.Errorf("wait ended before it started: %v", kinds(es))
		}

		// A lease lost: its row released with its token behind its back.
		lease, err := m.Hold(ctx, tdb.db, "lost", WithLockTTL(time.Second), WithOwner("h"))
		if err != nil {
			t.Fatal(err)
		}
		if err := m.ReleaseWithToken(ctx, tdb.db, "lost", lease.Token()); err != nil {
			t.Fatal(err)
		}
		select {
		case <-lease.Context().Done():
		case <-time.After(5 * time.Second):
			t.Fatal("the lease was not lost")
		}
		if err := lease.Release(ctx); !errors.Is(err, ErrLockLost) {
			t.Errorf("Release of the lost lease = %v, want ErrLockLost", err)
		}
		lostEvents := rec.of("lost")
		if last := lostEvents[len(lostEvents)-1]; last.Kind != EventRelease || last.Outcome() != OutcomeNotHeld || last.Owner != "h" {
			t.Errorf("the lost lease's last event %+v, want its release, not held, owner h", last)
		}
		var lostEvent, failedExtend Event
		for _, e := range lostEvents {
			switch {
			case e.Kind == EventLeaseLost:
				lostEvent = e
			case e.Kind == EventExtend && lostEvent.Kind == 0:
				failedExtend = e // the last extend before the loss
			}
		}
		// The heartbeat's extend found the lock not held: reported as a failed extend, then the loss.
		if !errors.Is(failedExtend.Err, ErrLockAlreadyReleased) || failedExtend.Outcome() != OutcomeNotHeld ||
			failedExtend.Fence != lease.Fence() || failedExtend.Duration <= 0 {
			t.Errorf("the extend before the loss %+v; want not held, fence %d, a duration", failedExtend, lease.Fence())
		}
		if !errors.Is(lostEvent.Err, ErrLockLost) || !errors.Is(lostEvent.Err, ErrLockAlreadyReleased) ||
			lostEvent.Fence != lease.Fence() || lostEvent.Owner != "h" {
			t.Errorf("events of the lost lease %v; the loss %+v, want ErrLockLost because not held, fence %d, owner h",
				kinds(lostEvents), lostEvent, lease.Fence())
		}

		// Two leases of one TTL, taken together: their heartbeats share a statement.
		var shared []*Lease
		for _, key := range []string{"s1", "s2"} {
			lease, err := m.Hold(ctx, tdb.db, key, WithLockTTL(2*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			shared = append(shared, lease)
		}
		time.Sleep(1300 * time.Millisecond) // the extend is due at 1 s
		for _, lease := range shared {
			if err := lease.Release(ctx); err != nil {
				t.Fatal(err)
			}
			var ext []Event
			for _, e := range rec.of(lease.Key()) {
				if e.Kind == EventExtend {
					ext = append(ext, e)
				}
			}
			if len(ext) != 1 || ext[0].Err != nil || !ext[0].Shared || ext[0].Fence != lease.Fence() {
				t.Errorf("extends of %s: %+v; want one, successful, shared, fence %d", lease.Key(), ext, lease.Fence())
			}
		}

		// An election.
		el, err := m.NewElection(tdb.db, "el", WithIdentity("me"), WithElectionPollInterval(20*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if err := el.Campaign(ctx, "v"); err != nil {
			t.Fatal(err)
		}
		term := el.Term()
		obsCtx, stop := context.WithCancel(ctx)
		for l := range el.Observe(obsCtx) {
			if l.Term == term {
				break
			}
		}
		stop()
		if err := el.Resign(ctx); err != nil {
			t.Fatal(err)
		}
		var got []EventKind
		for _, e := range rec.of("el") {
			switch e.Kind {
			case EventStartedLeading, EventNewLeader, EventStoppedLeading:
				got = append(got, e.Kind)
				if e.Fence != term || e.Owner != "me" || e.Err != nil {
					t.Errorf("election event %+v; want term %d, identity me, no error", e, term)
				}
			}
		}
		if want := []EventKind{EventStartedLeading, EventNewLeader, EventStoppedLeading}; !slices.Equal(got, want) {
			t.Errorf("election events %v, want %v", got, want)
		}
		// A term lost behind the leader's back: its lease released with its token by an operator.
		lostEl, err := m.NewElection(tdb.db, "el-lost", WithIdentity("me"), WithElectionTTL(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if err := lostEl.Campaign(ctx, "v"); err != nil {
			t.Fatal(err)
		}
		lostTerm, termCtx := lostEl.Term(), lostEl.Context()
		info, err := m.Get(ctx, tdb.db, "el-lost")
		if err != nil {
			t.Fatal(err)
		}
		if err := m.ReleaseWithToken(ctx, tdb.db, "el-lost", info.Token); err != nil {
			t.Fatal(err)
		}
		select {
		case <-termCtx.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("the term was not lost")
		}
		_ = lostEl.Resign(ctx) // reports the term's end; its lease is gone
		var stoppedEvents []Event
		for _, e := range rec.of("el-lost") {
			if e.Kind == EventStoppedLeading {
				stoppedEvents = append(stoppedEvents, e)
			}
		}
		if len(stoppedEvents) != 1 || !errors.Is(stoppedEvents[0].Err, ErrLockLost) || stoppedEvents[0].Fence != lostTerm ||
			stoppedEvents[0].Owner != "me" {
			t.Errorf("the lost term's stopped-leading events %+v; want one, ErrLockLost, term %d, identity me", stoppedEvents, lostTerm)
		}

		rec.mu.Lock()
		defer rec.mu.Unlock()
		for i, v := range rec.ctxs {
			if v != "caller" {
				t.Errorf("event %v came with context value %v, want the caller's", rec.events[i].Kind, v)
			}
		}
	})
}

// spanRec is a SpanObserver whose scopes are context values naming the event that opened them; it keeps
// the scope each event came with.
type spanRec struct {
	recObserver
	opened []EventKind
}

type scopeKey struct{}

func (s *spanRec) StartSpan(ctx context.Context, e Event) context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opened = append(s.opened, e.Kind)
	return context.WithValue(ctx, scopeKey{}, e.Kind)
}

func (s *spanRec) ObserveLock(ctx context.Context, e Event) {
	s.recObserver.ObserveLock(context.WithValue(ctx, ctxKey{}, ctx.Value(scopeKey{})), e)
}

// scopeExec records the scope of each statement.
type scopeExec struct {
	SQLExecutor
	mu     sync.Mutex
	scopes []any
}

func (x *scopeExec) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	x.mu.Lock()
	x.scopes = append(x.scopes, ctx.Value(scopeKey{}))
	x.mu.Unlock()
	return x.SQLExecutor.ExecContext(ctx, query, args...)
}

func (x *scopeExec) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	x.mu.Lock()
	x.scopes = append(x.scopes, ctx.Value(scopeKey{}))
	x.mu.Unlock()
	return x.SQLExecutor.QueryRowContext(ctx, query, args...)
}

// TestSpanObserverScopes: with a SpanObserver, every statement of an acquire, a wait and a release runs in
// the scope StartSpan opened for it, and the event that ends the operation comes with that scope.
func TestSpanObserverScopes(t *testing.T) {
	tdb := openSQLite(t)
	obs := &spanRec{}
	m, err := NewDBManager(DialectSQLite, WithObserver(obs))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := m.CreateTable(ctx, tdb.db); err != nil {
		t.Fatal(err)
	}
	x := &scopeExec{SQLExecutor: tdb.db}
	a, _ := m.NewLock(ctx, x, "k")
	w, _ := m.NewLock(ctx, x, "k")
	if err := a.Acquire(ctx, x, time.Minute); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error)
	go func() { waited <- w.AcquireWait(ctx, x, time.Minute, 10*time.Second) }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) { // until w waits
		obs.mu.Lock()
		started := slices.Contains(obs.opened, EventWaitStarted)
		obs.mu.Unlock()
		if started {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("w did not start waiting within 10 s")
		}
	}
	if err := a.Release(ctx, x); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	for i, s := range x.scopes {
		if s == nil {
			t.Errorf("statement %d ran outside any scope", i)
		}
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	closes := map[EventKind]EventKind{EventAcquire: EventAcquire, EventWaitStarted: EventWaitStarted,
		EventWaitEnded: EventWaitStarted, EventRelease: EventRelease}
	for i, e := range obs.events {
		if want := closes[e.Kind]; obs.ctxs[i] != want {
			t.Errorf("%v came in scope %v, want %v", e.Kind, obs.ctxs[i], want)
		}
	}
	if len(obs.events) < 5 || !slices.Contains(obs.opened, EventWaitStarted) {
		t.Errorf("events %v, scopes opened %v", obs.events, obs.opened)
	}
}

// keyedScope is a SpanObserver whose scope is its own context key.
type keyedScope struct {
	seen []any // the scope each event came with
}

type keyedScopeKey struct{ o *keyedScope }

func (k *keyedScope) StartSpan(ctx context.Context, e Event) context.Context {
	return context.WithValue(ctx, keyedScopeKey{k}, e.Kind)
}

func (k *keyedScope) ObserveLock(ctx context.Context, e Event) {
	k.seen = append(k.seen, ctx.Value(keyedScopeKey{k}))
}

// TestJoinObservers: every joined observer gets every event, and each SpanObserver finds its own scope.
func TestJoinObservers(t *testing.T) {
	a, b := &keyedScope{}, &keyedScope{}
	var plain int
	j := JoinObservers(a, ObserverFunc(func(context.Context, Event) { plain++ }), b)
	ctx := j.StartSpan(context.Background(), Event{Kind: EventRelease, Key: "k"})
	j.ObserveLock(ctx, Event{Kind: EventRelease, Key: "k"})
	j.ObserveLock(context.Background(), Event{Kind: EventExtend, Key: "k"})
	if plain != 2 || !slices.Equal(a.seen, []any{EventRelease, nil}) || !slices.Equal(b.seen, []any{EventRelease, nil}) {
		t.Errorf("plain got %d events, a saw scopes %v, b %v; want 2, [release <nil>] twice", plain, a.seen, b.seen)
	}
}
