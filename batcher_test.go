package distrlock

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/DATA-DOG/go-sqlmock"

	"github.com/distrlock/distrlock/internal/stmtcount"
)

// batchFixture is a manager on a sqlmock database made inside a synctest bubble, for the heartbeats of
// several leases. t0 is the bubble's start.
type batchFixture struct {
	t    *testing.T
	m    *DBManager
	db   *sql.DB
	mock sqlmock.Sqlmock
	t0   time.Time
	log  *countingLogger
}

func newBatchFixture(t *testing.T, d Dialect) *batchFixture {
	t.Helper()
	db, mock := unitMock(t)
	m, err := NewDBManager(d)
	if err != nil {
		t.Fatal(err)
	}
	return &batchFixture{t: t, m: m, db: db, mock: mock, t0: time.Now(), log: &countingLogger{}}
}

// hold takes key (the acquire is mocked) with the TTL and interval given.
func (f *batchFixture) hold(key string, ttl, interval time.Duration) *Lease {
	f.t.Helper()
	f.expected()
	if unitIsMySQL(f.m.Dialect()) {
		f.mock.ExpectExec(f.m.q.acquire).WillReturnResult(sqlmock.NewResult(0, 1))
	} else {
		f.mock.ExpectQuery(f.m.q.acquire).WillReturnRows(sqlmock.NewRows([]string{"fence"}).AddRow(int64(1)))
	}
	lease, err := f.m.Hold(context.Background(), f.db, key, WithLockTTL(ttl), WithPeriodicExtendInterval(interval), WithLogger(f.log))
	if err != nil {
		f.t.Fatalf("hold %s: %v", key, err)
	}
	return lease
}

// expected orders, for the race detector, the expectations registered since the leases started with the
// statements of their heartbeats, which read and update them. The fake clock orders them in fact, but the
// race detector needs a lock: database/sql takes the pool's before and after every statement, and Stats
// takes it here. Call it after registering expectations and before registering more.
func (f *batchFixture) expected() { _ = f.db.Stats() }

// release frees the lease (the release is mocked) and checks what Release returns.
func (f *batchFixture) release(lease *Lease, wantLost bool) {
	f.t.Helper()
	f.expected()
	rows := int64(1)
	if wantLost {
		rows = 0
	}
	f.mock.ExpectExec(f.m.q.release).WithArgs(unitReleaseArgs(f.m.Dialect(), lease.Key(), lease.Token())...).WillReturnResult(sqlmock.NewResult(0, rows))
	err := lease.Release(context.Background())
	if lost := errors.Is(err, ErrLockLost); lost != wantLost || !lost && err != nil {
		f.t.Errorf("Release %s = %v, want lost: %v", lease.Key(), err, wantLost)
	}
}

// at records when statements ran, as time since the fixture's start.
type at struct {
	f     *batchFixture
	mu    sync.Mutex
	times []time.Duration
	seen  map[string]time.Duration // value → last time recorded
}

// arg is a sqlmock argument that matches want and records the time of the match. sqlmock may try an
// argument more than once for one statement when it matches out of order: a value matched again at the
// same instant is recorded once.
func (a *at) arg(want driver.Value) sqlmock.Argument { return atArg{a, want} }

type atArg struct {
	a    *at
	want driver.Value
}

func (m atArg) Match(v driver.Value) bool {
	if v != m.want {
		return false
	}
	m.a.mu.Lock()
	defer m.a.mu.Unlock()
	now, key := time.Since(m.a.f.t0), fmt.Sprint(v)
	if last, ok := m.a.seen[key]; ok && last == now {
		return true
	}
	if m.a.seen == nil {
		m.a.seen = map[string]time.Duration{}
	}
	m.a.seen[key] = now
	m.a.times = append(m.a.times, now)
	return true
}

func (a *at) got() []time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.times)
}

// pairsJSON is the document PostgreSQL's and SQLite's batched extend binds for the leases, in key order.
func pairsJSON(leases ...*Lease) string {
	doc := make([][2]string, len(leases))
	for i, l := range leases {
		doc[i] = [2]string{l.Key(), l.Token()}
	}
	b, _ := json.Marshal(doc)
	return string(b)
}

