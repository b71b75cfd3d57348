package distrlock

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
)

// electionFixture is a candidate on a sqlmock PostgreSQL database; make it inside the synctest bubble of
// a timing test.
type electionFixture struct {
	db   *sql.DB
	mock sqlmock.Sqlmock
	m    *DBManager
	e    *Election
}

func newElectionFixture(t *testing.T, managerOpts []DBManagerOption, opts ...ElectionOption) *electionFixture {
	t.Helper()
	db, mock := unitMock(t)
	m, err := NewDBManager(DialectPgx, managerOpts...)
	if err != nil {
		t.Fatal(err)
	}
	e, err := m.NewElection(db, "leader", opts...)
	if err != nil {
		t.Fatal(err)
	}
	return &electionFixture{db: db, mock: mock, m: m, e: e}
}

// expectGet expects one read of the election's key: held by term with value for left on the database's
// clock, or free when term is 0.
func (f *electionFixture) expectGet(term int64, value string, left time.Duration) *sqlmock.ExpectedQuery {
	const now = int64(1_700_000_000_000_000) // µs since the epoch
	rows := sqlmock.NewRows([]string{"lock_key", "token", "owner", "data", "fence", "ttl_us", "acquired_at", "expire_at", "now", "queued"})
	expire := now - 1
	if term != 0 {
		expire = now + left.Microseconds()
	}
	rows.AddRow("leader", "tok", "host/1", []byte(value), term, int64(15_000_000), now-1000, expire, now, int64(0))
	return f.mock.ExpectQuery(f.m.q.get).WithArgs("leader").WillReturnRows(rows)
}

// expectRelease expects the leader's release, which finds the lock held (n 1) or not (n 0); through a
// manager with a notifier, the release that notifies.
func (f *electionFixture) expectRelease(n int64) {
	if f.m.notifier != nil {
		rows := sqlmock.NewRows([]string{"notified", "queued"})
		if n == 1 {
			rows.AddRow("", false)
		}
		f.mock.ExpectQuery(f.m.q.releaseNotify).WithArgs("leader", sqlmock.AnyArg(), int64(0), true, f.m.notifier.Channel(), true).WillReturnRows(rows)
		return
	}
	f.mock.ExpectExec(f.m.q.release).WithArgs(unitReleaseArgs(f.m.Dialect(), "leader", sqlmock.AnyArg())...).WillReturnResult(sqlmock.NewResult(0, n))
}

func (f *electionFixture) expectAcquire(fence int64) {
	f.mock.ExpectQuery(f.m.q.acquire).WillReturnRows(sqlmock.NewRows([]string{"fence"}).AddRow(fence))
}

// TestNewElectionOptions: defaults, and every bad value refused with its sentinel before anything is sent.
func TestNewElectionOptions(t *testing.T) {
	db, _ := unitMock(t)
	m, err := NewDBManager(DialectPgx)
	if err != nil {
		t.Fatal(err)
	}
	e, err := m.NewElection(db, "leader")
	if err != nil {
		t.Fatal(err)
	}
	if e.o.ttl != DefaultElectionTTL || e.o.poll != DefaultElectionPollInterval || !e.o.releaseOnCancel {
		t.Errorf("defaults: %+v", e.o)
	}
	if !strings.HasSuffix(e.o.identity, "/"+strconv.Itoa(os.Getpid())) {
		t.Errorf("default identity %q does not end with the pid", e.o.identity)
	}
	for _, c := range []struct {
		name    string
		db      *sql.DB
		key     string
		opts    []ElectionOption
		wantErr []error
	}{
		{"nil db", nil, "k", nil, []error{ErrNilExecutor}},
		{"empty name", db, "", nil, []error{ErrInvalidKey}},
		{"TTL too short", db, "k", []ElectionOption{WithElectionTTL(time.Nanosecond)}, []error{ErrInvalidOption, ErrInvalidTTL}},
		{"TTL negative", db, "k", []ElectionOption{WithElectionTTL(-time.Second)}, []error{ErrInvalidOption, ErrInvalidTTL}},
		{"poll zero", db, "k", []ElectionOption{WithElectionPollInterval(0)}, []error{ErrInvalidOption}},
		{"poll negative", db, "k", []ElectionOption{WithElectionPollInterval(-time.Second)}, []error{ErrInvalidOption}},
		{"identity too long", db, "k", []ElectionOption{WithIdentity(strings.Repeat("x", MaxOwnerLength+1))}, []error{ErrInvalidOption}},
		{"identity with NUL", db, "k", []ElectionOption{WithIdentity("a\x00b")}, []error{ErrInvalidOption}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := m.NewElection(c.db, c.key, c.opts...)
			for _, want := range c.wantErr {
				if !errors.Is(err, want) {
					t.Errorf("error %v, want it to match %v", err, want)
				}
			}
		})
	}
}

