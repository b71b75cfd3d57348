package main

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/distrlock/distrlock"
)

// conn is an open database and the lock manager for its table.
type conn struct {
	db *sql.DB
	m  *distrlock.DBManager
	t  target
}

func (c *conn) Close() error { return c.db.Close() }

// open connects to the database the flags name and checks that it answers. The default SQLite file and
// its table are created on first use; other databases need `distrlock migrate` once, and another SQLite
// file is created only when create is set (by migrate).
func (a *app) open(ctx context.Context, c *commonFlags, create bool) (*conn, int, bool) {
	dsn := c.dsn
	if dsn == "" {
		dsn = a.getenv("DISTRLOCK_DSN")
	}
	t, err := parseDSN(dsn)
	if err != nil {
		return nil, a.failf(exitUsage, "%v", err), false
	}
	m, err := distrlock.NewDBManager(t.dialect, distrlock.WithTableName(c.table))
	if err != nil {
		return nil, a.failf(exitUsage, "%v", err), false
	}
	if t.local {
		if err := os.MkdirAll(filepath.Dir(t.display), 0o700); err != nil {
			return nil, a.fail(exitConfig, fmt.Sprintf("cannot create the directory of the local SQLite file: %v", err),
				"set --dsn or DISTRLOCK_DSN to use another database"), false
		}
	}
	if t.dialect == distrlock.DialectSQLite && !t.local && !create {
		// The driver would create a missing file, and the command then fail on the table it lacks.
		if _, err := os.Stat(t.display); errors.Is(err, fs.ErrNotExist) {
			return nil, a.fail(exitConfig, fmt.Sprintf("the SQLite file %s does not exist", t.display),
				fmt.Sprintf("create it and its lock table once with `distrlock migrate --dsn sqlite://%s`", t.display)), false
		}
	}
	db, err := sql.Open(t.driver, t.dsn)
	if err != nil {
		return nil, a.failf(exitUsage, "%v", err), false
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		_ = db.Close()
		switch {
		case t.dialect == distrlock.DialectSQLite:
			return nil, a.fail(exitConfig, fmt.Sprintf("cannot open the SQLite file %s: %v", t.display, err),
				"check the path in --dsn or DISTRLOCK_DSN, its directory and their permissions"), false
		case classify(err) == problemConfig:
			return nil, a.fail(exitConfig, fmt.Sprintf("the database %s refused the connection: %v", t.display, serverMessage(err)),
				"check the user, password and database name in --dsn or DISTRLOCK_DSN"), false
		default:
			return nil, a.fail(exitUnreachable, fmt.Sprintf("cannot reach the database %s: %v", t.display, err),
				"check --dsn or DISTRLOCK_DSN, and that the server is running and reachable"), false
		}
	}
	cn := &conn{db: db, m: m, t: t}
	if t.local {
		// The default file is the tool's own: create its table, or bring an earlier version's up to date.
		err := m.CreateTable(ctx, db)
		if err == nil {
			_, err = upgradeFrom(ctx, cn, queueVersion)
		}
		if err != nil {
			_ = db.Close()
			return nil, a.fail(exitConfig, fmt.Sprintf("cannot create the lock table in %s: %v", t.display, err),
				"set --dsn or DISTRLOCK_DSN to use another database"), false
		}
	}
	return cn, 0, true
}

// explain reports err with what to do about it, and returns the exit code it deserves.
func (a *app) explain(c *conn, err error) int {
	switch {
	case classify(err) == problemMissingTable:
		table := c.m.TableName()
		return a.fail(exitConfig, fmt.Sprintf("the lock table %s does not exist in %s", table, c.t.display),
			fmt.Sprintf("create it once with `distrlock migrate%s` and the same --dsn", tableHint(table)))
	case errors.Is(err, distrlock.ErrSchemaMismatch):
		table := c.m.TableName()
		return a.fail(exitConfig, fmt.Sprintf("the lock table %s in %s lacks columns this version uses: %s", table, c.t.display, describe(err)),
			fmt.Sprintf("upgrade it once with `distrlock migrate%s` and the same --dsn", tableHint(table)))
	case errors.Is(err, distrlock.ErrPreparedStatementPooling):
		return a.fail(exitConfig, describe(err),
			"behind PgBouncer in transaction mode add default_query_exec_mode=exec to the --dsn")
	case errors.Is(err, distrlock.ErrInvalidKey), errors.Is(err, distrlock.ErrInvalidToken),
		errors.Is(err, distrlock.ErrInvalidTTL), errors.Is(err, distrlock.ErrInvalidOption):
		return a.failf(exitUsage, "%s", describe(err))
	case classify(err) == problemConfig:
		return a.fail(exitConfig, describe(err),
			fmt.Sprintf("the database %s refused the statement: check the DSN's user and its privileges on the table", c.t.display))
	case classify(err) == problemUnreachable:
		return a.fail(exitUnreachable, describe(err), fmt.Sprintf("the database %s stopped answering", c.t.display))
	default:
		return a.failf(exitInternal, "%s", describe(err))
	}
}