// pairRows are the (key, token) rows of the leases: what SQLite's batched extend returns for those it
// extended, and MySQL's held check for those it found.
func pairRows(leases ...*Lease) *sqlmock.Rows {
	rows := sqlmock.NewRows([]string{"lock_key", "token"})
	for _, l := range leases {
		rows.AddRow(l.Key(), l.Token())
	}
	return rows
}

// extendedRows are the rows the batched extend of f's dialect returns when it extended the leases: on
// PostgreSQL each with extended true.
func (f *batchFixture) extendedRows(leases ...*Lease) *sqlmock.Rows {
	if !integIsPostgres(f.m.Dialect()) {
		return pairRows(leases...)
	}
	return statusRows(leases, nil)
}

// statusRows are the rows PostgreSQL's batched extend returns when it extended the leases of extended and
// skipped those of skipped, whose rows another transaction held.
func statusRows(extended, skipped []*Lease) *sqlmock.Rows {
	rows := sqlmock.NewRows([]string{"lock_key", "token", "extended"})
	for _, l := range extended {
		rows.AddRow(l.Key(), l.Token(), true)
	}
	for _, l := range skipped {
		rows.AddRow(l.Key(), l.Token(), false)
	}
	return rows
}

// TestBatchedHeartbeatsShareStatements: the heartbeats of leases taken at 0 s, 1 s and 4 s (TTL 10 s, an
// extend every 5 s) are sent together. a and b, due at 5 s and 6 s, share one statement at 5 s; c, due at
// 9 s, takes a and b along (due at 10 s), and from then on one statement at 14 s extends all three: three
// statements where one per lease would have sent seven. Every goroutine is gone once the leases are released.
func TestBatchedHeartbeatsShareStatements(t *testing.T) {
	for _, d := range []Dialect{DialectPgx, DialectSQLite} {
		t.Run(string(d), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newBatchFixture(t, d)
				const ttl, interval = 10 * time.Second, 5 * time.Second
				synctest.Wait()
				before := runtime.NumGoroutine()

				a := f.hold("a", ttl, interval)
				time.Sleep(time.Second)
				b := f.hold("b", ttl, interval)
				time.Sleep(3 * time.Second)
				c := f.hold("c", ttl, interval)
				when := &at{f: f}
				f.mock.ExpectQuery(f.m.q.extendBatch).WithArgs(ttl.Microseconds(), when.arg(pairsJSON(a, b))).
					WillReturnRows(f.extendedRows(a, b))
				f.mock.ExpectQuery(f.m.q.extendBatch).WithArgs(ttl.Microseconds(), when.arg(pairsJSON(a, b, c))).
					WillReturnRows(f.extendedRows(a, b, c))
				f.mock.ExpectQuery(f.m.q.extendBatch).WithArgs(ttl.Microseconds(), when.arg(pairsJSON(a, b, c))).
					WillReturnRows(f.extendedRows(a, b, c))
				f.expected()
				time.Sleep(11 * time.Second) // until 15 s
				if got, want := when.got(), []time.Duration{5 * time.Second, 9 * time.Second, 14 * time.Second}; !slices.Equal(got, want) {
					t.Errorf("batched extends at %v, want %v", got, want)
				}
				for _, l := range []*Lease{a, b, c} {
					if err := l.Context().Err(); err != nil {
						t.Errorf("%s: lease context ended: %v", l.Key(), context.Cause(l.Context()))
					}
					f.release(l, false)
				}
				if n := f.log.n.Load(); n != 0 {
					t.Errorf("%d errors logged", n)
				}
				synctest.Wait()
				if after := runtime.NumGoroutine(); after != before {
					t.Errorf("%d goroutines before the leases, %d after they were released", before, after)
				}
			})
		})
	}
}

