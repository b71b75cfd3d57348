package distrlock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/DATA-DOG/go-sqlmock"
)

// TestNewDBManager: every dialect constant makes a manager that reports its dialect and table; the empty
// table name selects DefaultTableName, as in go-dbkit.
func TestNewDBManager(t *testing.T) {
	for _, d := range unitDialects {
		for _, c := range []struct {
			opts      []DBManagerOption
			wantTable string
		}{
			{nil, DefaultTableName},
			{[]DBManagerOption{WithTableName("")}, DefaultTableName},
			{[]DBManagerOption{WithTableName("my_locks")}, "my_locks"},
			{[]DBManagerOption{WithTableName("app.my_locks")}, "app.my_locks"},
			{[]DBManagerOption{WithTableName("first"), WithTableName("second")}, "second"},
		} {
			t.Run(fmt.Sprintf("%s/%s", d, c.wantTable), func(t *testing.T) {
				m, err := NewDBManager(d, c.opts...)
				if err != nil {
					t.Fatal(err)
				}
				if m.Dialect() != d || m.TableName() != c.wantTable {
					t.Errorf("manager reports dialect %q, table %q; want %q, %q", m.Dialect(), m.TableName(), d, c.wantTable)
				}
				if want := unitQuery(t, d, "create_table", c.wantTable); m.CreateTableSQL() != want {
					t.Errorf("CreateTableSQL() =\n%s\nwant\n%s", m.CreateTableSQL(), want)
				}
				if want := unitQuery(t, d, "drop_table", c.wantTable); m.DropTableSQL() != want {
					t.Errorf("DropTableSQL() =\n%s\nwant\n%s", m.DropTableSQL(), want)
				}
			})
		}
	}
}

// TestNewDBManagerWithOpts: go-dbkit's deprecated constructor makes the same manager as NewDBManager.
func TestNewDBManagerWithOpts(t *testing.T) {
	for _, d := range unitDialects {
		for _, table := range []string{"", "my_locks", "app.my_locks"} {
			old, err := NewDBManagerWithOpts(d, DBManagerOpts{TableName: table})
			if err != nil {
				t.Fatal(err)
			}
			cur, err := NewDBManager(d, WithTableName(table))
			if err != nil {
				t.Fatal(err)
			}
			if old.Dialect() != cur.Dialect() || old.TableName() != cur.TableName() || old.q != cur.q {
				t.Errorf("%s %q: NewDBManagerWithOpts and NewDBManager differ", d, table)
			}
		}
	}
}

// TestDialectAliasesShareSQL: pgx runs PostgreSQL's SQL and mariadb runs MySQL's.
func TestDialectAliasesShareSQL(t *testing.T) {
	for _, pair := range [][2]Dialect{{DialectPgx, DialectPostgres}, {DialectMariaDB, DialectMySQL}} {
		a, err := NewDBManager(pair[0], WithTableName("app.my_locks"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := NewDBManager(pair[1], WithTableName("app.my_locks"))
		if err != nil {
			t.Fatal(err)
		}
		if a.q != b.q {
			t.Errorf("%s and %s run different SQL", pair[0], pair[1])
		}
	}
}

// TestNewLockSendsNothing: NewLock returns an unacquired lock on the key and sends nothing (the mock has
// no expectation), on every kind of executor.
func TestNewLockSendsNothing(t *testing.T) {
	ctx := context.Background()
	for _, d := range unitDialects {
		t.Run(string(d), func(t *testing.T) {
			db, mock := unitMock(t)
			m, err := NewDBManager(d)
			if err != nil {
				t.Fatal(err)
			}
			mock.ExpectBegin()
			mock.ExpectRollback()
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			conn, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			for _, exec := range []SQLExecutor{db, tx, conn} {
				l, err := m.NewLock(ctx, exec, "job")
				if err != nil {
					t.Fatal(err)
				}
				if l.Key != "job" || l.TTL != 0 || l.Token() != "" || l.Fence() != 0 || l.manager != m {
					t.Errorf("NewLock returned {Key %q, TTL %v, Token %q, Fence %d}", l.Key, l.TTL, l.Token(), l.Fence())
				}
			}
		})
	}
}

// unitOtherExecutor is an SQLExecutor that is not one of database/sql's: it is never nil-checked by type.
type unitOtherExecutor struct{ SQLExecutor }

// TestNewLockAcceptsAnyExecutor: an SQLExecutor other than *sql.DB, *sql.Tx or *sql.Conn is accepted.
func TestNewLockAcceptsAnyExecutor(t *testing.T) {
	db, _ := unitMock(t)
	m, err := NewDBManager(DialectPostgres)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.NewLock(context.Background(), unitOtherExecutor{db}, "job"); err != nil {
		t.Fatal(err)
	}
}

// TestManagerConcurrentUse: a manager is safe for concurrent use (run with -race).
func TestManagerConcurrentUse(t *testing.T) {
	db, _ := unitMock(t)
	m, err := NewDBManager(DialectMySQL, WithTableName("app.my_locks"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 16 {
		wg.Go(func() {
			for j := range 50 {
				if _, err := m.NewLock(context.Background(), db, fmt.Sprintf("key-%d-%d", i, j)); err != nil {
					errs <- err
					return
				}
				_ = m.CreateTableSQL() + m.DropTableSQL()
				_ = m.Migrations()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestManagerHoldsNoExecutor: a manager and the locks it makes keep no executor: the same lock works on
// one database after another.
func TestManagerHoldsNoExecutor(t *testing.T) {
	f := newUnitFixture(t, DialectSQLite, "")
	other, otherMock := unitMock(t)
	f.expectAcquire(&unitToken{}, MinTTL).granted(1)
	if err := f.lock.Acquire(context.Background(), f.db, MinTTL); err != nil {
		t.Fatal(err)
	}
	otherMock.ExpectExec(unitQuery(t, DialectSQLite, "release", "")).WithArgs(unitReleaseArgs(DialectSQLite, unitKey, f.lock.Token())...).
		WillReturnResult(sqlmock.NewResult(0, 1))
	if err := f.lock.Release(context.Background(), other); err != nil {
		t.Fatal(err)
	}
}

// TestNewLockContextEnded: NewLock with a context that has ended fails with the context's error (and
// cause) and returns no lock.
func TestNewLockContextEnded(t *testing.T) {
	db, _ := unitMock(t)
	m, err := NewDBManager(DialectMariaDB)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range unitEndedContexts(errors.New("shutting down")) {
		t.Run(c.name, func(t *testing.T) {
			l, err := m.NewLock(c.ctx(t), db, "job")
			unitWantErr(t, err, "new lock", "job", c.want...)
			if l != (DBLock{}) {
				t.Errorf("NewLock returned %+v with its error", l)
			}
		})
	}
}