func tableHint(table string) string {
	if table == distrlock.DefaultTableName {
		return ""
	}
	return " --table " + table
}

// describe is err's message without the empty key the library names in errors of calls that have none
// (`distrlock: list "": …`).
func describe(err error) string {
	msg := err.Error()
	if cause := errors.Unwrap(err); cause != nil {
		op, ok := strings.CutSuffix(msg, ` "": `+cause.Error())
		if ok && strings.HasPrefix(op, "distrlock: ") && !strings.Contains(strings.TrimPrefix(op, "distrlock: "), " ") {
			return op + ": " + cause.Error()
		}
	}
	return msg
}

// problem is what a database error means for the user.
type problem int

const (
	problemOther        problem = iota
	problemUnreachable          // no answer: refused, timed out, unknown host, connection lost
	problemConfig               // the server answered and refused: login, database, privileges
	problemMissingTable         // the lock table does not exist
)

// classify tells from the driver's error what went wrong.
func classify(err error) problem {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "42P01": // undefined_table
			return problemMissingTable
		case strings.HasPrefix(pgErr.Code, "28"), // invalid_authorization_specification, invalid_password
			pgErr.Code == "3D000", // invalid_catalog_name: no such database
			pgErr.Code == "42501": // insufficient_privilege
			return problemConfig
		}
	}
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		switch myErr.Number {
		case 1146: // ER_NO_SUCH_TABLE
			return problemMissingTable
		case 1044, 1045, 1049, 1142, 1698: // access denied to the database, for the user; unknown database; table access denied
			return problemConfig
		}
	}
	var sqliteErr *sqlite.Error
	if errors.As(err, &sqliteErr) {
		switch {
		case strings.Contains(sqliteErr.Error(), "no such table"):
			return problemMissingTable
		case sqliteErr.Code() == sqlite3.SQLITE_CANTOPEN, sqliteErr.Code() == sqlite3.SQLITE_NOTADB,
			sqliteErr.Code()&0xff == sqlite3.SQLITE_READONLY, sqliteErr.Code() == sqlite3.SQLITE_PERM:
			return problemConfig
		}
	}
	var netErr net.Error
	switch {
	case errors.As(err, &netErr), errors.Is(err, context.DeadlineExceeded), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, driver.ErrBadConn), errors.Is(err, mysql.ErrInvalidConn), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return problemUnreachable
	}
	msg := err.Error()
	if strings.Contains(msg, "connection refused") || strings.Contains(msg, "broken pipe") ||
		strings.Contains(msg, "connection reset") {
		return problemUnreachable
	}
	return problemOther
}

// serverMessage is the server's own words in err when there are some: pgx repeats them once per address
// and TLS mode it tried.
func serverMessage(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr
	}
	return err
}

// migrate creates the lock table, or upgrades a go-dbkit one, on the database.
func (a *app) cmdMigrate(ctx context.Context, args []string) int {
	fs, cf := a.newFlagSet("migrate", "migrate [--dsn DSN] [--table NAME]",
		`Creates the lock table if it does not exist, in the shape this version uses, or upgrades a table
that go-dbkit's distrlock or an earlier distrlock created (its locks stay held until they expire). Stop every go-dbkit replica
that uses the table first. On PostgreSQL, go-dbkit stored expiry times in its sessions' time zone: if
that was not the server's default, add it to the DSN (postgres://…?timezone=Europe/Berlin). The default
SQLite file needs no migrate: it is created, or upgraded, on first use; another SQLite file is created
by migrate.`)
	if code, ok := a.parse(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return a.failf(exitUsage, "migrate takes no arguments")
	}
	c, code, ok := a.open(ctx, cf, true)
	if !ok {
		return code
	}
	defer c.Close()
	status := "ready"
	applied := []string{}
	// Get reads every column of the current shape: the table is missing, go-dbkit's, or ours (perhaps of an
	// earlier version, which has the fence that go-dbkit's lacks).
	_, err := c.m.Get(ctx, c.db, "distrlock-migrate-probe")
	if err != nil && isMissingColumn(err.Error()) && hasFence(ctx, c) {
		err = nil
	}
	switch {
	case err == nil:
		// Ours: apply the steps after the table's own (since distrlock_00004_wait_queue, the waiters' queue).
		if applied, err = upgradeFrom(ctx, c, queueVersion); err != nil {
			return a.failf(exitInternal, "upgrading table %s: %v", c.m.TableName(), err)
		}
		if len(applied) > 0 {
			status = "upgraded"
		}
	case classify(err) == problemMissingTable:
		if err := c.m.CreateTable(ctx, c.db); err != nil {
			return a.explain(c, err)
		}
		// The fence floor too, which CreateTableSQL makes on MySQL only, so that a later migrate has nothing
		// to do.
		if _, err := applyFrom(ctx, c, floorVersion, true); err != nil {
			return a.failf(exitInternal, "creating table %s: %v", c.m.TableName(), err)
		}
		status = "created"
	case isMissingColumn(err.Error()):
		if applied, err = upgradeDBkit(ctx, c); err != nil {
			return a.failf(exitInternal, "upgrading go-dbkit's table %s: %v", c.m.TableName(), err)
		}
		status = "upgraded"
	default:
		return a.explain(c, err)
	}
	if cf.json {
		return a.printJSON(map[string]any{"table": c.m.TableName(), "database": c.t.display, "status": status, "applied": applied})
	}
	switch {
	case status == "upgraded" && len(applied) > 0 && !strings.Contains(applied[0], "00002"):
		fmt.Fprintf(a.stdout, "table %s in %s upgraded (%s)\n", c.m.TableName(), c.t.display, strings.Join(applied, ", "))
	case status == "upgraded":
		fmt.Fprintf(a.stdout, "table %s in %s upgraded from go-dbkit's shape (%s); its locks stay held until they expire\n",
			c.m.TableName(), c.t.display, strings.Join(applied, ", "))
	default:
		fmt.Fprintf(a.stdout, "table %s is %s in %s\n", c.m.TableName(), status, c.t.display)
	}
	return exitOK
}