// TestBatchedHeartbeatLosesOnlyTheMissingLock: when the batched extend does not return one of its locks,
// that lease ends at once with ErrLockLost (and ErrLockAlreadyReleased), and the other goes on, alone on
// DBLock.Extend's statement.
func TestBatchedHeartbeatLosesOnlyTheMissingLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newBatchFixture(t, DialectPgx)
		const ttl, interval = 10 * time.Second, 5 * time.Second
		a := f.hold("a", ttl, interval)
		b := f.hold("b", ttl, interval)
		when := &at{f: f}
		f.mock.ExpectQuery(f.m.q.extendBatch).WithArgs(ttl.Microseconds(), when.arg(pairsJSON(a, b))).WillReturnRows(f.extendedRows(a))
		f.mock.ExpectExec(f.m.q.extend).WithArgs(ttl.Microseconds(), "a", a.Token()).WillReturnResult(sqlmock.NewResult(0, 1))
		f.expected()
		time.Sleep(5*time.Second + time.Millisecond)
		if cause := context.Cause(b.Context()); !errors.Is(cause, ErrLockLost) || !errors.Is(cause, ErrLockAlreadyReleased) {
			t.Fatalf("b's cause just after the batch: %v, want ErrLockLost and ErrLockAlreadyReleased", cause)
		}
		time.Sleep(6 * time.Second) // a's single extend at 10 s
		if err := a.Context().Err(); err != nil {
			t.Fatalf("a: lease context ended: %v", context.Cause(a.Context()))
		}
		if got := when.got(); !slices.Equal(got, []time.Duration{5 * time.Second}) {
			t.Errorf("batched extends at %v, want [5s]", got)
		}
		f.release(a, false)
		f.release(b, true)
	})
}

// TestBatchedHeartbeatSkippedLockGoesAlone: PostgreSQL's batched extend skips a row another transaction
// holds and says so; that lock (k) is extended at once alone, on DBLock.Extend's statement, while a and b
// keep the batched extend's answer. When k's statement extends it, all three share the next statement, at
// 10 s; when it finds k released, k's lease ends with ErrLockAlreadyReleased; when it waits for the row
// until its attempt ends (at 7 s, half the 4 s left before 9 s), k retries alone a pause later and its lease
// counts as lost at 9 s, without a sign that it was released. a and b are never sent alone.
func TestBatchedHeartbeatSkippedLockGoesAlone(t *testing.T) {
	for _, tc := range []struct {
		name     string
		single   func(e *sqlmock.ExpectedExec)
		singleAt []time.Duration // when k's own statements go
		kHeld    bool            // k keeps its lease
		released bool            // k's lease ends with ErrLockAlreadyReleased
		logged   int64
	}{
		{"extended", func(e *sqlmock.ExpectedExec) { e.WillReturnResult(sqlmock.NewResult(0, 1)) },
			[]time.Duration{5 * time.Second}, true, false, 0},
		{"released", func(e *sqlmock.ExpectedExec) { e.WillReturnResult(sqlmock.NewResult(0, 0)) },
			[]time.Duration{5 * time.Second}, false, true, 0},
		{"blocked", func(e *sqlmock.ExpectedExec) { e.WillDelayFor(time.Hour).WillReturnResult(sqlmock.NewResult(0, 1)) },
			[]time.Duration{5 * time.Second, 8 * time.Second}, false, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newBatchFixture(t, DialectPgx)
				const ttl, interval = 10 * time.Second, 5 * time.Second // trusted until 9 s
				us := ttl.Microseconds()
				a, b, k := f.hold("a", ttl, interval), f.hold("b", ttl, interval), f.hold("k", ttl, interval)
				next := []*Lease{a, b}
				if tc.kHeld {
					next = append(next, k)
				}
				// Registered before the first extend, as a hanging statement reads them; k's statement runs
				// while the batch's result is read, so out of order.
				f.mock.MatchExpectationsInOrder(false)
				batched, single := &at{f: f}, &at{f: f}
				f.mock.ExpectQuery(f.m.q.extendBatch).WithArgs(us, batched.arg(pairsJSON(a, b, k))).
					WillReturnRows(statusRows([]*Lease{a, b}, []*Lease{k}))
				for range tc.singleAt {
					tc.single(f.mock.ExpectExec(f.m.q.extend).WithArgs(us, single.arg("k"), k.Token()))
				}
				f.mock.ExpectQuery(f.m.q.extendBatch).WithArgs(us, batched.arg(pairsJSON(next...))).WillReturnRows(f.extendedRows(next...))
				for _, l := range next {
					f.mock.ExpectExec(f.m.q.release).WithArgs(unitReleaseArgs(f.m.Dialect(), l.Key(), l.Token())...).WillReturnResult(sqlmock.NewResult(0, 1))
				}
				f.expected()
				time.Sleep(10*time.Second + time.Second/2)
				if got, want := batched.got(), []time.Duration{5 * time.Second, 10 * time.Second}; !slices.Equal(got, want) {
					t.Errorf("batched extends at %v, want %v", got, want)
				}
				if got := single.got(); !slices.Equal(got, tc.singleAt) {
					t.Errorf("k's own extends at %v, want %v", got, tc.singleAt)
				}
				if n := f.log.n.Load(); n != tc.logged {
					t.Errorf("%d failures logged, want %d", n, tc.logged)
				}
				for _, l := range next {
					if err := l.Context().Err(); err != nil {
						t.Errorf("%s: lease context ended: %v", l.Key(), context.Cause(l.Context()))
					}
					if err := l.Release(context.Background()); err != nil {
						t.Errorf("release %s: %v", l.Key(), err)
					}
				}
				if !tc.kHeld {
					cause := context.Cause(k.Context())
					if !errors.Is(cause, ErrLockLost) || errors.Is(cause, ErrLockAlreadyReleased) != tc.released {
						t.Errorf("k: cause %v, want ErrLockLost, and ErrLockAlreadyReleased: %v", cause, tc.released)
					}
					if err := k.Release(context.Background()); !errors.Is(err, ErrLockLost) {
						t.Errorf("release k: %v, want ErrLockLost", err)
					}
				}
			})
		})
	}
}

