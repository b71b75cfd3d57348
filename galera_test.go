package distrlock

import (
	"context"
	"database/sql/driver"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/go-sql-driver/mysql"
)

// Unit tests of WithGalera and of the certification conflicts (MySQL 1213) that Galera raises; the cluster
// itself is integration_galera_test.go's.

// unitConflict is the error go-sql-driver returns for a Galera certification conflict, as for a deadlock.
var unitConflict = &mysql.MySQLError{Number: 1213, SQLState: [5]byte{'4', '0', '0', '0', '1'},
	Message: "Deadlock found when trying to get lock; try restarting transaction"}

// newGaleraFixture is a unitFixture on MariaDB whose manager was made WithGalera.
func newGaleraFixture(t testing.TB) *unitFixture {
	t.Helper()
	f := newUnitFixtureWith(t, DialectMariaDB, "", WithGalera())
	f.galera = true
	return f
}

// TestWithGaleraQueries: a manager made WithGalera sends every statement but the DDL behind sync_wait.sql,
// and only on MariaDB: other dialects refuse the option.
func TestWithGaleraQueries(t *testing.T) {
	plain, err := NewDBManager(DialectMariaDB, WithTableName("app.my_locks"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewDBManager(DialectMariaDB, WithTableName("app.my_locks"), WithGalera())
	if err != nil {
		t.Fatal(err)
	}
	prefix := unitQuery(t, DialectMariaDB, "sync_wait", "")
	if m.CreateTableSQL() != plain.CreateTableSQL() || m.DropTableSQL() != plain.DropTableSQL() {
		t.Errorf("WithGalera changed the DDL:\n%s\n%s", m.CreateTableSQL(), m.DropTableSQL())
	}
	for name, pair := range map[string][2]string{
		"acquire": {m.q.acquire, plain.q.acquire}, "acquire_in_tx": {m.q.acquireInTx, plain.q.acquireInTx},
		"extend": {m.q.extend, plain.q.extend}, "extend_batch": {m.q.extendBatch, plain.q.extendBatch},
		"extend_batch_held": {m.q.extendBatchHeld, plain.q.extendBatchHeld}, "release": {m.q.release, plain.q.release},
		"get": {m.q.get, plain.q.get}, "list": {m.q.list, plain.q.list}, "peek": {m.q.peek, plain.q.peek},
		"proclaim": {m.q.proclaim, plain.q.proclaim}, "enqueue": {m.q.enqueue, plain.q.enqueue}, "dequeue": {m.q.dequeue, plain.q.dequeue},
		"guard": {m.q.guard, plain.q.guard},
	} {
		file := unitQuery(t, DialectMariaDB, name, "app.my_locks")
		if pair[0] != prefix+file || pair[1] != file {
			t.Errorf("%s WithGalera:\n%s\nwant:\n%s", name, pair[0], prefix+file)
		}
	}
	for _, d := range []Dialect{DialectMySQL, DialectPostgres, DialectPgx, DialectSQLite} {
		if _, err := NewDBManager(d, WithGalera()); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("NewDBManager(%s, WithGalera()) = %v, want ErrInvalidOption", d, err)
		}
	}
}

// TestGaleraGetSyncWaits: Get on a manager made WithGalera is still one statement, the prefixed get.sql.
func TestGaleraGetSyncWaits(t *testing.T) {
	f := newGaleraFixture(t)
	f.mock.ExpectQuery(f.query("get")).WithArgs(unitKey).
		WillReturnRows(sqlmock.NewRows([]string{"lock_key", "token", "owner", "data", "fence", "ttl_us", "acquired_at", "expire_at", "now"}))
	info, err := f.m.Get(context.Background(), f.db, unitKey)
	if err != nil || info.Held || info.Key != unitKey {
		t.Fatalf("Get = %+v, %v; want a free lock", info, err)
	}
}

// TestConflictRetried: Extend and Release send their statement again after a certification conflict,
// which changed nothing, and succeed; Acquire after a conflict finds the lock held by the writer that won
// and returns contention.
func TestConflictRetried(t *testing.T) {
	t.Run("extend", func(t *testing.T) {
		f := newGaleraFixture(t)
		f.hold()
		f.expectExtend(unitHeldToken, unitHeldTTL).WillReturnError(unitConflict)
		f.expectExtend(unitHeldToken, unitHeldTTL).WillReturnResult(sqlmock.NewResult(1, 1))
		if err := f.lock.Extend(context.Background(), f.db); err != nil {
			t.Fatalf("Extend = %v, want success after a conflict", err)
		}
	})
	t.Run("release", func(t *testing.T) {
		f := newGaleraFixture(t)
		f.hold()
		f.expectRelease(unitHeldToken).WillReturnError(unitConflict)
		f.expectRelease(unitHeldToken).WillReturnError(unitConflict)
		f.expectRelease(unitHeldToken).WillReturnResult(sqlmock.NewResult(0, 1))
		if err := f.lock.Release(context.Background(), f.db); err != nil {
			t.Fatalf("Release = %v, want success after two conflicts", err)
		}
		f.wantState("", unitHeldFence, unitHeldTTL)
	})
	t.Run("acquire", func(t *testing.T) {
		f := newGaleraFixture(t)
		tok := &unitToken{}
		f.expectAcquire(tok, time.Minute).fails(unitConflict)
		f.expectAcquire(tok, time.Minute).refused()
		err := f.lock.Acquire(context.Background(), f.db, time.Minute)
		if !errors.Is(err, ErrLockAlreadyAcquired) || errors.Is(err, unitConflict) {
			t.Fatalf("Acquire = %v, want contention (the retry was refused)", err)
		}
		f.wantState("", 0, 0)
	})
}

// TestConflictPersists: a conflict on every try ends Extend with the driver's error after deadlockRetries
// retries (it changed nothing, and is not a loss), and Acquire with contention that also matches it.
func TestConflictPersists(t *testing.T) {
	t.Run("extend", func(t *testing.T) {
		f := newGaleraFixture(t)
		f.hold()
		for range deadlockRetries + 1 {
			f.expectExtend(unitHeldToken, unitHeldTTL).WillReturnError(unitConflict)
		}
		err := f.lock.Extend(context.Background(), f.db)
		if !errors.Is(err, unitConflict) || errors.Is(err, ErrLockAlreadyReleased) {
			t.Fatalf("Extend = %v, want the conflict", err)
		}
		f.wantState(unitHeldToken, unitHeldFence, unitHeldTTL)
	})
	t.Run("acquire", func(t *testing.T) {
		f := newGaleraFixture(t)
		for range deadlockRetries + 1 {
			f.expectAcquire(&unitToken{}, time.Minute).fails(unitConflict)
		}
		err := f.lock.Acquire(context.Background(), f.db, time.Minute)
		unitWantErr(t, err, "acquire", unitKey, ErrLockAlreadyAcquired, unitConflict)
		if f.lock.pending != "" {
			t.Fatalf("a conflict changed nothing, yet the token is kept as pending")
		}
	})
}

// TestConflictInTransaction: inside the caller's transaction a conflict is not retried (it rolled the
// transaction back) and is returned as it is, not as contention.
func TestConflictInTransaction(t *testing.T) {
	f := newGaleraFixture(t)
	f.mock.ExpectBegin()
	tx, err := f.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	f.expectAcquireInTx(&unitToken{}, time.Minute).fails(unitConflict)
	err = f.lock.Acquire(context.Background(), tx, time.Minute)
	if !errors.Is(err, unitConflict) || errors.Is(err, ErrLockAlreadyAcquired) {
		t.Fatalf("Acquire in a transaction = %v, want the conflict alone", err)
	}
	f.mock.ExpectRollback()
	_ = tx.Rollback()
}

// TestAcquireWaitConflictIsContention: a wait whose first attempt meets a certification conflict queues as
// a refused one does, reads the row, and takes the lock once it is free and its turn.
func TestAcquireWaitConflictIsContention(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newGaleraFixture(t)
		f.expectAcquire(&unitToken{}, time.Minute).fails(unitConflict)
		f.expectEnqueue(1)
		f.mock.ExpectQuery(f.query("peek")).WithArgs(unitKey).WillReturnRows(unitPeekRows("other", nil, int64(time.Second/time.Microsecond), nil, 0, 1))
		tok := &unitToken{}
		f.expectAcquireTicket(tok, time.Minute, 1).granted(5)
		if err := f.lock.AcquireWait(context.Background(), f.db, time.Minute, time.Second); err != nil {
			t.Fatalf("AcquireWait = %v", err)
		}
		f.wantState(tok.got, 5, time.Minute)
	})
}

