package distrlock_test

// This file holds the drop-in promise to go-dbkit users to the compiler.
//
// dbkitREADMEDoExclusively and dbkitREADMEDBManager are the two programs of go-dbkit's distrlock README
// (github.com/acronis/go-dbkit/distrlock), each turned from a main function into a named one, with only the
// edits a user moving over makes:
//
//   - the import "github.com/acronis/go-dbkit/distrlock" becomes "github.com/distrlock/distrlock", and the
//     import of "github.com/acronis/go-dbkit" goes away;
//   - dbkit.DialectMySQL becomes distrlock.DialectMySQL.
//
// Every other line keeps go-dbkit's calls, argument types and result counts, log.Fatal included. If a name,
// a signature or a result they use changed, this package would not compile and every test of the module
// would fail. TestCompatDBkitAPI pins the rest of go-dbkit's exported API (options, methods, errors) the
// same way, and TestCompatDBkitREADME makes the two programs referenced code rather than dead code.
//
// The programs are compiled, not run: they sleep for 10 seconds and call log.Fatal on any error, as the
// README does. The behaviour behind them is covered by the integration tests on MariaDB and PostgreSQL.

import (
	"context"
	"database/sql"
	"errors"
	"log"
	"os"
	"testing"
	"time"

	"github.com/distrlock/distrlock"
)