// TestExtendBatchPostgres: PostgreSQL's batched extend binds the TTL and the pairs as one JSON document, and
// reads a row per pair it extended (true) or skipped because its row was locked (false); a pair it does not
// return is absent from the answer.
func TestExtendBatchPostgres(t *testing.T) {
	db, mock := unitMock(t)
	m, err := NewDBManager(DialectPgx)
	if err != nil {
		t.Fatal(err)
	}
	pairs := []lockPair{{"a", "ta"}, {"b", "tb"}, {"c", "tc"}}
	mock.ExpectQuery(m.q.extendBatch).WithArgs(int64(2_000_000), `[["a","ta"],["b","tb"],["c","tc"]]`).
		WillReturnRows(sqlmock.NewRows([]string{"lock_key", "token", "extended"}).AddRow("a", "ta", true).AddRow("b", "tb", false))
	got, err := m.spec.extendBatch(context.Background(), db, &m.q, 2_000_000, pairs)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[lockPair]bool{{"a", "ta"}: true, {"b", "tb"}: false}; !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestBatchedHeartbeatRetries: when a batched extend fails, or hangs and is given up after half the time
// left as a single extend is, each lease retries alone a retry pause later (a quarter of the interval, at
// most 1 s), so that a lock whose row is blocked (here k, in the "blocked" case, whose retry hangs too)
// costs only its own lease; the others go on and share a statement again at their next extend. Each
// failure is logged once per lease.
func TestBatchedHeartbeatRetries(t *testing.T) {
	reset := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	for _, tc := range []struct {
		name    string
		fail    func(e *sqlmock.ExpectedQuery)
		retry   time.Duration // when the single retries go
		kBlocks bool          // k's retry hangs too
		logged  int64
	}{
		// Fails at 5 s, retried at 6 s; all three share the statement again at 11 s.
		{"error", func(e *sqlmock.ExpectedQuery) { e.WillReturnError(reset) }, 6 * time.Second, false, 3},
		// Sent at 5 s, given up at 7 s (half of the 4 s left before 9 s), retried at 8 s; k's retry hangs to
		// 9 s, where k's lease counts as lost; a and b share a statement again at 13 s.
		{"blocked", func(e *sqlmock.ExpectedQuery) { e.WillDelayFor(time.Hour).WillReturnRows(sqlmock.NewRows(nil)) }, 8 * time.Second, true, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newBatchFixture(t, DialectPgx)
				const ttl, interval = 10 * time.Second, 5 * time.Second // trusted until 9 s
				us := ttl.Microseconds()
				a, b, k := f.hold("a", ttl, interval), f.hold("b", ttl, interval), f.hold("k", ttl, interval)
				rest := []*Lease{a, b, k}
				if tc.kBlocks {
					rest = rest[:2]
				}
				again := tc.retry + interval
				// Every expectation is registered now, before the first extend: sqlmock's are not safe to
				// change while a statement that reads them hangs. The retries run at once, so out of order.
				f.mock.MatchExpectationsInOrder(false)
				batched, single := &at{f: f}, &at{f: f}
				tc.fail(f.mock.ExpectQuery(f.m.q.extendBatch).WithArgs(us, batched.arg(pairsJSON(a, b, k))))
				for _, l := range []*Lease{a, b, k} {
					e := f.mock.ExpectExec(f.m.q.extend).WithArgs(us, single.arg(l.Key()), l.Token())
					if l == k && tc.kBlocks {
						e.WillDelayFor(time.Hour).WillReturnResult(sqlmock.NewResult(0, 1))
					} else {
						e.WillReturnResult(sqlmock.NewResult(0, 1))
					}
				}
				f.mock.ExpectQuery(f.m.q.extendBatch).WithArgs(us, batched.arg(pairsJSON(rest...))).WillReturnRows(f.extendedRows(rest...))
				for _, l := range []*Lease{a, b, k} {
					f.mock.ExpectExec(f.m.q.release).WithArgs(unitReleaseArgs(f.m.Dialect(), l.Key(), l.Token())...).WillReturnResult(sqlmock.NewResult(0, 1))
				}
				f.expected()
				time.Sleep(again + time.Second/2)
				if got, want := batched.got(), []time.Duration{5 * time.Second, again}; !slices.Equal(got, want) {
					t.Errorf("batched extends at %v, want %v", got, want)
				}
				if got, want := single.got(), []time.Duration{tc.retry, tc.retry, tc.retry}; !slices.Equal(got, want) {
					t.Errorf("single retries at %v, want %v", got, want)
				}
				if n := f.log.n.Load(); n != tc.logged {
					t.Errorf("%d failures logged, want %d", n, tc.logged)
				}
				for _, l := range rest {
					if err := l.Context().Err(); err != nil {
						t.Errorf("%s: lease context ended: %v", l.Key(), context.Cause(l.Context()))
					}
					if err := l.Release(context.Background()); err != nil {
						t.Errorf("release %s: %v", l.Key(), err)
					}
				}
				if tc.kBlocks {
					if !errors.Is(context.Cause(k.Context()), ErrLockLost) {
						t.Errorf("k: cause %v, want ErrLockLost", context.Cause(k.Context()))
					}
					if err := k.Release(context.Background()); !errors.Is(err, ErrLockLost) {
						t.Errorf("release k: %v, want ErrLockLost", err)
					}
				}
			})
		})
	}
}