// upgradeDBkit applies the migrations after the first (go-dbkit's table) and returns their IDs. Where
// DDL is transactional (PostgreSQL, SQLite) they run in one transaction; MySQL commits each statement.
func upgradeDBkit(ctx context.Context, c *conn) ([]string, error) {
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	var ids []string
	for _, mig := range c.m.Migrations()[1:] {
		for _, stmt := range mig.UpSQL() {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return nil, fmt.Errorf("%s: %w", mig.ID(), err)
			}
		}
		ids = append(ids, mig.ID())
	}
	return ids, tx.Commit()
}

// queueVersion is the first migration whose columns a table of ours may lack: distrlock_00004_wait_queue.
const queueVersion = "distrlock_00004"

// upgradeFrom applies the migrations from the one whose ID starts with first on, if the table lacks the
// columns that step adds (read with a query that selects them), and returns their IDs. A table that has
// them gets the steps from distrlock_00005_fence_floor on, which insert rows only where they are missing.
func upgradeFrom(ctx context.Context, c *conn, first string) ([]string, error) {
	probe := "SELECT queue_head, queue_tail, freed_at FROM " + quoteTable(c.m) + " WHERE 1 = 0"
	rows, err := c.db.QueryContext(ctx, probe)
	if err == nil {
		if err := rows.Close(); err != nil {
			return nil, err
		}
		return applyFrom(ctx, c, floorVersion, true)
	}
	if !isMissingColumn(err.Error()) {
		return nil, err
	}
	return applyFrom(ctx, c, first, false)
}

// floorVersion is the first migration that only inserts a row (the fence floor), idempotently.
const floorVersion = "distrlock_00005"

// applyFrom applies the migrations from the one whose ID starts with first on and returns their IDs; with
// ifChanged, only the IDs of those whose statements changed a row.
func applyFrom(ctx context.Context, c *conn, first string, ifChanged bool) ([]string, error) {
	var ids []string
	for _, mig := range c.m.Migrations() {
		if mig.ID() < first {
			continue
		}
		changed := false
		for _, stmt := range mig.UpSQL() {
			res, err := c.db.ExecContext(ctx, stmt)
			if err != nil {
				return ids, fmt.Errorf("%s: %w", mig.ID(), err)
			}
			if n, err := res.RowsAffected(); err == nil && n > 0 {
				changed = true
			}
		}
		if changed || !ifChanged {
			ids = append(ids, mig.ID())
		}
	}
	return ids, nil
}

// hasFence reports whether the table has the fence column that distrlock_00002 added to go-dbkit's table.
func hasFence(ctx context.Context, c *conn) bool {
	rows, err := c.db.QueryContext(ctx, "SELECT fence FROM "+quoteTable(c.m)+" WHERE 1 = 0")
	if err != nil {
		return false
	}
	return rows.Close() == nil
}

// quoteTable quotes the manager's table name, which NewDBManager validated (letters, digits and
// underscores, optionally schema-qualified), as its dialect quotes identifiers.
func quoteTable(m *distrlock.DBManager) string {
	q := `"`
	if d := m.Dialect(); d == distrlock.DialectMySQL || d == distrlock.DialectMariaDB {
		q = "`"
	}
	parts := strings.Split(m.TableName(), ".")
	for i, p := range parts {
		parts[i] = q + p + q
	}
	return strings.Join(parts, ".")
}

func isMissingColumn(msg string) bool {
	// PostgreSQL 42703, MySQL/MariaDB 1054, SQLite.
	return strings.Contains(msg, "SQLSTATE 42703") || strings.Contains(msg, "Error 1054") ||
		strings.Contains(msg, "no such column")
}