// TestElectionRefusedWhileFreeSleeps: when the read finds the lock free but the attempt is refused (another
// candidate came first, or AcquireWait's waiters are queued), the standby reads again after a hand-over
// grace, not at once in a loop.
func TestElectionRefusedWhileFreeSleeps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newElectionFixture(t, nil)
		f.expectGet(0, "", 0)
		f.mock.ExpectQuery(f.m.q.acquire).WillReturnRows(sqlmock.NewRows([]string{"fence"})) // refused
		f.expectGet(0, "", 0)
		f.expectAcquire(5)
		start := time.Now()
		if err := f.e.Campaign(t.Context(), "me"); err != nil {
			t.Fatal(err)
		}
		if took, want := time.Since(start), f.m.handoverGrace()+time.Millisecond; took != want {
			t.Errorf("won after %v, want %v: one grace after the refused attempt", took, want)
		}
		f.expectRelease(1)
		if err := f.e.Resign(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestElectionStandbyOnlyReads: while another candidate leads, a standby sends one read per poll interval
// and nothing else (sqlmock fails any other statement), and its campaign ends with the context as
// contention and the context's error.
func TestElectionStandbyOnlyReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newElectionFixture(t, nil)
		for range 4 { // at 0, 1, 2 and 3 s
			f.expectGet(3, "other", time.Hour)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 3500*time.Millisecond)
		defer cancel()
		err := f.e.Campaign(ctx, "me")
		if !errors.Is(err, ErrLockAlreadyAcquired) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Campaign = %v, want contention and the deadline", err)
		}
		if f.e.IsLeader() || f.e.Term() != 0 {
			t.Error("a standby reports itself leader")
		}
	})
}

// TestElectionStandbyWakesAtLeaseEnd: a standby whose leader's lease ends before the next poll reads again
// when it ends, then takes the lock; the term is the fence, and Resign frees it.
func TestElectionStandbyWakesAtLeaseEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newElectionFixture(t, nil, WithElectionPollInterval(time.Second), WithElectionTTL(10*time.Second))
		f.expectGet(3, "other", 300*time.Millisecond)
		f.expectGet(0, "", 0)
		f.expectAcquire(4)
		start := time.Now()
		if err := f.e.Campaign(t.Context(), "me"); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took != 301*time.Millisecond {
			t.Errorf("won after %v, want the lease's 300 ms and 1 ms", took)
		}
		if !f.e.IsLeader() || f.e.Term() != 4 || f.e.Context().Err() != nil {
			t.Fatalf("leader %v, term %d, context %v", f.e.IsLeader(), f.e.Term(), f.e.Context().Err())
		}
		f.expectRelease(1)
		ctx := f.e.Context()
		if err := f.e.Resign(t.Context()); err != nil {
			t.Fatal(err)
		}
		if ctx.Err() == nil || f.e.IsLeader() {
			t.Error("the term's context did not end at Resign")
		}
		if err := f.e.Resign(t.Context()); err != nil {
			t.Errorf("second Resign = %v, want nil", err)
		}
	})
}

// fakeNotifier delivers notices when the test says so.
type fakeNotifier struct {
	channel string // "distrlock_test" when empty
	deaf    bool   // Listening reports false
	mu      sync.Mutex
	subs    map[string][]chan struct{}
}

func (n *fakeNotifier) Channel() string {
	if n.channel == "" {
		return "distrlock_test"
	}
	return n.channel
}
func (n *fakeNotifier) Listening() bool { return !n.deaf }

func (n *fakeNotifier) Subscribe(key string) (<-chan struct{}, func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.subs == nil {
		n.subs = make(map[string][]chan struct{})
	}
	ch := make(chan struct{}, 1)
	n.subs[key] = append(n.subs[key], ch)
	return ch, func() {}
}

