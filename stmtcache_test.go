package distrlock

import (
	"context"
	"database/sql"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/distrlock/distrlock/internal/stmtcount"
)

// TestStmtCacheSkipsOtherDrivers: a *sql.DB of another driver (here sqlmock), a *sql.Tx and a *sql.Conn
// get their statements as sent, and a dialect that does not prepare has no cache.
func TestStmtCacheSkipsOtherDrivers(t *testing.T) {
	db, mock := unitMock(t)
	m, err := NewDBManager(DialectMySQL)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.stmts.executor(db); got != SQLExecutor(db) {
		t.Errorf("sqlmock's *sql.DB got %T, want it unchanged", got)
	}
	mock.ExpectBegin()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if got := m.stmts.executor(tx); got != SQLExecutor(tx) {
		t.Errorf("*sql.Tx got %T, want it unchanged", got)
	}
	mock.ExpectRollback()
	_ = tx.Rollback()
	pg, err := NewDBManager(DialectPgx)
	if err != nil {
		t.Fatal(err)
	}
	if pg.stmts != nil {
		t.Error("a PostgreSQL manager has a statement cache; pgx caches by itself")
	}
}

// TestStmtCacheRefusedPrepare: a prepare the server refuses turns the cache off, so the query runs
// unprepared from then on; one that fails because the context ended leaves it on.
func TestStmtCacheRefusedPrepare(t *testing.T) {
	db, mock := unitMock(t)
	const query = "UPDATE t SET v = 1"
	c := &stmtCache{queries: map[string]bool{query: true}, stmts: map[string]*sql.Stmt{}, db: db}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if s := c.stmt(ctx, query); s != nil || c.off {
		t.Fatalf("cancelled prepare: statement %v, off %v; want none, still on", s, c.off)
	}
	mock.ExpectPrepare(query).WillReturnError(errors.New("Error 1461: Can't create more than max_prepared_stmt_count statements"))
	if s := c.stmt(context.Background(), query); s != nil || !c.off {
		t.Fatalf("refused prepare: statement %v, off %v; want none, off", s, c.off)
	}
	if s := c.stmt(context.Background(), query); s != nil { // no second prepare: sqlmock would fail it
		t.Fatal("a cache that is off returned a statement")
	}
	if s := c.stmt(context.Background(), "SELECT 1"); s != nil {
		t.Fatal("a query outside the cache's set was prepared")
	}
}

