package distrlock

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"
)

// Default DSNs of the integration tests; DISTRLOCK_POSTGRES_DSN and DISTRLOCK_MYSQL_DSN override them.
const (
	defaultPostgresDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	defaultMySQLDSN    = "root@tcp(127.0.0.1:3306)/test"
)

// testDB is one real database the integration tests run against.
type testDB struct {
	name    string // for subtest names
	dialect Dialect
	driver  string
	dsn     string
	db      *sql.DB
}

func postgresDSN() string { return envOr("DISTRLOCK_POSTGRES_DSN", defaultPostgresDSN) }
func mysqlDSN() string    { return envOr("DISTRLOCK_MYSQL_DSN", defaultMySQLDSN) }

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// withParams appends query parameters to a go-sql-driver DSN.
func withParams(dsn, params string) string {
	if params == "" {
		return dsn
	}
	if strings.Contains(dsn, "?") {
		return dsn + "&" + params
	}
	return dsn + "?" + params
}

// openDB opens and pings a database; an unreachable one skips the test, except in CI (CI=true), where a
// missing database is a failure.
func openDB(t testing.TB, name string, dialect Dialect, driver, dsn string) *testDB {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s unreachable at %s (CI=true, so this fails instead of skipping): %v", name, dsn, err)
		}
		t.Skipf("%s unreachable at %s: %v (run `make test` to start it)", name, dsn, err)
	}
	return &testDB{name: name, dialect: dialect, driver: driver, dsn: dsn, db: db}
}

func openPostgres(t testing.TB) *testDB {
	return openDB(t, "postgres", DialectPgx, "pgx", postgresDSN())
}

// openMySQL opens MariaDB/MySQL with extra DSN parameters such as "interpolateParams=true".
func openMySQL(t testing.TB, params string) *testDB {
	name := "mariadb"
	if params != "" {
		name += "(" + params + ")"
	}
	return openDB(t, name, DialectMariaDB, "mysql", withParams(mysqlDSN(), params))
}

// openSQLite opens a fresh database file in the test's temporary directory. The busy timeout makes
// concurrent writers wait for each other instead of failing with SQLITE_BUSY.
func openSQLite(t testing.TB) *testDB {
	path := filepath.Join(t.TempDir(), "locks.db")
	return openDB(t, "sqlite", DialectSQLite, "sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_txlock=immediate")
}

// allDBs returns every database the integration tests cover.
func allDBs(t *testing.T) []*testDB {
	return []*testDB{openPostgres(t), openMySQL(t, ""), openMySQL(t, "interpolateParams=true"), openSQLite(t)}
}

// newTestManager creates a table of its own for the test and drops it afterwards.
func newTestManager(t testing.TB, tdb *testDB) *DBManager {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	m, err := NewDBManager(tdb.dialect, WithTableName("distrlock_test_"+hex.EncodeToString(b[:])))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := tdb.db.ExecContext(ctx, m.CreateTableSQL()); err != nil {
		t.Fatalf("create table: %v", err)
	}
	t.Cleanup(func() {
		if _, err := tdb.db.ExecContext(context.Background(), m.DropTableSQL()); err != nil {
			t.Errorf("drop table: %v", err)
		}
	})
	return m
}
