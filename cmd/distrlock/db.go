package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

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
// its table are created on first use; other databases need `distrlock migrate` once.
func (a *app) open(ctx context.Context, c *commonFlags) (*conn, int, bool) {
	dsn := c.dsn
	if dsn == "" {
		dsn = a.getenv("DISTRLOCK_DSN")
	}
	t, err := parseDSN(dsn)
	if err != nil {
		a.errorf("%v", err)
		return nil, exitUsage, false
	}
	m, err := distrlock.NewDBManager(t.dialect, distrlock.WithTableName(c.table))
	if err != nil {
		a.errorf("%v", err)
		return nil, exitUsage, false
	}
	if t.local {
		if err := os.MkdirAll(filepath.Dir(t.display), 0o700); err != nil {
			a.errorf("cannot create the directory of the local SQLite file: %v\n  set --dsn or DISTRLOCK_DSN to use another database", err)
			return nil, exitUnreachable, false
		}
	}
	db, err := sql.Open(t.driver, t.dsn)
	if err != nil {
		a.errorf("%v", err)
		return nil, exitUsage, false
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		_ = db.Close()
		a.errorf("cannot reach the database %s: %v\n  check --dsn or DISTRLOCK_DSN, and that the server is running and reachable", t.display, err)
		return nil, exitUnreachable, false
	}
	if t.local {
		if err := m.CreateTable(ctx, db); err != nil {
			_ = db.Close()
			a.errorf("cannot create the lock table in %s: %v", t.display, err)
			return nil, exitUnreachable, false
		}
	}
	return &conn{db: db, m: m, t: t}, 0, true
}

// explain prints err with what to do about it, and returns the exit code it deserves.
func (a *app) explain(c *conn, err error) int {
	msg := err.Error()
	switch {
	case isMissingTable(msg):
		a.errorf("%v\n  the lock table does not exist in %s: run `distrlock migrate` once", err, c.t.display)
		return exitUnreachable
	case errors.Is(err, distrlock.ErrInvalidKey), errors.Is(err, distrlock.ErrInvalidToken),
		errors.Is(err, distrlock.ErrInvalidTTL), errors.Is(err, distrlock.ErrInvalidOption):
		a.errorf("%v", err)
		return exitUsage
	case isConnectionError(err):
		a.errorf("%v\n  the database %s stopped answering", err, c.t.display)
		return exitUnreachable
	default:
		a.errorf("%v", err)
		return exitInternal
	}
}

func isMissingTable(msg string) bool {
	// PostgreSQL 42P01, MySQL/MariaDB 1146, SQLite.
	return strings.Contains(msg, "SQLSTATE 42P01") || strings.Contains(msg, "Error 1146") ||
		strings.Contains(msg, "no such table")
}

func isConnectionError(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, sql.ErrConnDone) ||
		strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "broken pipe") ||
		strings.Contains(err.Error(), "connection reset")
}

// migrate creates the lock table, or upgrades a go-dbkit one, on the database.
func (a *app) cmdMigrate(ctx context.Context, args []string) int {
	fs, cf := a.newFlagSet("migrate", "migrate [--dsn DSN] [--table NAME]",
		`Creates the lock table if it does not exist, in the shape this version uses, or upgrades a table
that go-dbkit's distrlock created (its locks stay held until they expire). Stop every go-dbkit replica
that uses the table first. On PostgreSQL, go-dbkit stored expiry times in its sessions' time zone: if
that was not the server's default, add it to the DSN (postgres://…?timezone=Europe/Berlin). The default
SQLite file needs no migrate: it is created on first use.`)
	if code, ok := a.parse(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		a.errorf("migrate takes no arguments")
		return exitUsage
	}
	c, code, ok := a.open(ctx, cf)
	if !ok {
		return code
	}
	defer c.Close()
	status := "ready"
	applied := []string{}
	// Get reads every column of the current shape: the table is missing, go-dbkit's, or ours.
	_, err := c.m.Get(ctx, c.db, "distrlock-migrate-probe")
	switch {
	case err == nil:
	case isMissingTable(err.Error()):
		if err := c.m.CreateTable(ctx, c.db); err != nil {
			return a.explain(c, err)
		}
		status = "created"
	case isMissingColumn(err.Error()):
		if applied, err = upgradeDBkit(ctx, c); err != nil {
			a.errorf("upgrading go-dbkit's table %s: %v", c.m.TableName(), err)
			return exitInternal
		}
		status = "upgraded"
	default:
		return a.explain(c, err)
	}
	if cf.json {
		return a.printJSON(map[string]any{"table": c.m.TableName(), "database": c.t.display, "status": status, "applied": applied})
	}
	switch status {
	case "upgraded":
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

func isMissingColumn(msg string) bool {
	// PostgreSQL 42703, MySQL/MariaDB 1054, SQLite.
	return strings.Contains(msg, "SQLSTATE 42703") || strings.Contains(msg, "Error 1054") ||
		strings.Contains(msg, "no such column")
}
