package distrlock

import (
	"context"
	"testing"
	"time"
)

// The integration tests of Guard, of a lease resumed with a static token and of Keep, on every database.

// integDataTable creates a table next to m's lock table for the data a holder writes, and drops it after
// the test; it returns its name.
func integDataTable(t *testing.T, tdb *testDB, m *DBManager) string {
	t.Helper()
	name := m.table + "_data"
	ctx := context.Background()
	if _, err := tdb.db.ExecContext(ctx, "CREATE TABLE "+name+" (writer VARCHAR(64) NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := tdb.db.ExecContext(context.Background(), "DROP TABLE "+name); err != nil {
			t.Errorf("drop table: %v", err)
		}
	})
	return name
}

// integRows counts the rows of table.
func integRows(t *testing.T, tdb *testDB, table string) int {
	t.Helper()
	var n int
	if err := tdb.db.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestIntegrationGuardHoldsOffCompetitor: a holder (TTL 300 ms) guards its transaction and writes; its lease
// expires before it commits. A competitor's acquire, started once the lease has expired, waits until the
// holder commits (at least the 500 ms the holder keeps the transaction open after the competitor starts) and
// then succeeds with a larger fence; the holder's write is committed.
func TestIntegrationGuardHoldsOffCompetitor(t *testing.T) {
	integEach(t, allDBs(t), func(t *testing.T, tdb *testDB) {
		ctx := t.Context()
		m := newTestManager(t, tdb)
		data := integDataTable(t, tdb, m)
		holder := integLock(t, m, tdb.db, "guarded")
		integAcquire(ctx, t, holder, tdb.db, 300*time.Millisecond)
		expires := time.Now().Add(300 * time.Millisecond)

		tx, err := tdb.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback() }()
		if err := holder.Guard(ctx, tx); err != nil {
			t.Fatalf("guard of a live lease: %v", err)
		}
		if _, err := tx.ExecContext(ctx, integQuery(tdb.dialect, "INSERT INTO "+data+" (writer) VALUES (?)"), "holder"); err != nil {
			t.Fatal(err)
		}
		integSleepUntil(expires.Add(100 * time.Millisecond))

		competitor := integLock(t, m, tdb.db, "guarded")
		type result struct {
			err error
			at  time.Time
		}
		done := make(chan result, 1)
		started := time.Now()
		go func() {
			err := competitor.Acquire(ctx, tdb.db, time.Minute)
			done <- result{err, time.Now()}
		}()
		time.Sleep(500 * time.Millisecond)
		select {
		case r := <-done:
			t.Fatalf("the competitor's acquire returned (%v) after %v, while the guarded transaction was open", r.err, r.at.Sub(started))
		default:
		}
		committed := time.Now()
		if err := tx.Commit(); err != nil {
			t.Fatalf("commit of the guarded transaction: %v", err)
		}
		r := <-done
		if r.err != nil {
			t.Fatalf("the competitor's acquire after the commit: %v", r.err)
		}
		if r.at.Before(committed) {
			t.Fatalf("the competitor's acquire returned before the commit")
		}
		if competitor.Fence() <= holder.Fence() {
			t.Fatalf("competitor fence %d, holder's %d", competitor.Fence(), holder.Fence())
		}
		if n := integRows(t, tdb, data); n != 1 {
			t.Fatalf("%d rows written, want the holder's 1", n)
		}
		t.Logf("competitor waited %v for the guarded transaction (%v past the lease's end); fences %d -> %d",
			r.at.Sub(started).Round(time.Millisecond), r.at.Sub(expires).Round(time.Millisecond), holder.Fence(), competitor.Fence())
	})
}

// TestIntegrationGuardRefusesEndedLease: a holder whose lease expired before its Guard (alone, or taken
// since by a competitor) gets ErrLockAlreadyReleased, rolls back, and nothing it meant to write is in the
// table; a released lock is refused too.
func TestIntegrationGuardRefusesEndedLease(t *testing.T) {
	integEach(t, allDBs(t), func(t *testing.T, tdb *testDB) {
		ctx := t.Context()
		m := newTestManager(t, tdb)
		data := integDataTable(t, tdb, m)
		// guardedWrite is what a holder does: guard, and write only when the guard passed.
		guardedWrite := func(l *DBLock) error {
			tx, err := tdb.db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Guard(ctx, tx); err != nil {
				_ = tx.Rollback()
				return err
			}
			if _, err := tx.ExecContext(ctx, integQuery(tdb.dialect, "INSERT INTO "+data+" (writer) VALUES (?)"), l.Key); err != nil {
				t.Fatal(err)
			}
			return tx.Commit()
		}
		expired := integLock(t, m, tdb.db, "expired")
		integAcquire(ctx, t, expired, tdb.db, 100*time.Millisecond)
		taken := integLock(t, m, tdb.db, "taken")
		integAcquire(ctx, t, taken, tdb.db, 100*time.Millisecond)
		released := integLock(t, m, tdb.db, "released")
		integAcquire(ctx, t, released, tdb.db, time.Minute)
		if err := released.Release(ctx, tdb.db); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		integAcquire(ctx, t, integLock(t, m, tdb.db, "taken"), tdb.db, time.Minute)

		for _, l := range []*DBLock{expired, taken, released} {
			integWantErr(t, "guard of "+l.Key, guardedWrite(l), ErrLockAlreadyReleased)
		}
		if n := integRows(t, tdb, data); n != 0 {
			t.Fatalf("%d rows written by holders whose guard failed", n)
		}
		live := integLock(t, m, tdb.db, "live")
		integAcquire(ctx, t, live, tdb.db, time.Minute)
		if err := guardedWrite(live); err != nil {
			t.Fatalf("guarded write of a live lease: %v", err)
		}
		if n := integRows(t, tdb, data); n != 1 {
			t.Fatalf("%d rows, want the live holder's 1", n)
		}
	})
}