func (n *fakeNotifier) notify(key string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, ch := range n.subs[key] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// TestElectionNotifierWakesStandby: a release notice wakes a standby at once, long before its next poll.
func TestElectionNotifierWakesStandby(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := &fakeNotifier{}
		f := newElectionFixture(t, []DBManagerOption{WithNotifier(n)}, WithElectionPollInterval(10*time.Second))
		f.expectGet(3, "other", time.Hour)
		f.expectGet(0, "", 0)
		f.expectAcquire(4)
		go func() {
			time.Sleep(100 * time.Millisecond)
			n.notify("leader")
		}()
		start := time.Now()
		if err := f.e.Campaign(t.Context(), "me"); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took != 100*time.Millisecond {
			t.Errorf("won after %v, want 100 ms (the notice)", took)
		}
		f.expectRelease(1)
		if err := f.e.Resign(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestElectionProclaim: a candidate that does not lead sends nothing and gets ErrNotLeader; a leader's
// proclaim binds the value, the key and its token; a proclaim that finds the lease gone ends the term.
func TestElectionProclaim(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newElectionFixture(t, nil)
		if err := f.e.Proclaim(t.Context(), "v"); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("Proclaim before Campaign = %v, want ErrNotLeader", err)
		}
		if cause := context.Cause(f.e.Context()); !errors.Is(cause, ErrNotLeader) {
			t.Errorf("Context outside a term has cause %v", cause)
		}
		f.expectGet(0, "", 0)
		f.expectAcquire(9)
		if err := f.e.Campaign(t.Context(), "v1"); err != nil {
			t.Fatal(err)
		}
		var tok recordedArg
		f.mock.ExpectExec(f.m.q.proclaim).WithArgs([]byte("v2"), "leader", &tok).WillReturnResult(sqlmock.NewResult(0, 1))
		if err := f.e.Proclaim(t.Context(), "v2"); err != nil {
			t.Fatal(err)
		}
		if tok.value == nil || tok.value == "" {
			t.Error("no token bound")
		}
		// Campaign on a leader proclaims.
		f.mock.ExpectExec(f.m.q.proclaim).WithArgs([]byte("v3"), "leader", sqlmock.AnyArg()).WillReturnResult(sqlmock.NewResult(0, 0))
		if err := f.e.Campaign(t.Context(), "v3"); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("Campaign (a proclaim) on a lost lease = %v, want ErrNotLeader", err)
		}
		if cause := context.Cause(f.e.Context()); !errors.Is(cause, ErrLockLost) {
			t.Errorf("the term's context has cause %v, want ErrLockLost", cause)
		}
		// Campaigning again ends the lost term's lease first.
		f.expectRelease(0)
		f.expectGet(0, "", 0)
		f.expectAcquire(11)
		if err := f.e.Campaign(t.Context(), "v4"); err != nil || f.e.Term() != 11 {
			t.Fatalf("Campaign after a lost term = %v, term %d", err, f.e.Term())
		}
		f.expectRelease(1)
		if err := f.e.Resign(t.Context()); err != nil {
			t.Errorf("Resign = %v", err)
		}
	})
}

// TestElectionLeader: the leader read from the lock's row, and ErrNoLeader for a free or unknown key.
func TestElectionLeader(t *testing.T) {
	f := newElectionFixture(t, nil)
	f.expectGet(5, "addr:1", time.Second)
	l, err := f.e.Leader(t.Context())
	if err != nil || l.Term != 5 || l.Value != "addr:1" || l.Identity != "host/1" || l.Since.IsZero() || !l.ExpiresAt.After(l.Since) {
		t.Errorf("Leader = %+v, %v", l, err)
	}
	f.expectGet(0, "", 0)
	if _, err := f.e.Leader(t.Context()); !errors.Is(err, ErrNoLeader) {
		t.Errorf("Leader of a free key = %v, want ErrNoLeader", err)
	}
	f.mock.ExpectQuery(f.m.q.get).WithArgs("leader").WillReturnError(sql.ErrNoRows)
	if _, err := f.e.Leader(t.Context()); !errors.Is(err, ErrNoLeader) {
		t.Errorf("Leader of an unknown key = %v, want ErrNoLeader", err)
	}
}

// TestElectionObserve: each change is sent once and in order (a term, a proclaimed value, no leader, the
// next term), each within one poll interval of the read that saw it, and the channel closes with ctx.
func TestElectionObserve(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newElectionFixture(t, nil, WithElectionPollInterval(100*time.Millisecond))
		f.expectGet(1, "a", time.Hour) // 0 ms
		f.expectGet(1, "a", time.Hour) // 100
		f.expectGet(1, "b", time.Hour) // 200
		f.expectGet(0, "", 0)          // 300
		f.expectGet(0, "", 0)          // 400
		f.expectGet(2, "c", time.Hour) // 500
		ctx, cancel := context.WithTimeout(t.Context(), 550*time.Millisecond)
		defer cancel()
		start := time.Now()
		type seen struct {
			at   time.Duration
			info LeaderInfo
		}
		var got []seen
		for l := range f.e.Observe(ctx) {
			got = append(got, seen{time.Since(start), l})
		}
		want := []struct {
			at          time.Duration
			term        int64
			value       string
			hasIdentity bool
		}{{0, 1, "a", true}, {200 * time.Millisecond, 1, "b", true}, {300 * time.Millisecond, 0, "", false}, {500 * time.Millisecond, 2, "c", true}}
		if len(got) != len(want) {
			t.Fatalf("observed %+v, want %d changes", got, len(want))
		}
		for i, w := range want {
			g := got[i]
			if g.at != w.at || g.info.Term != w.term || g.info.Value != w.value || (g.info.Identity != "") != w.hasIdentity {
				t.Errorf("change %d: %+v, want at %v term %d value %q", i, g, w.at, w.term, w.value)
			}
		}
	})
}