// dbkitREADMEDoExclusively is go-dbkit's first README program: create the default table and run a job
// under a lock with DoExclusively.
func dbkitREADMEDoExclusively() {
	// Open the database the locks live in.
	db, err := sql.Open("mysql", os.Getenv("MYSQL_DSN"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	ctx := context.Background()

	// The table of locks, under its default name distributed_locks.
	createTableSQL, err := distrlock.CreateTableSQL(distrlock.DialectMySQL)
	if err != nil {
		log.Fatal(err)
	}
	if _, err = db.ExecContext(ctx, createTableSQL); err != nil {
		log.Fatal(err)
	}

	// The key every instance of the job shares: only one of them runs the function at a time.
	const lockKey = "test-lock-key-1"
	err = distrlock.DoExclusively(ctx, db, distrlock.DialectMySQL, lockKey, func(ctx context.Context) error {
		time.Sleep(10 * time.Second) // stands for the work
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
}

// dbkitREADMEDBManager is go-dbkit's second README program: a manager with its own table name, and a lock
// acquired and released by hand.
func dbkitREADMEDBManager() {
	db, err := sql.Open("mysql", os.Getenv("MYSQL_DSN"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	lockManager, err := distrlock.NewDBManager(distrlock.DialectMySQL,
		distrlock.WithTableName("my_distributed_locks"))
	if err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()

	if _, err = db.ExecContext(ctx, lockManager.CreateTableSQL()); err != nil {
		log.Fatal(err)
	}

	const lockKey = "test-lock-key-2"
	lock, err := lockManager.NewLock(ctx, db, lockKey)
	if err != nil {
		log.Fatal(err)
	}

	// Take the lock, work, give it back.
	const lockTTL = 10 * time.Second
	if err = lock.Acquire(ctx, db, lockTTL); err != nil {
		log.Fatal(err)
	}
	defer func() {
		if err = lock.Release(ctx, db); err != nil {
			log.Fatal(err)
		}
	}()

	time.Sleep(10 * time.Second) // stands for the work
}

func TestCompatDBkitREADME(t *testing.T) {
	for name, program := range map[string]func(){
		"DoExclusively": dbkitREADMEDoExclusively,
		"DBManager":     dbkitREADMEDBManager,
	} {
		if program == nil {
			t.Errorf("go-dbkit README program %s is missing", name)
		}
	}
}

// dbkitMigration and dbkitLogger are go-dbkit's migrate.Migration and distrlock.Logger, restated here so
// that the module does not depend on go-dbkit.
type (
	dbkitMigration interface {
		ID() string
		UpSQL() []string
		DownSQL() []string
		UpFn() func(tx *sql.Tx) error
		DownFn() func(tx *sql.Tx) error
	}
	dbkitLogger interface {
		Errorf(format string, args ...interface{})
	}
)

// The signatures of go-dbkit's exported API, with dbkit.Dialect read as distrlock.Dialect.
var (
	_ func(distrlock.Dialect, ...distrlock.DBManagerOption) (*distrlock.DBManager, error) = distrlock.NewDBManager
	_ func(string) distrlock.DBManagerOption                                              = distrlock.WithTableName
	_ func(distrlock.Dialect, distrlock.DBManagerOpts) (*distrlock.DBManager, error)      = distrlock.NewDBManagerWithOpts
	_ func(distrlock.Dialect) (string, error)                                             = distrlock.CreateTableSQL
	_ func(distrlock.Dialect) (string, error)                                             = distrlock.DropTableSQL

	_ func(*distrlock.DBManager) string                                                                    = (*distrlock.DBManager).CreateTableSQL
	_ func(*distrlock.DBManager) string                                                                    = (*distrlock.DBManager).DropTableSQL
	_ func(*distrlock.DBManager, context.Context, distrlock.SQLExecutor, string) (distrlock.DBLock, error) = (*distrlock.DBManager).NewLock

	_ func(*distrlock.DBLock, context.Context, distrlock.SQLExecutor, time.Duration) error                        = (*distrlock.DBLock).Acquire
	_ func(*distrlock.DBLock, context.Context, distrlock.SQLExecutor, string, time.Duration) error                = (*distrlock.DBLock).AcquireWithStaticToken
	_ func(*distrlock.DBLock, context.Context, distrlock.SQLExecutor) error                                       = (*distrlock.DBLock).Extend
	_ func(*distrlock.DBLock, context.Context, distrlock.SQLExecutor) error                                       = (*distrlock.DBLock).Release
	_ func(*distrlock.DBLock) string                                                                              = (*distrlock.DBLock).Token
	_ func(*distrlock.DBLock, context.Context, *sql.DB, func(context.Context) error, ...distrlock.DoOption) error = (*distrlock.DBLock).DoExclusively

	_ func(context.Context, *sql.DB, distrlock.Dialect, string, func(context.Context) error, ...distrlock.DoOption) error = distrlock.DoExclusively

	_ func(time.Duration) distrlock.DoOption    = distrlock.WithLockTTL
	_ func(time.Duration) distrlock.DoOption    = distrlock.WithPeriodicExtendInterval
	_ func(time.Duration) distrlock.DoOption    = distrlock.WithReleaseTimeout
	_ func(distrlock.Logger) distrlock.DoOption = distrlock.WithLogger

	// Whatever go-dbkit accepted as a logger is accepted here.
	_ distrlock.Logger = dbkitLogger(nil)
	// Each migration works with go-dbkit's migration runner. The slice type differs: Migrations returns
	// []distrlock.Migration, which a go-dbkit user converts element by element.
	_ dbkitMigration = distrlock.Migration(nil)
	// *sql.DB, *sql.Tx and *sql.Conn, which go-dbkit's SQLExecutor accepted, are still accepted.
	_ distrlock.SQLExecutor = (*sql.DB)(nil)
	_ distrlock.SQLExecutor = (*sql.Tx)(nil)
	_ distrlock.SQLExecutor = (*sql.Conn)(nil)
)

// TestCompatDBkitAPI checks the values of go-dbkit's API that a signature cannot pin.
func TestCompatDBkitAPI(t *testing.T) {
	if distrlock.DefaultTableName != "distributed_locks" {
		t.Errorf("DefaultTableName = %q, go-dbkit's is distributed_locks", distrlock.DefaultTableName)
	}
	for _, c := range []struct {
		err  error
		text string
	}{
		{distrlock.ErrLockAlreadyAcquired, "distributed lock already acquired"},
		{distrlock.ErrLockAlreadyReleased, "distributed lock already released"},
	} {
		if c.err.Error() != c.text {
			t.Errorf("error text %q, go-dbkit's is %q", c.err.Error(), c.text)
		}
	}
	// go-dbkit's dialect values, so that distrlock.Dialect(dbkitDialect) converts.
	for d, want := range map[distrlock.Dialect]string{
		distrlock.DialectPostgres: "postgres",
		distrlock.DialectPgx:      "pgx",
		distrlock.DialectMySQL:    "mysql",
	} {
		if string(d) != want {
			t.Errorf("dialect %q, go-dbkit's is %q", string(d), want)
		}
	}
	// The migration go-dbkit users have already applied keeps its ID and its table, so migrators skip it
	// and fresh databases get the same start.
	for d, createTable := range map[distrlock.Dialect]string{
		distrlock.DialectPostgres: `CREATE TABLE IF NOT EXISTS "distributed_locks" ` +
			`(lock_key varchar(40) PRIMARY KEY, token uuid, expire_at timestamp);`,
		distrlock.DialectMySQL: "CREATE TABLE IF NOT EXISTS `distributed_locks` " +
			"(lock_key VARCHAR(40) PRIMARY KEY, token VARCHAR(36), expire_at BIGINT);",
	} {
		m, err := distrlock.NewDBManager(d)
		if err != nil {
			t.Fatal(err)
		}
		migs := m.Migrations()
		if len(migs) == 0 {
			t.Fatalf("%s: no migrations", d)
		}
		if id := migs[0].ID(); id != "distrlock_00001_create_table" {
			t.Errorf("%s: first migration %s, go-dbkit's is distrlock_00001_create_table", d, id)
		}
		if up := migs[0].UpSQL(); len(up) != 1 || up[0] != createTable {
			t.Errorf("%s: first migration runs %q, go-dbkit's runs %q", d, up, createTable)
		}
	}

	// A DBLock made by NewLock answers Release before any Acquire as go-dbkit's did, without a round trip.
	db, err := sql.Open("sqlite", "file::memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m, err := distrlock.NewDBManager(distrlock.DialectSQLite)
	if err != nil {
		t.Fatal(err)
	}
	lock, err := m.NewLock(context.Background(), db, "k")
	if err != nil {
		t.Fatal(err)
	}
	if err := lock.Release(context.Background(), db); !errors.Is(err, distrlock.ErrLockAlreadyReleased) {
		t.Errorf("Release before Acquire = %v, want an error matching ErrLockAlreadyReleased", err)
	}
}
