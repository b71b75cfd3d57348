package distrlock

import (
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/distrlock/distrlock/internal/stmtcount"
)

// TestStatementsPerOperation counts, through a wrapping driver, what each operation sends: NewLock
// nothing, and acquire (which creates the key's row), a refused acquire, extend, release, get and (in a
// transaction) guard one statement each, with no transaction of their own, on every database, in
// autocommit mode, on a pinned connection and inside the caller's transaction. On go-sql-driver/mysql's
// *sql.DB the manager prepares acquire, extend and release once per connection and runs them prepared from
// then on.
func TestStatementsPerOperation(t *testing.T) {
	t.Parallel()
	integEach(t, allDBs(t), func(t *testing.T, tdb *testDB) {
		ctx := t.Context()
		var counter stmtcount.Counter
		db, m := countedManager(t, tdb, &counter)

		// go-sql-driver/mysql without interpolateParams prepares every statement that has arguments,
		// runs it and closes it: one statement still, and one prepare.
		var prepares int64
		if tdb.driver == "mysql" && !hasDSNParam(tdb.dsn, "interpolateParams", "true") {
			prepares = 1
		}
		one := stmtcount.Counts{Statements: 1, Prepares: prepares}

		for _, mode := range []string{"autocommit", "conn", "tx"} {
			t.Run(mode, func(t *testing.T) {
				var exec SQLExecutor = db
				finish := func() {}
				switch mode {
				case "conn":
					conn, err := db.Conn(ctx)
					if err != nil {
						t.Fatal(err)
					}
					exec, finish = conn, func() { _ = conn.Close() }
				case "tx":
					tx, err := db.BeginTx(ctx, nil)
					if err != nil {
						t.Fatal(err)
					}
					exec, finish = tx, func() {
						if err := tx.Commit(); err != nil {
							t.Errorf("commit: %v", err)
						}
					}
				}
				defer finish()

				key := "count-" + mode
				step := func(what string, want stmtcount.Counts, f func() error, wantErr error) {
					t.Helper()
					before := counter.Counts()
					err := f()
					got := counter.Counts().Sub(before)
					if wantErr == nil && err != nil || wantErr != nil && !errors.Is(err, wantErr) {
						t.Fatalf("%s: error %v, want %v", what, err, wantErr)
					}
					if got != want {
						t.Errorf("%s: sent %+v, want %+v", what, got, want)
					}
				}

				// prepared is what a statement the manager prepares costs: on go-sql-driver/mysql's *sql.DB
				// (one connection here: the steps run one at a time), one prepare at its first use and none
				// after it, with or without interpolateParams; elsewhere what any statement costs.
				// The first acquire also prepares the acquire that runs in transactions. In a transaction
				// (after autocommit, on the same connection) the statements prepared on it need no prepare.
				prepared := func(first bool) stmtcount.Counts {
					switch {
					case tdb.driver != "mysql" || mode == "conn":
						return one
					case mode == "tx":
						return stmtcount.Counts{Statements: 1}
					case first:
						return stmtcount.Counts{Statements: 1, Prepares: 1}
					}
					return stmtcount.Counts{Statements: 1}
				}
				firstAcquire := prepared(true)
				if tdb.driver == "mysql" && mode == "autocommit" {
					firstAcquire.Prepares++
				}

				var lock DBLock
				step("NewLock", stmtcount.Counts{}, func() (err error) {
					lock, err = m.NewLock(ctx, exec, key)
					return err
				}, nil)
				step("Acquire (creates the row)", firstAcquire, func() error { return lock.Acquire(ctx, exec, time.Minute) }, nil)
				if lock.Fence() != 1 {
					t.Errorf("first fence %d, want 1", lock.Fence())
				}
				other, err := m.NewLock(ctx, exec, key)
				if err != nil {
					t.Fatal(err)
				}
				step("refused Acquire", prepared(false), func() error { return other.Acquire(ctx, exec, time.Minute) }, ErrLockAlreadyAcquired)
				step("Extend", prepared(true), func() error { return lock.Extend(ctx, exec) }, nil)
				step("ExtendTTL", prepared(false), func() error { return lock.ExtendTTL(ctx, exec, 2*time.Minute) }, nil)
				step("Get", one, func() error { _, err := m.Get(ctx, exec, key); return err }, nil)
				if mode == "tx" {
					step("Guard", one, func() error { return lock.Guard(ctx, exec) }, nil)
				} else if mode == "autocommit" {
					step("Guard outside a transaction", stmtcount.Counts{}, func() error { return lock.Guard(ctx, exec) }, ErrNotInTransaction)
				}
				step("Release", prepared(true), func() error { return lock.Release(ctx, exec) }, nil)
				step("Acquire (row exists)", prepared(false), func() error { return lock.Acquire(ctx, exec, time.Minute) }, nil)
				if lock.Fence() != 2 {
					t.Errorf("second fence %d, want 2", lock.Fence())
				}
				step("Release again", prepared(false), func() error { return lock.Release(ctx, exec) }, nil)
			})
		}
	})
}

