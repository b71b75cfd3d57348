package distrlock

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/distrlock/distrlock/internal/stmtcount"
)

// TestStatementsPerOperation counts, through a wrapping driver, what each operation sends: NewLock
// nothing, and acquire (which creates the key's row), a refused acquire, extend, release, get one
// statement each, with no transaction of their own, on every database, in autocommit mode, on a
// pinned connection and inside the caller's transaction.
func TestStatementsPerOperation(t *testing.T) {
	t.Parallel()
	integEach(t, allDBs(t), func(t *testing.T, tdb *testDB) {
		ctx := t.Context()
		var counter stmtcount.Counter
		db, err := stmtcount.Open(tdb.driver, tdb.dsn, &counter)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		m := newTestManager(t, &testDB{name: tdb.name, dialect: tdb.dialect, driver: tdb.driver, dsn: tdb.dsn, db: db})

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

				var lock DBLock
				step("NewLock", stmtcount.Counts{}, func() (err error) {
					lock, err = m.NewLock(ctx, exec, key)
					return err
				}, nil)
				step("Acquire (creates the row)", one, func() error { return lock.Acquire(ctx, exec, time.Minute) }, nil)
				if lock.Fence() != 1 {
					t.Errorf("first fence %d, want 1", lock.Fence())
				}
				other, err := m.NewLock(ctx, exec, key)
				if err != nil {
					t.Fatal(err)
				}
				step("refused Acquire", one, func() error { return other.Acquire(ctx, exec, time.Minute) }, ErrLockAlreadyAcquired)
				step("Extend", one, func() error { return lock.Extend(ctx, exec) }, nil)
				step("ExtendTTL", one, func() error { return lock.ExtendTTL(ctx, exec, 2*time.Minute) }, nil)
				step("Get", one, func() error { _, err := m.Get(ctx, exec, key); return err }, nil)
				step("Release", one, func() error { return lock.Release(ctx, exec) }, nil)
				step("Acquire (row exists)", one, func() error { return lock.Acquire(ctx, exec, time.Minute) }, nil)
				if lock.Fence() != 2 {
					t.Errorf("second fence %d, want 2", lock.Fence())
				}
				step("Release again", one, func() error { return lock.Release(ctx, exec) }, nil)
			})
		}
	})
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
