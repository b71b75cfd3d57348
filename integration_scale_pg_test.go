package distrlock

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/distrlock/distrlock/internal/stmtcount"
)

// The scale-out tests run on the PostgreSQL topology of scripts/scale/postgres.sh (make scale-test), found
// through the variables its env command prints; each test skips when its variable is unset, even in CI:
//
//	DISTRLOCK_PGBOUNCER_DSN     PgBouncer in pool_mode = transaction in front of the primary
//	DISTRLOCK_PG_PRIMARY_DSN    the primary, direct (for the listener, and as the holder's database)
//	DISTRLOCK_PG_STANDBY_DSN    its synchronous hot standby
//	DISTRLOCK_PG_SCALE_SCRIPT   the script itself; with DISTRLOCK_PG_FAILOVER=1, TestScaleFailover stops
//	                            the primary and promotes the standby (the topology must be rebuilt after it)

// scaleOpen opens the pgx database the variable env names, with extra DSN parameters; it skips the test
// when env is unset, and otherwise as openDB does (scripts/scale-test.sh sets CI=true: a failure).
func scaleOpen(t testing.TB, env, params string) *testDB {
	t.Helper()
	dsn := os.Getenv(env)
	if dsn == "" {
		t.Skipf("%s is unset: run make scale-test", env)
	}
	return openDB(t, env+"?"+params, DialectPgx, "pgx", withParams(dsn, params))
}

// scaleExecModes are pgx's exec modes that work behind PgBouncer's transaction pooling (describe_exec
// does not: it binds to the unnamed statement a previous transaction's connection described).
var scaleExecModes = []string{"exec", "simple_protocol", "cache_describe"}

// scaleStress has 8 goroutines acquire and release a key of their own 25 times each, and counts the
// acquisitions, the errors matching ErrPreparedStatementPooling, the refusals after a failed release of
// the same key (stranded), the other refusals (none can be: every key has one user) and any other error,
// keeping the first of each.
type scaleStress struct {
	acquired, prepared, stranded, contention, other atomic.Int64
	firstPrepared, firstOther                       atomic.Value
}

func (s *scaleStress) run(ctx context.Context, t *testing.T, m *DBManager, db *sql.DB) {
	t.Helper()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			l, err := m.NewLock(ctx, db, fmt.Sprintf("stress-%d", g))
			if err != nil {
				s.note(err, false)
				return
			}
			// A release that failed leaves the key held under the old token until its lease ends: a later
			// refusal is then right, and counted apart.
			stranded := false
			for range 25 {
				if err := l.Acquire(ctx, db, time.Minute); err != nil {
					s.note(err, stranded)
					continue
				}
				s.acquired.Add(1)
				if err := l.Release(ctx, db); err != nil {
					s.note(err, false)
					stranded = true
				}
			}
		})
	}
	wg.Wait()
}

func (s *scaleStress) note(err error, stranded bool) {
	switch {
	case errors.Is(err, ErrLockAlreadyAcquired) && stranded:
		s.stranded.Add(1)
	case errors.Is(err, ErrLockAlreadyAcquired):
		s.contention.Add(1)
	case errors.Is(err, ErrPreparedStatementPooling):
		s.prepared.Add(1)
		s.firstPrepared.CompareAndSwap(nil, err)
	default:
		s.other.Add(1)
		s.firstOther.CompareAndSwap(nil, err)
	}
}

// TestScalePgBouncerStatementCache: behind PgBouncer's transaction pooling, pgx's default statement cache
// fails acquires and releases with SQLSTATE 42P05 or 26000; each such error matches
// ErrPreparedStatementPooling and the driver's error, and none reports contention (a refusal comes only after
// a release that failed so, which leaves the key held).
func TestScalePgBouncerStatementCache(t *testing.T) {
	tdb := scaleOpen(t, "DISTRLOCK_PGBOUNCER_DSN", "")
	ctx := t.Context()
	m := newTestManager(t, tdb)
	var s scaleStress
	s.run(ctx, t, m, tdb.db)
	t.Logf("default statement cache through PgBouncer: %d of 200 acquired, %d prepared-statement errors, "+
		"%d refusals after a failed release, %d other refusals, %d other errors",
		s.acquired.Load(), s.prepared.Load(), s.stranded.Load(), s.contention.Load(), s.other.Load())
	if first := s.firstPrepared.Load(); first != nil {
		t.Logf("first prepared-statement error: %v", first)
		var pgErr *pgconn.PgError
		if err := first.(error); !errors.As(err, &pgErr) || (pgErr.Code != "42P05" && pgErr.Code != "26000") {
			t.Errorf("the error does not wrap the driver's 42P05/26000: %v", err)
		}
	}
	if s.prepared.Load() == 0 || s.contention.Load() != 0 || s.other.Load() != 0 {
		t.Fatalf("want prepared-statement errors only (first other: %v)", s.firstOther.Load())
	}
}

