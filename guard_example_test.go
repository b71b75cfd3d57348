package distrlock_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/distrlock/distrlock"
)

// The examples of docs/guard.md and docs/resume.md. Those on PostgreSQL are compiled and not run; those on
// SQLite run, with their output checked.

// A holder's writes to the data next to the lock, each guarded by the lease in its own transaction.
func ExampleLease_Guard() {
	db, err := sql.Open("pgx", "postgres://postgres@127.0.0.1:5432/test")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	manager, err := distrlock.NewDBManager(distrlock.DialectPgx)
	if err != nil {
		log.Fatal(err)
	}
	lease, err := manager.Hold(ctx, db, "account/42", distrlock.WithLockTTL(30*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer lease.Release(ctx)

	tx, err := db.BeginTx(ctx, nil) // READ COMMITTED, PostgreSQL's default
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Rollback() // a no-op once committed
	// First in the transaction: the lease still holds, and no one can take the lock before this commits.
	switch err := lease.Guard(ctx, tx); {
	case errors.Is(err, distrlock.ErrLockAlreadyReleased):
		return // the lease ended: write nothing (the deferred Rollback), and acquire again
	case err != nil:
		log.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE accounts SET balance = balance - 10 WHERE id = 42`); err != nil {
		log.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		log.Fatal(err)
	}
}

// On SQLite the guarded transaction must hold the write lock from its start: _txlock=immediate makes
// BeginTx send BEGIN IMMEDIATE. A write after the lease ended is refused.
func ExampleDBLock_Guard() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "distrlock-guard-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "app.db")+"?_pragma=busy_timeout(5000)&_txlock=immediate")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	manager, err := distrlock.NewDBManager(distrlock.DialectSQLite)
	if err != nil {
		log.Fatal(err)
	}
	createTable(ctx, db, manager)
	if _, err := db.ExecContext(ctx, `CREATE TABLE ledger (entry TEXT)`); err != nil {
		log.Fatal(err)
	}

	lock, err := manager.NewLock(ctx, db, "ledger")
	if err != nil {
		log.Fatal(err)
	}
	if err := lock.Acquire(ctx, db, 100*time.Millisecond); err != nil {
		log.Fatal(err)
	}
	write := func(entry string) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if err := lock.Guard(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO ledger (entry) VALUES (?)`, entry); err != nil {
			return err
		}
		return tx.Commit()
	}
	fmt.Println("while held:", write("first"))
	time.Sleep(150 * time.Millisecond) // a pause longer than the lease
	fmt.Println("after the lease ended:", errors.Is(write("stale"), distrlock.ErrLockAlreadyReleased))
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM ledger`).Scan(&n); err != nil {
		log.Fatal(err)
	}
	fmt.Println("entries:", n)
	// Output:
	// while held: <nil>
	// after the lease ended: true
	// entries: 1
}

// A worker that restarts takes back the lease it held before, with a larger fence, instead of waiting for
// it to run out.
func ExampleWithToken() {
	db, err := sql.Open("pgx", "postgres://postgres@127.0.0.1:5432/test")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	manager, err := distrlock.NewDBManager(distrlock.DialectPgx)
	if err != nil {
		log.Fatal(err)
	}
	// A secret that survives the restart and no other worker has: from the instance's volume, say.
	token := os.Getenv("SHARD_7_LOCK_TOKEN")
	lease, err := manager.Hold(ctx, db, "shard/7", distrlock.WithToken(token), distrlock.WithLockTTL(time.Minute))
	if err != nil {
		log.Fatal(err) // distrlock.ErrLockAlreadyAcquired: another token holds it
	}
	defer lease.Release(ctx)
	log.Printf("serving shard 7 with fence %d", lease.Fence())
}

// A lock taken in the transaction that records a job is kept, once committed, by the shared heartbeat.
func ExampleDBLock_Keep() {
	ctx := context.Background()
	db, closeDB := openSQLite()
	defer closeDB()
	manager, err := distrlock.NewDBManager(distrlock.DialectSQLite)
	if err != nil {
		log.Fatal(err)
	}
	createTable(ctx, db, manager)
	if _, err := db.ExecContext(ctx, `CREATE TABLE jobs (name TEXT PRIMARY KEY)`); err != nil {
		log.Fatal(err)
	}

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Rollback() // a no-op once committed
	lock, err := manager.NewLock(ctx, tx, "job:export")
	if err != nil {
		log.Fatal(err)
	}
	if err := lock.Acquire(ctx, tx, 30*time.Second); err != nil {
		log.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO jobs (name) VALUES (?)`, "export"); err != nil {
		log.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		log.Fatal(err)
	}
	// No second acquire: the lease is extended in the background from here on.
	lease, err := lock.Keep(ctx, db)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("kept with fence", lease.Fence())
	// Work under lease.Context() ...
	if err := lease.Release(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("released")
	// Output:
	// kept with fence 1
	// released
}