// TestElectionRunCallbacks: Run calls OnStartedLeading with the term's context, then OnStoppedLeading,
// and campaigns again after a poll interval; when its context ends it resigns and returns the context's
// error after the callbacks have returned.
func TestElectionRunCallbacks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newElectionFixture(t, nil, WithElectionPollInterval(time.Second))
		f.expectGet(0, "", 0)
		f.expectAcquire(1)
		f.expectRelease(1)
		f.expectGet(0, "", 0) // after a poll interval
		f.expectAcquire(2)
		f.expectRelease(1)
		ctx, cancel := context.WithCancel(t.Context())
		var events []string
		var terms []int64
		err := f.e.Run(ctx, "me", Callbacks{
			OnStartedLeading: func(lctx context.Context) {
				events = append(events, "started")
				terms = append(terms, f.e.Term())
				if len(terms) == 1 {
					time.Sleep(100 * time.Millisecond) // the work ends by itself: the term ends
					return
				}
				cancel()
				<-lctx.Done()
			},
			OnStoppedLeading: func() { events = append(events, "stopped") },
		})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want the context's error", err)
		}
		if strings.Join(events, ",") != "started,stopped,started,stopped" || len(terms) != 2 || terms[0] != 1 || terms[1] != 2 {
			t.Errorf("events %v, terms %v", events, terms)
		}
		if f.e.IsLeader() {
			t.Error("still leader after Run")
		}
	})
}

// TestElectionRunWithoutReleaseOnCancel: with WithReleaseOnCancel(false), the end of Run's context ends the
// term without a release (sqlmock would refuse it, and the refusal would be logged): the lease runs out.
func TestElectionRunWithoutReleaseOnCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log countingLogger
		f := newElectionFixture(t, nil, WithReleaseOnCancel(false), WithElectionLogger(&log))
		f.expectGet(0, "", 0)
		f.expectAcquire(1)
		ctx, cancel := context.WithCancel(t.Context())
		var stopped bool
		err := f.e.Run(ctx, "me", Callbacks{
			OnStartedLeading: func(lctx context.Context) {
				cancel()
				<-lctx.Done()
			},
			OnStoppedLeading: func() { stopped = true },
		})
		if !errors.Is(err, context.Canceled) || !stopped {
			t.Errorf("Run = %v, OnStoppedLeading called %v", err, stopped)
		}
		if n := log.n.Load(); n != 0 {
			t.Errorf("%d errors logged: a release was sent", n)
		}
		if f.e.IsLeader() {
			t.Error("still leader after Run")
		}
	})
}

// TestElectionRunReadsOnce: a standby of Run with OnNewLeader sends one read per poll interval, not one for
// the observer and one for the campaign (sqlmock refuses a fifth read, and the refusal would be logged),
// and OnNewLeader reports the leader it read.
func TestElectionRunReadsOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log countingLogger
		f := newElectionFixture(t, nil, WithElectionPollInterval(time.Second), WithElectionLogger(&log))
		for range 4 { // at 0, 1, 2 and 3 s
			f.expectGet(3, "other", time.Hour)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 3500*time.Millisecond)
		defer cancel()
		var leaders []LeaderInfo
		err := f.e.Run(ctx, "me", Callbacks{OnNewLeader: func(l LeaderInfo) { leaders = append(leaders, l) }})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Run = %v, want the deadline", err)
		}
		if n := log.n.Load(); n != 0 {
			t.Errorf("%d errors logged", n)
		}
		if len(leaders) != 1 || leaders[0].Term != 3 || leaders[0].Value != "other" {
			t.Errorf("OnNewLeader saw %+v, want term 3 once", leaders)
		}
	})
}

// TestElectionRunTakesOverFromObserverRead: Run's campaign takes the lock after the observer's read finds
// it free, without a read of its own, and reports its own term to OnNewLeader.
func TestElectionRunTakesOverFromObserverRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newElectionFixture(t, nil, WithElectionPollInterval(time.Second))
		f.expectGet(3, "other", 500*time.Millisecond) // at 0: sleep until the lease's end
		f.expectGet(0, "", 0)                         // at 0.501 s
		f.expectAcquire(4)
		f.expectGet(4, "me", 15*time.Second) // at 1.501 s: a poll interval after the free read
		f.expectRelease(1)
		ctx, cancel := context.WithCancel(t.Context())
		var leaders []int64
		var started time.Duration
		begin := time.Now()
		err := f.e.Run(ctx, "me", Callbacks{
			OnStartedLeading: func(lctx context.Context) {
				started = time.Since(begin)
				time.Sleep(1200 * time.Millisecond)
				cancel()
				<-lctx.Done()
			},
			OnNewLeader: func(l LeaderInfo) { leaders = append(leaders, l.Term) },
		})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v", err)
		}
		if started != 501*time.Millisecond {
			t.Errorf("led after %v, want 0.501 s", started)
		}
		if !slices.Equal(leaders, []int64{3, 4}) {
			t.Errorf("OnNewLeader saw terms %v, want [3 4]", leaders)
		}
	})
}