// TestBatchedHeartbeatSlowSuccess: the next extend is due an interval after a batched statement was sent,
// not after it answered: sent at 5 s, answered at 6.5 s, the next goes at 10 s.
func TestBatchedHeartbeatSlowSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newBatchFixture(t, DialectPgx)
		const ttl, interval = 10 * time.Second, 5 * time.Second
		a, b := f.hold("a", ttl, interval), f.hold("b", ttl, interval)
		when := &at{f: f}
		f.mock.ExpectQuery(f.m.q.extendBatch).WithArgs(ttl.Microseconds(), when.arg(pairsJSON(a, b))).
			WillDelayFor(1500 * time.Millisecond).WillReturnRows(f.extendedRows(a, b))
		f.mock.ExpectQuery(f.m.q.extendBatch).WithArgs(ttl.Microseconds(), when.arg(pairsJSON(a, b))).WillReturnRows(f.extendedRows(a, b))
		f.expected()
		time.Sleep(11 * time.Second)
		if got, want := when.got(), []time.Duration{5 * time.Second, 10 * time.Second}; !slices.Equal(got, want) {
			t.Errorf("batched extends at %v, want %v", got, want)
		}
		f.release(a, false)
		f.release(b, false)
	})
}

// TestBatchedHeartbeatIntervalsApart: leases of one TTL but different intervals do not share statements, so
// a lease extended every 5 s is not hurried by one extended every 2 s: its extends stay at 5 s and 10 s.
func TestBatchedHeartbeatIntervalsApart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newBatchFixture(t, DialectPgx)
		const ttl = 10 * time.Second
		slow, fast := f.hold("slow", ttl, 5*time.Second), f.hold("fast", ttl, 2*time.Second)
		slowAt, fastAt := &at{f: f}, &at{f: f}
		f.mock.MatchExpectationsInOrder(false)
		for range 2 {
			f.mock.ExpectExec(f.m.q.extend).WithArgs(ttl.Microseconds(), slowAt.arg("slow"), slow.Token()).WillReturnResult(sqlmock.NewResult(0, 1))
		}
		for range 5 {
			f.mock.ExpectExec(f.m.q.extend).WithArgs(ttl.Microseconds(), fastAt.arg("fast"), fast.Token()).WillReturnResult(sqlmock.NewResult(0, 1))
		}
		f.expected()
		time.Sleep(11 * time.Second)
		f.expected()
		f.mock.MatchExpectationsInOrder(true)
		if got, want := slowAt.got(), []time.Duration{5 * time.Second, 10 * time.Second}; !slices.Equal(got, want) {
			t.Errorf("the 5 s lease extended at %v, want %v", got, want)
		}
		if got, want := fastAt.got(), []time.Duration{2 * time.Second, 4 * time.Second, 6 * time.Second, 8 * time.Second, 10 * time.Second}; !slices.Equal(got, want) {
			t.Errorf("the 2 s lease extended at %v, want %v", got, want)
		}
		f.release(slow, false)
		f.release(fast, false)
	})
}