// TestBatchedExtendConflictRetried: the heartbeats' batched extend is sent again after a certification
// conflict, and both leases stay held.
func TestBatchedExtendConflictRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db, mock := unitMock(t)
		m, err := NewDBManager(DialectMariaDB, WithGalera())
		if err != nil {
			t.Fatal(err)
		}
		f := &batchFixture{t: t, m: m, db: db, mock: mock, t0: time.Now(), log: &countingLogger{}}
		const ttl, interval = 10 * time.Second, 5 * time.Second
		a := f.hold("a", ttl, interval)
		b := f.hold("b", ttl, interval)
		us := ttl.Microseconds()
		update := unitQuery(t, DialectMariaDB, "sync_wait", "") + withPairList(unitQuery(t, DialectMariaDB, "extend_batch", ""), 2)
		args := []driver.Value{us, us, "a", a.Token(), "b", b.Token()}
		mock.ExpectExec(update).WithArgs(args...).WillReturnError(unitConflict)
		mock.ExpectExec(update).WithArgs(args...).WillReturnResult(sqlmock.NewResult(0, 2))
		f.expected()
		time.Sleep(6 * time.Second)
		for _, l := range []*Lease{a, b} {
			if err := l.Context().Err(); err != nil {
				t.Errorf("%s: lease context ended: %v", l.Key(), context.Cause(l.Context()))
			}
		}
		if n := f.log.n.Load(); n != 0 {
			t.Errorf("%d extend failures logged, want none: the conflict is retried at once", n)
		}
		f.release(a, false)
		f.release(b, false)
	})
}