// TestElectionObserveLatestOnly: a receiver that is not ready is offered the latest change, not the ones
// read while it was busy; a term read after "no leader" that is older than one seen is never sent.
func TestElectionObserveLatestOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newElectionFixture(t, nil, WithElectionPollInterval(100*time.Millisecond))
		f.expectGet(5, "a", time.Hour) // 0 ms
		f.expectGet(6, "b", time.Hour) // 100
		f.expectGet(7, "c", time.Hour) // 200
		f.expectGet(0, "", 0)          // 300
		f.expectGet(6, "b", time.Hour) // 400: older than 7
		f.expectGet(8, "d", time.Hour) // 500
		ctx, cancel := context.WithTimeout(t.Context(), 550*time.Millisecond)
		defer cancel()
		ch := f.e.Observe(ctx)
		var got []int64
		first := <-ch
		got = append(got, first.Term)
		time.Sleep(250 * time.Millisecond) // terms 6 and 7 are read meanwhile
		for l := range ch {
			got = append(got, l.Term)
		}
		if want := []int64{5, 7, 0, 8}; !slices.Equal(got, want) {
			t.Errorf("observed terms %v, want %v", got, want)
		}
	})
}

// TestElectionPushSleepsUntilLeaseEnd: with a listening Notifier a standby and an observer do not poll while
// a leader's lease runs: they read at its end, or every half of the TTL if that is sooner (for releases
// that publish nothing); sqlmock refuses any other read.
func TestElectionPushSleepsUntilLeaseEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newElectionFixture(t, []DBManagerOption{WithNotifier(&fakeNotifier{})},
			WithElectionPollInterval(time.Second), WithElectionTTL(40*time.Second))
		f.expectGet(3, "other", 8*time.Second)
		ctx, cancel := context.WithTimeout(t.Context(), 7900*time.Millisecond)
		defer cancel()
		if err := f.e.Campaign(ctx, "me"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Campaign = %v, want the deadline", err)
		}
		for range 2 { // at 0 and 20 s: half the TTL
			f.expectGet(3, "other", time.Hour)
		}
		ctx, cancel = context.WithTimeout(t.Context(), 25*time.Second)
		defer cancel()
		if err := f.e.Campaign(ctx, "me"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Campaign = %v, want the deadline", err)
		}
		f.expectGet(3, "other", 8*time.Second)
		f.expectGet(0, "", 0) // at 8.001 s
		obsCtx, stop := context.WithTimeout(t.Context(), 8500*time.Millisecond)
		defer stop()
		start := time.Now()
		var terms []int64
		var at []time.Duration
		for l := range f.e.Observe(obsCtx) {
			terms, at = append(terms, l.Term), append(at, time.Since(start))
		}
		if !slices.Equal(terms, []int64{3, 0}) || at[1] != 8001*time.Millisecond {
			t.Errorf("observed terms %v at %v, want [3 0], the second at 8.001 s", terms, at)
		}
	})
}