// TestBatchedHeartbeatMySQL: MySQL's batched extend binds a (?, ?) per lock; when it changes as many rows
// as it names no more is sent, and when it changes fewer a SELECT says which are held.
func TestBatchedHeartbeatMySQL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newBatchFixture(t, DialectMariaDB)
		const ttl, interval = 10 * time.Second, 5 * time.Second
		a := f.hold("a", ttl, interval)
		b := f.hold("b", ttl, interval)
		us := ttl.Microseconds()
		update, held := withPairList(f.m.q.extendBatch, 2), withPairList(f.m.q.extendBatchHeld, 2)
		f.mock.ExpectExec(update).WithArgs(us, us, "a", a.Token(), "b", b.Token()).WillReturnResult(sqlmock.NewResult(0, 2))
		f.mock.ExpectExec(update).WithArgs(us, us, "a", a.Token(), "b", b.Token()).WillReturnResult(sqlmock.NewResult(0, 1))
		f.mock.ExpectQuery(held).WithArgs("a", a.Token(), "b", b.Token(), us).WillReturnRows(pairRows(a))
		// a alone: DBLock.Extend's statement, whose LAST_INSERT_ID says it found the lock.
		f.mock.ExpectExec(f.m.q.extend).WithArgs(us, us, "a", a.Token()).WillReturnResult(sqlmock.NewResult(1, 1))
		f.expected()
		time.Sleep(16 * time.Second)
		if !errors.Is(context.Cause(b.Context()), ErrLockLost) {
			t.Errorf("b: cause %v, want ErrLockLost", context.Cause(b.Context()))
		}
		if err := a.Context().Err(); err != nil {
			t.Errorf("a: lease context ended: %v", context.Cause(a.Context()))
		}
		f.release(a, false)
		f.release(b, true)
	})
}

// TestBatchedHeartbeatSplits: one statement renews one TTL for at most the batcher's limit of locks (2
// here): five leases with one TTL and one with another (and the same interval), all due at 5 s, take two
// batched statements of two, and a single extend each for the fifth and the sixth.
func TestBatchedHeartbeatSplits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newBatchFixture(t, DialectPgx)
		f.mock.MatchExpectationsInOrder(false) // the four statements run at once
		b := f.m.batchers.join(f.m, f.db)
		b.limit = 2
		defer f.m.batchers.leave(b)
		const interval = 5 * time.Second
		var leases []*Lease
		for i := range 5 {
			leases = append(leases, f.hold(fmt.Sprintf("k%d", i), 10*time.Second, interval))
		}
		other := f.hold("other", 20*time.Second, interval)
		us := (10 * time.Second).Microseconds()
		f.mock.ExpectQuery(f.m.q.extendBatch).WithArgs(us, pairsJSON(leases[0], leases[1])).WillReturnRows(f.extendedRows(leases[0], leases[1]))
		f.mock.ExpectQuery(f.m.q.extendBatch).WithArgs(us, pairsJSON(leases[2], leases[3])).WillReturnRows(f.extendedRows(leases[2], leases[3]))
		f.mock.ExpectExec(f.m.q.extend).WithArgs(us, "k4", leases[4].Token()).WillReturnResult(sqlmock.NewResult(0, 1))
		f.mock.ExpectExec(f.m.q.extend).WithArgs((20 * time.Second).Microseconds(), "other", other.Token()).
			WillReturnResult(sqlmock.NewResult(0, 1))
		f.expected()
		time.Sleep(6 * time.Second)
		f.expected()
		f.mock.MatchExpectationsInOrder(true)
		for _, l := range append(leases, other) {
			if err := l.Context().Err(); err != nil {
				t.Errorf("%s: lease context ended: %v", l.Key(), context.Cause(l.Context()))
			}
			f.release(l, false)
		}
	})
}