// TestScalePgBouncerExecModes: in each exec mode that works behind PgBouncer's transaction pooling every
// operation works: 200 acquire/release pairs with no error, one statement per operation, four
// DoExclusively whose leases are extended together by the shared heartbeat, a queue of four AcquireWait
// on one key, and an election's hand-over.
func TestScalePgBouncerExecModes(t *testing.T) {
	for _, mode := range scaleExecModes {
		t.Run(mode, func(t *testing.T) {
			tdb := scaleOpen(t, "DISTRLOCK_PGBOUNCER_DSN", "default_query_exec_mode="+mode)
			ctx := t.Context()
			m := newTestManager(t, tdb)

			var s scaleStress
			s.run(ctx, t, m, tdb.db)
			if s.acquired.Load() != 200 || s.prepared.Load()+s.stranded.Load()+s.contention.Load()+s.other.Load() != 0 {
				t.Fatalf("%d of 200 acquired, %d prepared-statement errors, %d contention, %d other (first: %v)",
					s.acquired.Load(), s.prepared.Load(), s.contention.Load(), s.other.Load(), s.firstOther.Load())
			}

			t.Run("statements", func(t *testing.T) { scaleCountStatements(t, tdb, m) })
			t.Run("shared heartbeat", func(t *testing.T) { scaleSharedHeartbeat(t, tdb, m) })
			t.Run("wait queue", func(t *testing.T) { scaleWaitQueue(t, tdb, m) })
			t.Run("election", func(t *testing.T) { scaleElection(t, tdb, m) })
		})
	}
}

// scaleCountStatements checks that acquire, a refused acquire, extend, get and release send one statement
// each, as without PgBouncer (TestStatementsPerOperation).
func scaleCountStatements(t *testing.T, tdb *testDB, m *DBManager) {
	ctx := t.Context()
	var counter stmtcount.Counter
	db, err := stmtcount.Open("pgx", tdb.dsn, &counter)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	a, b := integLock(t, m, db, "count"), integLock(t, m, db, "count")
	one := stmtcount.Counts{Statements: 1}
	steps := []struct {
		what    string
		f       func() error
		wantErr error
	}{
		{"Acquire", func() error { return a.Acquire(ctx, db, time.Minute) }, nil},
		{"refused Acquire", func() error { return b.Acquire(ctx, db, time.Minute) }, ErrLockAlreadyAcquired},
		{"Extend", func() error { return a.Extend(ctx, db) }, nil},
		{"Get", func() error { _, err := m.Get(ctx, db, "count"); return err }, nil},
		{"Release", func() error { return a.Release(ctx, db) }, nil},
	}
	for _, s := range steps {
		before := counter.Counts()
		err := s.f()
		if got := counter.Counts().Sub(before); got != one {
			t.Errorf("%s sent %+v, want %+v", s.what, got, one)
		}
		if !errors.Is(err, s.wantErr) || (s.wantErr == nil) != (err == nil) {
			t.Fatalf("%s: %v, want %v", s.what, err, s.wantErr)
		}
	}
}

// scaleSharedHeartbeat runs four DoExclusively with a 1 s lease for 2.5 s each: their extends go through
// the manager's batcher, and none loses its lease.
func scaleSharedHeartbeat(t *testing.T, tdb *testDB, m *DBManager) {
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := range 4 {
		wg.Go(func() {
			l, err := m.NewLock(ctx, tdb.db, fmt.Sprintf("beat-%d", i))
			if err != nil {
				errs <- err
				return
			}
			errs <- l.DoExclusively(ctx, tdb.db, func(ctx context.Context) error {
				select {
				case <-ctx.Done():
					return context.Cause(ctx)
				case <-time.After(2500 * time.Millisecond):
					return nil
				}
			}, WithLockTTL(time.Second))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("DoExclusively: %v", err)
		}
	}
}

// scaleWaitQueue has four AcquireWait on one key hold it 50 ms each in turn: all four get it, never two at
// once.
func scaleWaitQueue(t *testing.T, tdb *testDB, m *DBManager) {
	ctx := t.Context()
	var inside, overlaps, acquired atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			l, err := m.NewLock(ctx, tdb.db, "queue")
			if err != nil {
				t.Error(err)
				return
			}
			if err := l.AcquireWait(ctx, tdb.db, 10*time.Second, 10*time.Second); err != nil {
				t.Errorf("AcquireWait: %v", err)
				return
			}
			if inside.Add(1) != 1 {
				overlaps.Add(1)
			}
			acquired.Add(1)
			time.Sleep(50 * time.Millisecond)
			inside.Add(-1)
			if err := l.Release(ctx, tdb.db); err != nil {
				t.Errorf("Release: %v", err)
			}
		})
	}
	wg.Wait()
	if acquired.Load() != 4 || overlaps.Load() != 0 {
		t.Fatalf("%d of 4 waiters acquired, %d overlaps", acquired.Load(), overlaps.Load())
	}
}