// TestElectionProclaimNotifies: through a manager with a Notifier, a proclaim is the statement that also
// publishes the election's proclaim notice on the channel when the value changed; one that finds no lease
// ends the term.
func TestElectionProclaimNotifies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := &fakeNotifier{}
		f := newElectionFixture(t, []DBManagerOption{WithNotifier(n)})
		f.expectGet(0, "", 0)
		f.expectAcquire(9)
		if err := f.e.Campaign(t.Context(), "v1"); err != nil {
			t.Fatal(err)
		}
		notice := "leader\x1fproclaimed" // not the lock's key: standbys sleep on
		f.mock.ExpectQuery(f.m.q.proclaimNotify).WithArgs([]byte("v2"), "leader", sqlmock.AnyArg(), n.Channel(), notice, true).
			WillReturnRows(sqlmock.NewRows([]string{"notified"}).AddRow(""))
		if err := f.e.Proclaim(t.Context(), "v2"); err != nil {
			t.Fatal(err)
		}
		// The same value again publishes nothing.
		f.mock.ExpectQuery(f.m.q.proclaimNotify).WithArgs([]byte("v2"), "leader", sqlmock.AnyArg(), n.Channel(), notice, false).
			WillReturnRows(sqlmock.NewRows([]string{"notified"}).AddRow(nil))
		if err := f.e.Proclaim(t.Context(), "v2"); err != nil {
			t.Fatal(err)
		}
		// A proclaim that failed may have committed: the next one publishes, even of the value kept.
		f.mock.ExpectQuery(f.m.q.proclaimNotify).WithArgs([]byte("v9"), "leader", sqlmock.AnyArg(), n.Channel(), notice, true).
			WillReturnError(errors.New("connection reset"))
		if err := f.e.Proclaim(t.Context(), "v9"); err == nil {
			t.Fatal("a failed proclaim returned nil")
		}
		f.mock.ExpectQuery(f.m.q.proclaimNotify).WithArgs([]byte("v2"), "leader", sqlmock.AnyArg(), n.Channel(), notice, true).
			WillReturnRows(sqlmock.NewRows([]string{"notified"}).AddRow(""))
		if err := f.e.Proclaim(t.Context(), "v2"); err != nil {
			t.Fatal(err)
		}
		f.mock.ExpectQuery(f.m.q.proclaimNotify).WithArgs([]byte("v3"), "leader", sqlmock.AnyArg(), n.Channel(), notice, true).
			WillReturnRows(sqlmock.NewRows([]string{"notified"}))
		if err := f.e.Proclaim(t.Context(), "v3"); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("Proclaim on a lost lease = %v, want ErrNotLeader", err)
		}
		if cause := context.Cause(f.e.Context()); !errors.Is(cause, ErrLockLost) {
			t.Errorf("the term's context has cause %v, want ErrLockLost", cause)
		}
		f.expectRelease(0)
		_ = f.e.Resign(t.Context())
	})
}

// TestElectionProclaimDoesNotBlockTerm: while a proclaim waits for the database, the term's methods answer
// at once.
func TestElectionProclaimDoesNotBlockTerm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newLeaderFixture(t)
		f.mock.ExpectExec(f.m.q.proclaim).WillDelayFor(time.Hour).WillReturnResult(sqlmock.NewResult(0, 1))
		pctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- f.e.Proclaim(pctx, "v2") }()
		synctest.Wait()
		start := time.Now()
		if !f.e.IsLeader() || f.e.Term() != 9 || f.e.Context().Err() != nil {
			t.Errorf("during a proclaim: leader %v, term %d", f.e.IsLeader(), f.e.Term())
		}
		if took := time.Since(start); took != 0 {
			t.Errorf("the term's methods waited %v for the proclaim", took)
		}
		cancel()
		if err := <-done; err == nil {
			t.Error("a proclaim cut off by its context returned nil")
		}
		f.expectRelease(1)
		if err := f.e.Resign(t.Context()); err != nil {
			t.Errorf("Resign = %v", err)
		}
	})
}

// TestElectionRunRefusedReadsItself: when Run's campaign is refused after its observer read the lock free,
// it reads once itself after a hand-over grace and, finding the lock held, goes back to the observer's
// reads (sqlmock refuses any other statement, and the refusal would be logged).
func TestElectionRunRefusedReadsItself(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log countingLogger
		f := newElectionFixture(t, nil, WithElectionPollInterval(time.Second), WithElectionLogger(&log))
		f.expectGet(0, "", 0)                                                                // the observer, at 0
		f.mock.ExpectQuery(f.m.q.acquire).WillReturnRows(sqlmock.NewRows([]string{"fence"})) // refused
		f.expectGet(5, "other", time.Hour)                                                   // the campaign, a grace later
		f.expectGet(5, "other", time.Hour)                                                   // the observer, a poll after its first read
		ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
		defer cancel()
		var leaders []int64
		err := f.e.Run(ctx, "me", Callbacks{OnNewLeader: func(l LeaderInfo) { leaders = append(leaders, l.Term) }})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Run = %v, want the deadline", err)
		}
		if n := log.n.Load(); n != 0 {
			t.Errorf("%d errors logged", n)
		}
		if !slices.Equal(leaders, []int64{5}) {
			t.Errorf("OnNewLeader saw terms %v, want [5]", leaders)
		}
	})
}