// TestWithPairList: MySQL's batched statements get one (?, ?) per lock in place of the file's one.
func TestWithPairList(t *testing.T) {
	m, err := NewDBManager(DialectMySQL)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{m.q.extendBatch, m.q.extendBatchHeld} {
		if got := withPairList(q, 1); got != q {
			t.Errorf("one pair changed the statement:\n%s", got)
		}
		got := withPairList(q, 3)
		if want := strings.Replace(q, "((?, ?))", "((?, ?), (?, ?), (?, ?))", 1); got != want {
			t.Errorf("three pairs:\n%s\nwant\n%s", got, want)
		}
		if n := strings.Count(withPairList(q, maxBatch), "?"); n != 2*maxBatch+strings.Count(q, "?")-2 {
			t.Errorf("%d placeholders for %d pairs", n, maxBatch)
		}
	}
}

// TestBatchedHeartbeatsOnDatabases: 40 leases held through one manager on one *sql.DB (TTL 2 s, an extend
// every 500 ms) stay held for 3 s, several TTLs, with batched statements: at most two per interval where
// one per lease would send 240. A lease whose lock is taken from under it (released by its token from
// elsewhere) ends with ErrLockLost, alone: on MySQL that takes the SELECT after a short affected-rows count.
func TestBatchedHeartbeatsOnDatabases(t *testing.T) {
	integEach(t, allDBs(t), func(t *testing.T, tdb *testDB) {
		var counter stmtcount.Counter
		db, err := stmtcount.Open(tdb.driver, tdb.dsn, &counter)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		db.SetMaxOpenConns(4)
		m := newTestManager(t, &testDB{name: tdb.name, dialect: tdb.dialect, driver: tdb.driver, dsn: tdb.dsn, db: db})
		ctx := t.Context()
		const n, ttl, interval, window = 40, 2 * time.Second, 500 * time.Millisecond, 3 * time.Second
		leases := make([]*Lease, n)
		for i := range leases {
			l, err := m.Hold(ctx, db, fmt.Sprintf("batched-%02d", i), WithLockTTL(ttl), WithPeriodicExtendInterval(interval))
			if err != nil {
				t.Fatal(err)
			}
			leases[i] = l
		}
		before := counter.Counts()
		time.Sleep(window)
		got := counter.Counts().Sub(before)
		intervals := int64(window / interval)
		t.Logf("%d leases, %v: %d statements, %d prepares", n, window, got.Statements, got.Prepares)
		if got.Statements < intervals/2 || got.Statements > 2*intervals+2 {
			t.Errorf("%d statements in %v for %d leases extended every %v: want between %d and %d (one per lease would be %d)",
				got.Statements, window, n, interval, intervals/2, 2*intervals+2, n*intervals)
		}
		for _, l := range leases {
			info, err := m.Get(ctx, db, l.Key())
			if err != nil || !info.Held || info.Token != l.Token() || l.Context().Err() != nil {
				t.Fatalf("%s after %v (TTL %v): %+v, %v, lease context %v", l.Key(), window, ttl, info, err, context.Cause(l.Context()))
			}
		}

		victim := leases[7]
		thief := integLock(t, m, db, victim.Key())
		if err := thief.AcquireWithStaticToken(ctx, db, victim.Token(), ttl); err != nil {
			t.Fatal(err)
		}
		if err := thief.Release(ctx, db); err != nil {
			t.Fatal(err)
		}
		select {
		case <-victim.Context().Done():
		case <-time.After(ttl):
			t.Fatal("lease not cancelled after its lock was released underneath")
		}
		if cause := context.Cause(victim.Context()); !errors.Is(cause, ErrLockLost) || !errors.Is(cause, ErrLockAlreadyReleased) {
			t.Errorf("cause %v: want ErrLockLost from the database's answer", cause)
		}
		time.Sleep(2 * interval)
		for _, l := range leases {
			err := l.Release(ctx)
			if l == victim {
				if !errors.Is(err, ErrLockLost) {
					t.Errorf("release of the lost lease: %v, want ErrLockLost", err)
				}
			} else if err != nil {
				t.Errorf("release %s: %v", l.Key(), err)
			}
		}
	})
}
