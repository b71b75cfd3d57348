package compat

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distrlock/distrlock"
	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"
)

// target is one database the migrator tests run on. Its DSNs come from DISTRLOCK_POSTGRES_DSN and
// DISTRLOCK_MYSQL_DSN, with the root module's defaults; SQLite is a temporary file.
type target struct {
	name    string
	dialect distrlock.Dialect
	driver  string
	dsn     string
	// gooseDialect and sqlMigrateDialect are the names goose and sql-migrate give the database.
	gooseDialect, sqlMigrateDialect string
	// table is the lock table the test migrates: a name of its own on the shared servers, the default
	// name in SQLite's private file.
	table string
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// targets returns PostgreSQL (pgx), MariaDB and SQLite, each with a fresh table name that starts with prefix.
func targets(t *testing.T, prefix string) []target {
	suffix := randomSuffix(t)
	mysqlDSN := envOr("DISTRLOCK_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/test")
	// sql-migrate reads its applied_at column into a time.Time, which go-sql-driver/mysql only does with
	// parseTime=true.
	if strings.Contains(mysqlDSN, "?") {
		mysqlDSN += "&parseTime=true"
	} else {
		mysqlDSN += "?parseTime=true"
	}
	return []target{
		{
			name: "postgres", dialect: distrlock.DialectPgx, driver: "pgx",
			dsn:          envOr("DISTRLOCK_POSTGRES_DSN", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"),
			gooseDialect: "postgres", sqlMigrateDialect: "postgres", table: prefix + "_" + suffix,
		},
		{
			name: "mariadb", dialect: distrlock.DialectMySQL, driver: "mysql", dsn: mysqlDSN,
			gooseDialect: "mysql", sqlMigrateDialect: "mysql", table: prefix + "_" + suffix,
		},
		{
			name: "sqlite", dialect: distrlock.DialectSQLite, driver: "sqlite",
			dsn:          "file:" + filepath.Join(t.TempDir(), "app.db") + "?_pragma=busy_timeout(5000)&_txlock=immediate",
			gooseDialect: "sqlite3", sqlMigrateDialect: "sqlite3", table: distrlock.DefaultTableName,
		},
	}
}

func randomSuffix(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// open opens and pings the target's database; an unreachable one skips the test, except in CI (CI=true),
// where a missing database is a failure. Each call returns a new *sql.DB, closed at the end of the test
// (golang-migrate closes the one it is given when it is closed).
func (tg target) open(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open(tg.driver, tg.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s unreachable (CI=true, so this fails instead of skipping): %v", tg.name, err)
		}
		t.Skipf("%s unreachable: %v (run `make test` to start it)", tg.name, err)
	}
	return db
}

// manager returns the distrlock manager for the target's table.
func (tg target) manager(t *testing.T) *distrlock.DBManager {
	t.Helper()
	m, err := distrlock.NewDBManager(tg.dialect, distrlock.WithTableName(tg.table))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// dropAfter drops the lock table and the given version tables when the test ends, whatever state it left.
func (tg target) dropAfter(t *testing.T, db *sql.DB, versionTables ...string) {
	t.Cleanup(func() {
		m := tg.manager(t)
		stmts := []string{m.DropTableSQL()}
		for _, v := range versionTables {
			stmts = append(stmts, "DROP TABLE IF EXISTS "+v)
		}
		for _, s := range stmts {
			if _, err := db.ExecContext(context.Background(), s); err != nil {
				t.Errorf("clean up: %s: %v", s, err)
			}
		}
	})
}

// tableExists reports whether the target's lock table exists.
func (tg target) tableExists(t *testing.T, db *sql.DB) bool {
	t.Helper()
	var q string
	switch tg.dialect {
	case distrlock.DialectMySQL:
		q = `SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?`
	case distrlock.DialectSQLite:
		q = `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`
	default:
		q = `SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1`
	}
	var n int
	if err := db.QueryRowContext(context.Background(), q, tg.table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// checkLocks proves the migrated table works: a lock is taken, refused to another holder, extended and
// released, and the next holder's fence is larger.
func checkLocks(t *testing.T, m *distrlock.DBManager, db *sql.DB) {
	t.Helper()
	ctx := context.Background()
	key := "migrated-" + randomSuffix(t)
	a, err := m.NewLock(ctx, db, key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.NewLock(ctx, db, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Acquire(ctx, db, time.Minute); err != nil {
		t.Fatalf("acquire on the migrated table: %v", err)
	}
	if err := b.Acquire(ctx, db, time.Minute); !errors.Is(err, distrlock.ErrLockAlreadyAcquired) {
		t.Fatalf("second holder: %v, want ErrLockAlreadyAcquired", err)
	}
	if err := a.Extend(ctx, db); err != nil {
		t.Fatalf("extend: %v", err)
	}
	if err := a.Release(ctx, db); err != nil {
		t.Fatalf("release: %v", err)
	}
	if err := b.Acquire(ctx, db, time.Minute); err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
	if a.Fence() < 1 || b.Fence() <= a.Fence() {
		t.Fatalf("fences %d then %d, want positive and growing", a.Fence(), b.Fence())
	}
	if err := b.Release(ctx, db); err != nil {
		t.Fatal(err)
	}
	// The migrated table prunes, and the pruned key comes back above its fences.
	if n, err := m.Prune(ctx, db, 0); err != nil || n < 1 {
		t.Fatalf("prune on the migrated table: %d, %v", n, err)
	}
	if err := a.Acquire(ctx, db, time.Minute); err != nil {
		t.Fatal(err)
	}
	if a.Fence() <= b.Fence() {
		t.Fatalf("fence %d after pruning, %d before", a.Fence(), b.Fence())
	}
	if err := a.Release(ctx, db); err != nil {
		t.Fatal(err)
	}
}

// quoteIdent quotes a version-table name the way the target's dialect quotes identifiers.
func (tg target) quoteIdent(name string) string {
	if tg.dialect == distrlock.DialectMySQL {
		return "`" + name + "`"
	}
	return fmt.Sprintf("%q", name)
}