// scaleElection has a leader campaign, a standby campaign behind it, and the leader resign: the standby
// leads within 2 s.
func scaleElection(t *testing.T, tdb *testDB, m *DBManager) {
	ctx := t.Context()
	leader := newTestElection(t, m, tdb.db, "a", WithElectionTTL(2*time.Second))
	standby := newTestElection(t, electionManager(t, tdb, m), tdb.db, "b", WithElectionTTL(2*time.Second))
	if err := leader.Campaign(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	won := make(chan error, 1)
	go func() { won <- standby.Campaign(ctx, "b") }()
	time.Sleep(200 * time.Millisecond)
	resigned := time.Now()
	if err := leader.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-won:
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("the standby led %v after the leader resigned", time.Since(resigned))
	case <-time.After(2 * time.Second):
		t.Fatal("the standby did not lead within 2 s of the leader's resignation")
	}
	info, err := standby.Leader(ctx)
	if err != nil || info.Value != "b" {
		t.Fatalf("Leader = %+v, %v; want b", info, err)
	}
	if err := standby.Resign(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestScaleStandby: on the hot standby every write returns ErrReadOnly at once, never contention, and no
// release is attempted after it; Get and List read the lock the primary holds.
func TestScaleStandby(t *testing.T) {
	primary := scaleOpen(t, "DISTRLOCK_PG_PRIMARY_DSN", "")
	standby := scaleOpen(t, "DISTRLOCK_PG_STANDBY_DSN", "")
	ctx := t.Context()
	m := newTestManager(t, primary)
	held := integLock(t, m, primary.db, "job")
	integAcquire(ctx, t, held, primary.db, time.Minute)

	// Synchronous replication waits for the standby's flush, not its replay: read until it shows.
	var info LockInfo
	deadline := time.Now().Add(5 * time.Second)
	for {
		var err error
		if info, err = m.Get(ctx, standby.db, "job"); err != nil {
			t.Fatalf("Get on the standby: %v", err)
		}
		if info.Fence == held.Fence() || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !info.Held || info.Token != held.Token() || info.Fence != held.Fence() {
		t.Fatalf("Get on the standby: %+v; want held by %q with fence %d", info, held.Token(), held.Fence())
	}
	list, err := m.List(ctx, standby.db, ListOptions{HeldOnly: true})
	if err != nil || len(list) != 1 || list[0].Key != "job" {
		t.Fatalf("List on the standby: %+v, %v; want job", list, err)
	}

	wantReadOnly := func(what string, start time.Time, err error) {
		t.Helper()
		if !errors.Is(err, ErrReadOnly) || errors.Is(err, ErrLockAlreadyAcquired) || time.Since(start) > time.Second {
			t.Fatalf("%s on the standby: %v after %v; want ErrReadOnly at once, not contention", what, err, time.Since(start))
		}
	}
	l := integLock(t, m, standby.db, "other")
	start := time.Now()
	wantReadOnly("Acquire", start, l.Acquire(ctx, standby.db, time.Minute))
	if l.pending != "" {
		t.Fatal("a refused acquire kept its token for a release")
	}
	start = time.Now()
	wantReadOnly("AcquireWait", start, l.AcquireWait(ctx, standby.db, time.Minute, time.Minute))
	logger := &unitPlainLogger{}
	start = time.Now()
	wantReadOnly("DoExclusively", start, l.DoExclusively(ctx, standby.db, func(context.Context) error {
		t.Error("fn ran")
		return nil
	}, WithWait(time.Minute), WithLogger(logger)))
	start = time.Now()
	_, err = l.Hold(ctx, standby.db, WithLogger(logger))
	wantReadOnly("Hold", start, err)
	if len(logger.messages) != 0 {
		t.Fatalf("DoExclusively and Hold logged %q: a release was attempted", logger.messages)
	}
	// The holder's own statements, sent to the standby by mistake.
	onStandby := *held
	start = time.Now()
	wantReadOnly("Extend", start, onStandby.Extend(ctx, standby.db))
	start = time.Now()
	wantReadOnly("Release", start, onStandby.Release(ctx, standby.db))
	if err := held.Release(ctx, primary.db); err != nil {
		t.Fatal(err)
	}
}

// TestScaleFailover stops the primary under a DoExclusively with a 2 s lease, promotes the standby and
// takes the lock there. The holder's work is cancelled with ErrLockLost before its lease, as the standby
// recorded it, ends; the promoted node keeps synchronous_standby_names, so a write there waits until its
// context ends (contention is never reported); once cleared, the next acquire's fence is larger.
func TestScaleFailover(t *testing.T) {
	script := os.Getenv("DISTRLOCK_PG_SCALE_SCRIPT")
	if os.Getenv("DISTRLOCK_PG_FAILOVER") != "1" || script == "" {
		t.Skip("DISTRLOCK_PG_FAILOVER=1 and DISTRLOCK_PG_SCALE_SCRIPT are unset: make scale-test runs this last")
	}
	primary := scaleOpen(t, "DISTRLOCK_PG_PRIMARY_DSN", "")
	standby := scaleOpen(t, "DISTRLOCK_PG_STANDBY_DSN", "")
	ctx := t.Context()
	// The table is created on the primary and dropped on the node promoted in its place.
	var b [6]byte
	_, _ = rand.Read(b[:])
	m, err := NewDBManager(DialectPgx, WithTableName("distrlock_test_failover_"+hex.EncodeToString(b[:])))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CreateTable(ctx, primary.db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = standby.db.ExecContext(context.Background(), m.DropTableSQL()) })
	run := func(step string) {
		t.Helper()
		out, err := exec.Command(script, step).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", script, step, err, out)
		}
	}

	// A few acquisitions first, so that the fence is not 1.
	warm := integLock(t, m, primary.db, "job")
	for range 3 {
		integAcquire(ctx, t, warm, primary.db, time.Minute)
		if err := warm.Release(ctx, primary.db); err != nil {
			t.Fatal(err)
		}
	}

	const ttl = 2 * time.Second
	holder := integLock(t, m, primary.db, "job")
	started := make(chan int64, 1)
	type ended struct {
		at    time.Time
		cause error
	}
	workEnded := make(chan ended, 1)
	doErr := make(chan error, 1)
	go func() {
		doErr <- holder.DoExclusively(ctx, primary.db, func(ctx context.Context) error {
			started <- holder.Fence()
			<-ctx.Done()
			workEnded <- ended{time.Now(), context.Cause(ctx)}
			return nil
		}, WithLockTTL(ttl), WithReleaseTimeout(500*time.Millisecond))
	}()
	var fence int64
	select {
	case fence = <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("DoExclusively did not start within 5 s")
	}
	time.Sleep(1500 * time.Millisecond) // at least one extend
	stopped := time.Now()
	run("stop-primary")
	var e ended
	select {
	case e = <-workEnded:
	case <-time.After(2 * ttl):
		t.Fatalf("the work was not cancelled within %v of the primary's stop", 2*ttl)
	}
	if !errors.Is(e.cause, ErrLockLost) {
		t.Fatalf("the work's context ended with %v, want ErrLockLost", e.cause)
	}
	if err := <-doErr; !errors.Is(err, ErrLockLost) {
		t.Fatalf("DoExclusively = %v, want ErrLockLost", err)
	}
	// The standby has the lease as the last successful extend left it (same machine, same clock).
	info, err := m.Get(ctx, standby.db, "job")
	if err != nil {
		t.Fatalf("Get on the standby: %v", err)
	}
	t.Logf("fence %d; the work stopped %v after the primary stopped, %v before the lease recorded on the standby ended",
		fence, e.at.Sub(stopped).Round(time.Millisecond), info.ExpiresAt.Sub(e.at).Round(time.Millisecond))
	if !info.Held || info.Fence != fence || !e.at.Before(info.ExpiresAt) {
		t.Fatalf("standby's row %+v: want held with fence %d, expiring after the work stopped at %v", info, fence, e.at)
	}

	run("promote")
	promoted := scaleOpen(t, "DISTRLOCK_PG_STANDBY_DSN", "")
	// The trap: the promoted node waits for a synchronous standby that does not exist.
	trapCtx, cancel := context.WithTimeout(ctx, time.Second)
	err = integLock(t, m, promoted.db, "trap").Acquire(trapCtx, promoted.db, time.Minute)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrLockAlreadyAcquired) {
		t.Fatalf("Acquire on the promoted node that kept synchronous_standby_names: %v, want the deadline", err)
	}
	run("unsync")

	next := integLock(t, m, promoted.db, "job")
	if err := next.AcquireWait(ctx, promoted.db, time.Minute, 2*ttl); err != nil {
		t.Fatalf("AcquireWait on the promoted node: %v", err)
	}
	t.Logf("fence before the failover %d, after %d", fence, next.Fence())
	if next.Fence() <= fence {
		t.Fatalf("fence after the failover %d, want above %d", next.Fence(), fence)
	}
	trap, err := m.Get(ctx, promoted.db, "trap")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the acquire that timed out on the synchronous wait left the trap key held %v (fence %d)", trap.Held, trap.Fence)
	if err := next.Release(ctx, promoted.db); err != nil {
		t.Fatal(err)
	}
}
