// Package torture runs distrlock under faults and counts what must never happen: two holders of one key at
// once, fences that go back, writes accepted from a stale fence, and locks nobody can take any more.
//
// Worker processes contend for a few keys through distrlock, over a fault proxy, and report every step of
// their work to a witness: tables written over a direct connection, stamped with the database's clock. The
// checker reads the witness afterwards. See docs/faults.md.
package torture

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// Dialect is the witness's SQL for one database.
type Dialect struct {
	Name   string // "postgres" or "mysql"
	Driver string // database/sql driver name
	// nowMicros is the database's clock in µs since the epoch, as an SQL expression.
	nowMicros string
	// acquiredMicros is the lock table's acquired_at in µs since the epoch, as an SQL expression.
	acquiredMicros string
	ph             func(i int) string // placeholder i (1-based)
}

var (
	// Postgres is PostgreSQL through pgx.
	Postgres = Dialect{Name: "postgres", Driver: "pgx",
		nowMicros:      "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::bigint",
		acquiredMicros: "(EXTRACT(EPOCH FROM acquired_at) * 1000000)::bigint",
		ph:             func(i int) string { return fmt.Sprintf("$%d", i) }}
	// MySQL is MySQL or MariaDB through go-sql-driver/mysql.
	MySQL = Dialect{Name: "mysql", Driver: "mysql",
		nowMicros:      "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))",
		acquiredMicros: "acquired_at", // the MySQL table keeps µs since the epoch
		ph:             func(int) string { return "?" }}
)

// Witness is the run's record: its tables are named after the run, so runs never mix.
type Witness struct {
	d                        Dialect
	events, resources, locks string
}

// NewWitness names the witness tables of run (letters, digits and underscores), and the lock table whose
// fences it compares each write with.
func NewWitness(d Dialect, run string) *Witness {
	return &Witness{d: d, events: "torture_events_" + run, resources: "torture_resource_" + run, locks: LockTable(run)}
}

// LockTable is the name of run's lock table.
func LockTable(run string) string { return "torture_locks_" + run }

// Create makes the witness tables, with one resource row per key.
func (w *Witness) Create(ctx context.Context, db *sql.DB, keys []string) error {
	stmts := []string{
		"DROP TABLE IF EXISTS " + w.events,
		"DROP TABLE IF EXISTS " + w.resources,
		"CREATE TABLE " + w.events + ` (
			lock_key VARCHAR(64) NOT NULL, worker VARCHAR(64) NOT NULL, fence BIGINT NOT NULL,
			ts_us BIGINT NOT NULL, accepted INT NOT NULL, hold_id VARCHAR(80) NOT NULL, lock_fence BIGINT NOT NULL,
			acquired_us BIGINT NOT NULL, wait_from_us BIGINT NOT NULL)`,
		"CREATE TABLE " + w.resources + ` (lock_key VARCHAR(64) PRIMARY KEY, fence BIGINT NOT NULL, writer VARCHAR(64))`,
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("witness: %s: %w", strings.Fields(s)[0], err)
		}
	}
	for _, k := range keys {
		if _, err := db.ExecContext(ctx, "INSERT INTO "+w.resources+" (lock_key, fence) VALUES ("+w.d.ph(1)+", 0)", k); err != nil {
			return fmt.Errorf("witness: %w", err)
		}
	}
	return nil
}

// Drop removes the witness tables.
func (w *Witness) Drop(ctx context.Context, db *sql.DB) {
	_, _ = db.ExecContext(ctx, "DROP TABLE IF EXISTS "+w.events)
	_, _ = db.ExecContext(ctx, "DROP TABLE IF EXISTS "+w.resources)
}

// Step records one step of work done under a lock, in one transaction: the protected resource is written
// under the fence (accepted only if no larger fence has written it), and the event is stamped with the
// database's clock and with the fence and acquisition time the lock table holds for the key at that moment:
// a write accepted while the lock table already shows a newer fence came from a holder whose lease had
// ended, which fencing alone does not stop until the newer holder writes. waitFrom is when the holder began
// to wait for the lock (µs since the epoch on the worker's clock, the same host's as the database's), 0 if
// it did not wait. It runs even if ctx has ended (the work it records happened).
func (w *Witness) Step(ctx context.Context, db *sql.DB, key, worker, holdID string, fence, waitFrom int64) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if err := w.Record(ctx, tx, true, key, worker, holdID, fence, waitFrom); err != nil {
		return err
	}
	return tx.Commit()
}

// Record is Step's two statements in the caller's transaction tx; with fenced false the resource is written
// with no fence check, and always accepted: what a holder that relies on [distrlock.DBLock.Guard] instead
// of fences writes.
func (w *Witness) Record(ctx context.Context, tx *sql.Tx, fenced bool, key, worker, holdID string, fence, waitFrom int64) error {
	p := w.d.ph
	update := "UPDATE " + w.resources + " SET fence = " + p(1) + ", writer = " + p(2) + " WHERE lock_key = " + p(3)
	args := []any{fence, worker, key}
	if fenced {
		update += " AND fence <= " + p(4)
		args = append(args, fence)
	}
	res, err := tx.ExecContext(ctx, update, args...)
	if err != nil {
		return err
	}
	accepted := 1
	if fenced {
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			accepted = 0
		}
	}
	_, err = tx.ExecContext(ctx, "INSERT INTO "+w.events+
		" (lock_key, worker, fence, ts_us, accepted, hold_id, lock_fence, acquired_us, wait_from_us) "+
		"SELECT "+p(1)+", "+p(2)+", "+p(3)+", "+w.d.nowMicros+", "+p(4)+", "+p(5)+", COALESCE(MAX(fence), 0), "+
		"COALESCE(MAX("+w.d.acquiredMicros+"), 0), "+p(6)+" FROM "+w.locks+" WHERE lock_key = "+p(7),
		key, worker, fence, accepted, holdID, waitFrom, key)
	return err
}