// countedManager opens tdb's database again through a driver that counts into counter, and returns it with
// a manager for a table of the test's own.
func countedManager(t *testing.T, tdb *testDB, counter *stmtcount.Counter) (*sql.DB, *DBManager) {
	t.Helper()
	db, err := stmtcount.Open(tdb.driver, tdb.dsn, counter)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, newTestManager(t, &testDB{name: tdb.name, dialect: tdb.dialect, driver: tdb.driver, dsn: tdb.dsn, db: db})
}

// hasDSNParam reports whether a go-sql-driver DSN sets the parameter name to value.
func hasDSNParam(dsn, name, value string) bool {
	_, query, ok := strings.Cut(dsn, "?")
	if !ok {
		return false
	}
	params, err := url.ParseQuery(query)
	return err == nil && params.Get(name) == value
}

// TestStatementsKeep counts what Keep costs: ten locks acquired in one transaction (ten statements and the
// commit), Keep for each sends nothing, and their leases (TTL 2 s, an extend every 500 ms) are extended by
// the manager's shared heartbeat, a few batched statements per interval for all ten rather than one per
// lock, until their releases (one statement each).
func TestStatementsKeep(t *testing.T) {
	t.Parallel()
	integEach(t, allDBs(t), func(t *testing.T, tdb *testDB) {
		ctx := t.Context()
		var counter stmtcount.Counter
		db, m := countedManager(t, tdb, &counter)
		const locks, ttl, interval, window = 10, 2 * time.Second, 500 * time.Millisecond, 2200 * time.Millisecond

		before := counter.Counts()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		held := make([]DBLock, locks)
		for i := range held {
			if held[i], err = m.NewLock(ctx, tx, fmt.Sprintf("kept-%d", i)); err != nil {
				t.Fatal(err)
			}
			if err := held[i].Acquire(ctx, tx, ttl); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if got := counter.Counts().Sub(before); got.Statements != locks || got.Commits != 1 {
			t.Errorf("acquiring %d locks in a transaction sent %+v", locks, got)
		}

		before = counter.Counts()
		leases := make([]*Lease, locks)
		for i := range held {
			if leases[i], err = held[i].Keep(ctx, db, WithPeriodicExtendInterval(interval)); err != nil {
				t.Fatal(err)
			}
		}
		if got := counter.Counts().Sub(before); got != (stmtcount.Counts{}) {
			t.Errorf("Keep of %d locks sent %+v, want nothing", locks, got)
		}

		before = counter.Counts()
		time.Sleep(window)
		extends := counter.Counts().Sub(before).Statements
		intervals := int64(window / interval)
		t.Logf("%d leases kept for %v (%d intervals of %v): %d extend statements, %d if each extended alone",
			locks, window, intervals, interval, extends, intervals*locks)
		if extends < intervals || extends > 2*(intervals+1) {
			t.Errorf("%d extend statements in %d intervals, want between %d and %d (shared by the %d leases)",
				extends, intervals, intervals, 2*(intervals+1), locks)
		}
		before = counter.Counts()
		for _, lease := range leases {
			if err := lease.Lost(); err != nil {
				t.Errorf("lease %s lost: %v", lease.Key(), err)
			}
			if err := lease.Release(ctx); err != nil {
				t.Errorf("release %s: %v", lease.Key(), err)
			}
		}
		if got := counter.Counts().Sub(before).Statements; got != locks {
			t.Errorf("releasing %d leases sent %d statements", locks, got)
		}
	})
}