// TestElectionRunWokenByRelease: a release through the same manager wakes Run's campaign at once, though
// the observer reads for it and would read again only after its 10 s poll interval.
func TestElectionRunWokenByRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newElectionFixture(t, nil, WithElectionPollInterval(10*time.Second))
		f.expectGet(3, "other", time.Hour) // the observer, at 0
		f.expectGet(0, "", 0)              // the campaign, woken at 1 s
		f.expectAcquire(4)
		f.expectRelease(1)
		go func() {
			time.Sleep(time.Second)
			f.m.waiters.wake("leader") // what a release through f.m does
		}()
		ctx, cancel := context.WithCancel(t.Context())
		var led time.Duration
		start := time.Now()
		err := f.e.Run(ctx, "me", Callbacks{
			OnStartedLeading: func(lctx context.Context) {
				led = time.Since(start)
				cancel()
				<-lctx.Done()
			},
			OnNewLeader: func(LeaderInfo) {},
		})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v", err)
		}
		if led != time.Second {
			t.Errorf("led after %v, want 1 s (the wake)", led)
		}
	})
}

// TestElectionProclaimNoticeWakesObserversOnly: a proclaim's notice wakes an observer, which reads the new
// value at once, and not a standby (sqlmock refuses a read the standby would send).
func TestElectionProclaimNoticeWakesObserversOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := &fakeNotifier{}
		f := newElectionFixture(t, []DBManagerOption{WithNotifier(n)}, WithElectionPollInterval(10*time.Second))
		f.expectGet(3, "a", time.Hour) // the standby, at 0
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		go func() {
			time.Sleep(time.Second)
			n.notify(proclaimNotice("leader"))
		}()
		if err := f.e.Campaign(ctx, "me"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Campaign = %v, want the deadline", err)
		}
		f.expectGet(3, "a", time.Hour) // the observer, at 5 s
		f.expectGet(3, "b", time.Hour) // at 6 s, on the proclaim's notice
		obsCtx, stop := context.WithTimeout(t.Context(), 1500*time.Millisecond)
		defer stop()
		start := time.Now()
		go func() {
			time.Sleep(time.Second)
			n.notify(proclaimNotice("leader"))
		}()
		var values []string
		var at []time.Duration
		for l := range f.e.Observe(obsCtx) {
			values, at = append(values, l.Value), append(at, time.Since(start))
		}
		if !slices.Equal(values, []string{"a", "b"}) || at[1] != time.Second {
			t.Errorf("observed %v at %v, want [a b], b at 1 s", values, at)
		}
	})
}

// TestElectionObserveNoticeWhileNotListening: a notice that arrives while the Notifier reports that it does
// not listen (a reconnect's notice to every subscriber comes just before it listens again) still wakes an
// observer, which then reads at once instead of at its next poll.
func TestElectionObserveNoticeWhileNotListening(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := &fakeNotifier{deaf: true}
		f := newElectionFixture(t, []DBManagerOption{WithNotifier(n)}, WithElectionPollInterval(10*time.Second))
		f.expectGet(3, "a", time.Hour) // at 0
		f.expectGet(4, "b", time.Hour) // at 1 s, on the notice
		ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
		defer cancel()
		go func() {
			time.Sleep(time.Second)
			n.notify("leader")
		}()
		start := time.Now()
		var terms []int64
		var at []time.Duration
		for l := range f.e.Observe(ctx) {
			terms, at = append(terms, l.Term), append(at, time.Since(start))
		}
		if !slices.Equal(terms, []int64{3, 4}) || at[1] != time.Second {
			t.Errorf("observed terms %v at %v, want [3 4], 4 at 1 s", terms, at)
		}
	})
}

// TestReleaseWithTokenPublishes: an operator's release through a manager with a Notifier publishes the key
// whoever waits, since it may end an election's term, whose standbys wait without tickets.
func TestReleaseWithTokenPublishes(t *testing.T) {
	db, mock := unitMock(t)
	n := &fakeNotifier{}
	m, err := NewDBManager(DialectPgx, WithNotifier(n))
	if err != nil {
		t.Fatal(err)
	}
	mock.ExpectQuery(m.q.releaseNotify).WithArgs("leader", "tok", int64(0), true, n.Channel(), true).
		WillReturnRows(sqlmock.NewRows([]string{"notified", "queued"}).AddRow("", false))
	if err := m.ReleaseWithToken(t.Context(), db, "leader", "tok"); err != nil {
		t.Fatal(err)
	}
}

// newLeaderFixture is an election fixture whose candidate leads term 9 with value "v1".
func newLeaderFixture(t *testing.T) *electionFixture {
	f := newElectionFixture(t, nil)
	f.expectGet(0, "", 0)
	f.expectAcquire(9)
	if err := f.e.Campaign(t.Context(), "v1"); err != nil {
		t.Fatal(err)
	}
	return f
}

// newRunFixture is an election fixture whose Run wins term 1 at once and frees it once.
func newRunFixture(t *testing.T) *electionFixture {
	f := newElectionFixture(t, nil, WithElectionPollInterval(time.Second))
	f.expectGet(0, "", 0)
	f.expectAcquire(1)
	f.expectRelease(1)
	return f
}