// TestIntegrationResumeWithStaticToken: a process holds a lock with WithToken and dies without releasing
// (its heartbeat stops, the lease stays); restarted, with a new manager and the same token, it takes back
// the live lease at once with a larger fence, while any other token is still refused.
func TestIntegrationResumeWithStaticToken(t *testing.T) {
	integEach(t, allDBs(t), func(t *testing.T, tdb *testDB) {
		ctx := t.Context()
		m := newTestManager(t, tdb)
		const token = "worker-7/instance-token"
		first := integLock(t, m, tdb.db, "resumable")
		lease, err := first.Hold(ctx, tdb.db, WithToken(token), WithLockTTL(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		lease.abandon() // the process dies: no release
		integRefused(ctx, t, m, tdb.db, "resumable")

		restarted, err := NewDBManager(tdb.dialect, WithTableName(m.table))
		if err != nil {
			t.Fatal(err)
		}
		again := integLock(t, restarted, tdb.db, "resumable")
		resumed, err := again.Hold(ctx, tdb.db, WithToken(token), WithLockTTL(time.Minute))
		if err != nil {
			t.Fatalf("resume with the same token: %v", err)
		}
		if resumed.Fence() <= lease.Fence() {
			t.Fatalf("resumed fence %d, first %d", resumed.Fence(), lease.Fence())
		}
		integRefused(ctx, t, m, tdb.db, "resumable")
		if err := resumed.Release(ctx); err != nil {
			t.Fatal(err)
		}
		integAcquire(ctx, t, integLock(t, m, tdb.db, "resumable"), tdb.db, time.Minute)
		t.Logf("fence %d, resumed after a restart with fence %d", lease.Fence(), resumed.Fence())
	})
}

// TestIntegrationKeep: a lock acquired (TTL 1 s) inside a transaction that committed is kept by Keep: 2.5 s
// later its lease is not lost, still held under its token and refused to others; Release frees it.
func TestIntegrationKeep(t *testing.T) {
	integEach(t, allDBs(t), func(t *testing.T, tdb *testDB) {
		ctx := t.Context()
		m := newTestManager(t, tdb)
		tx, err := tdb.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		l := integLock(t, m, tx, "kept")
		integAcquire(ctx, t, l, tx, time.Second)
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		lease, err := l.Keep(ctx, tdb.db, WithPeriodicExtendInterval(200*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2500 * time.Millisecond)
		if err := lease.Lost(); err != nil {
			t.Fatalf("kept lease lost: %v", err)
		}
		info, err := m.Get(ctx, tdb.db, "kept")
		if err != nil {
			t.Fatal(err)
		}
		if !info.Held || info.Token != l.Token() || info.Fence != l.Fence() {
			t.Fatalf("after 2.5 s: held %v, token ok %v, fence %d (want %d)", info.Held, info.Token == l.Token(), info.Fence, l.Fence())
		}
		integRefused(ctx, t, m, tdb.db, "kept")
		if err := lease.Release(ctx); err != nil {
			t.Fatal(err)
		}
		integAcquire(ctx, t, integLock(t, m, tdb.db, "kept"), tdb.db, time.Minute)
	})
}

// TestIntegrationGuardSQLiteDeferred: on SQLite, a deferred transaction whose first statement is the guard
// does not hold the database's write lock, so a competitor's acquire (the lease has expired) is not held
// off: it takes the write lock first, and the holder's write then fails with SQLITE_BUSY instead of
// waiting. The stale write still never commits (0 rows), and the competitor gets the lock once the holder
// rolls back. This is why docs/guard.md asks for BEGIN IMMEDIATE (_txlock=immediate).
func TestIntegrationGuardSQLiteDeferred(t *testing.T) {
	tdb := openSQLite(t)
	ctx := t.Context()
	m := newTestManager(t, tdb)
	data := integDataTable(t, tdb, m)
	deferred := integSecondDB(t, tdb)
	holder := integLock(t, m, deferred, "guarded")
	integAcquire(ctx, t, holder, deferred, 200*time.Millisecond)
	tx, err := deferred.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := holder.Guard(ctx, tx); err != nil {
		t.Fatalf("guard of a live lease: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	competitor := integLock(t, m, tdb.db, "guarded")
	done := make(chan error, 1)
	go func() { done <- competitor.Acquire(ctx, tdb.db, time.Minute) }()
	time.Sleep(200 * time.Millisecond)
	_, werr := tx.ExecContext(ctx, "INSERT INTO "+data+" (writer) VALUES (?)", "holder")
	if werr == nil {
		werr = tx.Commit()
	}
	if werr == nil {
		t.Fatal("the holder's write after the guard committed although a competitor had started to take the lock")
	}
	_ = tx.Rollback()
	if err := <-done; err != nil {
		t.Fatalf("competitor: %v", err)
	}
	if n := integRows(t, tdb, data); n != 0 {
		t.Fatalf("%d stale rows committed", n)
	}
	t.Logf("the holder's write failed: %v", werr)
}