// TestIntegrationPreparedStatements: on go-sql-driver/mysql, with and without interpolateParams, a
// manager prepares acquire and release once and then sends each as one statement; a manager that is no
// longer reachable closes its statements.
func TestIntegrationPreparedStatements(t *testing.T) {
	t.Parallel()
	integEach(t, []*testDB{openMySQL(t, ""), openMySQL(t, "interpolateParams=true")}, func(t *testing.T, tdb *testDB) {
		ctx := t.Context()
		var counter stmtcount.Counter
		db, m := countedManager(t, tdb, &counter)
		db.SetMaxOpenConns(1) // one connection: each statement is prepared exactly once
		lock, err := m.NewLock(ctx, db, "prepared")
		if err != nil {
			t.Fatal(err)
		}
		before := counter.Counts()
		const cycles = 20
		for range cycles {
			if err := lock.Acquire(ctx, db, time.Minute); err != nil {
				t.Fatal(err)
			}
			if err := lock.Release(ctx, db); err != nil {
				t.Fatal(err)
			}
		}
		// The acquire, the release, and with the acquire the acquire that runs in transactions.
		if got, want := counter.Counts().Sub(before), (stmtcount.Counts{Statements: 2 * cycles, Prepares: 3}); got != want {
			t.Errorf("%d acquire+release cycles sent %+v, want %+v", cycles, got, want)
		}
		if lock.Fence() != cycles {
			t.Errorf("fence %d after %d cycles, want %d", lock.Fence(), cycles, cycles)
		}
		// In transactions, on the pool's one connection (a prepare on the *sql.DB would wait for it for
		// ever), the statements prepared on it run without a prepare.
		before = counter.Counts()
		for range cycles {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := lock.Acquire(ctx, tx, time.Minute); err != nil {
				t.Fatal(err)
			}
			if err := lock.Release(ctx, tx); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		if got, want := counter.Counts().Sub(before), (stmtcount.Counts{Statements: 2 * cycles, Begins: cycles, Commits: cycles}); got != want {
			t.Errorf("%d acquire+release cycles in transactions sent %+v, want %+v", cycles, got, want)
		}
		if lock.Fence() != 2*cycles {
			t.Errorf("fence %d after %d more cycles, want %d", lock.Fence(), cycles, 2*cycles)
		}

		// The cleanup closes the statements of a manager nobody holds any more.
		other, err := NewDBManager(tdb.dialect, WithTableName(m.TableName()))
		if err != nil {
			t.Fatal(err)
		}
		c := other.stmts
		l, err := other.NewLock(ctx, db, "prepared-gc")
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Acquire(ctx, db, time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := l.Release(ctx, db); err != nil {
			t.Fatal(err)
		}
		other, l = nil, DBLock{}
		for i := 0; !stmtCacheClosed(c) && i < 50; i++ {
			runtime.GC()
			time.Sleep(10 * time.Millisecond)
		}
		if !stmtCacheClosed(c) {
			t.Error("the statements of an unreachable manager were not closed")
		}
	})
}

func stmtCacheClosed(c *stmtCache) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.off && len(c.stmts) == 0
}

// TestIntegrationPreparedStatementsOtherDB: a transaction of another *sql.DB than the one the manager's
// statements were prepared on runs them unprepared, and works.
func TestIntegrationPreparedStatementsOtherDB(t *testing.T) {
	t.Parallel()
	first := openMySQL(t, "")
	second := openMySQL(t, "")
	ctx := t.Context()
	m := newTestManager(t, first)
	lock, err := m.NewLock(ctx, first.db, "other-db")
	if err != nil {
		t.Fatal(err)
	}
	if err := lock.Acquire(ctx, first.db, time.Minute); err != nil { // prepares on first
		t.Fatal(err)
	}
	tx, err := second.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := lock.Extend(ctx, tx); err != nil {
		t.Fatalf("Extend in a transaction of another *sql.DB: %v", err)
	}
	if err := lock.Release(ctx, tx); err != nil {
		t.Fatalf("Release in a transaction of another *sql.DB: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := lock.Acquire(ctx, first.db, time.Minute); err != nil || lock.Fence() != 2 {
		t.Fatalf("Acquire after the release: %v, fence %d, want 2", err, lock.Fence())
	}
}

// TestIntegrationPreparedStatementsTxDone: a statement sent on a transaction that has ended fails with
// sql.ErrTxDone and leaves the manager's prepared statements on: the next transaction prepares nothing.
func TestIntegrationPreparedStatementsTxDone(t *testing.T) {
	t.Parallel()
	tdb := openMySQL(t, "")
	ctx := t.Context()
	var counter stmtcount.Counter
	db, m := countedManager(t, tdb, &counter)
	db.SetMaxOpenConns(1)
	lock, err := m.NewLock(ctx, db, "tx-done")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // prepares the acquire and the release, and holds the lock
		if err := lock.Release(ctx, db); err != nil && !errors.Is(err, ErrLockNotAcquired) {
			t.Fatal(err)
		}
		if err := lock.Acquire(ctx, db, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := lock.Release(ctx, tx); !errors.Is(err, sql.ErrTxDone) {
		t.Fatalf("Release on a committed transaction = %v, want sql.ErrTxDone", err)
	}
	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := counter.Counts()
	if err := lock.Release(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := counter.Counts().Sub(before); got != (stmtcount.Counts{Statements: 1, Commits: 1}) {
		t.Errorf("a release in the next transaction sent %+v, want 1 statement and no prepare", got)
	}
}