// TestElectionResignDuringRun: Resign, even from OnStartedLeading, ends the term's context at once, and
// Run frees the lock only once the callback has returned, so no standby leads while it still works.
func TestElectionResignDuringRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newRunFixture(t)
		ctx, cancel := context.WithCancel(t.Context())
		err := f.e.Run(ctx, "me", Callbacks{
			OnStartedLeading: func(lctx context.Context) {
				if err := f.e.Resign(context.Background()); err != nil {
					t.Errorf("Resign = %v", err)
				}
				if lctx.Err() == nil || f.e.Context().Err() == nil || f.e.IsLeader() || f.e.Term() != 0 {
					t.Errorf("after Resign: callback's context %v, Context %v, IsLeader %t, Term %d; want ended, not leading",
						lctx.Err(), f.e.Context().Err(), f.e.IsLeader(), f.e.Term())
				}
				if err := f.e.Proclaim(context.Background(), "v"); !errors.Is(err, ErrNotLeader) {
					t.Errorf("Proclaim after Resign = %v, want ErrNotLeader", err)
				}
				time.Sleep(100 * time.Millisecond) // winding down
				if f.mock.ExpectationsWereMet() == nil {
					t.Error("the lock was released while OnStartedLeading still ran")
				}
				cancel()
			},
		})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want the context's error", err)
		}
	})
}

// TestElectionRunOnce: a second Run of one Election while the first has not returned is refused.
func TestElectionRunOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newRunFixture(t)
		ctx, cancel := context.WithCancel(t.Context())
		started := make(chan struct{})
		done := make(chan error)
		go func() {
			done <- f.e.Run(ctx, "a", Callbacks{OnStartedLeading: func(lctx context.Context) {
				close(started)
				<-lctx.Done()
			}})
		}()
		<-started
		if err := f.e.Run(ctx, "b", Callbacks{OnStartedLeading: func(context.Context) { t.Error("second Run leads") }}); !errors.Is(err, ErrAlreadyRunning) {
			t.Errorf("second Run = %v, want ErrAlreadyRunning", err)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("first Run = %v", err)
		}
	})
}

// TestElectionProclaimFindsLoss: a Proclaim that finds the term's lease gone records the loss: the term's
// context ends with ErrLockLost and Resign reports it, as after a failed extend.
func TestElectionProclaimFindsLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newLeaderFixture(t)
		f.mock.ExpectExec(f.m.q.proclaim).WithArgs([]byte("v2"), "leader", sqlmock.AnyArg()).WillReturnResult(sqlmock.NewResult(0, 0))
		if err := f.e.Proclaim(t.Context(), "v2"); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("Proclaim on a lost lease = %v, want ErrNotLeader", err)
		}
		if f.e.IsLeader() {
			t.Error("still leader")
		}
		f.expectRelease(0)
		if err := f.e.Resign(t.Context()); !errors.Is(err, ErrLockLost) {
			t.Errorf("Resign after the loss = %v, want ErrLockLost", err)
		}
	})
}

// TestElectionCampaignUnreadable: a campaign whose reads fail until its context ends reports the context
// and the read's failure, not contention; one that read a leader reports contention.
func TestElectionCampaignUnreadable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newElectionFixture(t, nil, WithElectionPollInterval(5*time.Second))
		f.expectGet(0, "", 0).WillDelayFor(2 * time.Second)
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		err := f.e.Campaign(ctx, "v")
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrLockAlreadyAcquired) {
			t.Errorf("Campaign with its read unanswered = %v, want the deadline and no contention", err)
		}

		f.expectGet(3, "other", time.Minute)
		ctx, cancel = context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if err := f.e.Campaign(ctx, "v"); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrLockAlreadyAcquired) {
			t.Errorf("Campaign against a leader = %v, want the deadline and contention", err)
		}
	})
}

// TestElectionResignDuringRunWithoutReleaseOnCancel: a term resigned during Run is released when the
// callback returns even if Run's context ended meanwhile and the election keeps leases on cancel.
func TestElectionResignDuringRunWithoutReleaseOnCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newElectionFixture(t, nil, WithElectionPollInterval(time.Second), WithReleaseOnCancel(false))
		f.expectGet(0, "", 0)
		f.expectAcquire(1)
		f.expectRelease(1) // sqlmock fails the test in its cleanup if it is not sent
		ctx, cancel := context.WithCancel(t.Context())
		err := f.e.Run(ctx, "me", Callbacks{
			OnStartedLeading: func(context.Context) {
				if err := f.e.Resign(context.Background()); err != nil {
					t.Errorf("Resign = %v", err)
				}
				cancel() // shutdown before the callback has returned
			},
		})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want the context's error", err)
		}
	})
}
