// Command quickstart shows distrlock's main job on a SQLite file in a temporary directory, with nothing to
// set up:
//
//	go run ./examples/quickstart
//
// Two workers contend for one lock: the first acquires it and gets a fencing token, the second is refused
// until the first releases, then acquires it with a larger fence. Finally DoExclusively runs a job under
// the lock, extending the lease in the background and releasing it afterwards.
package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver

	"github.com/distrlock/distrlock"
)

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "distrlock-quickstart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// busy_timeout makes concurrent writers wait for each other instead of failing with SQLITE_BUSY.
	path := filepath.Join(dir, "locks.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		return err
	}
	defer db.Close()
	fmt.Println("SQLite database:", path)

	manager, err := distrlock.NewDBManager(distrlock.DialectSQLite)
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, manager.CreateTableSQL()); err != nil {
		return err
	}
	fmt.Printf("created table %s\n", manager.TableName())

	const key = "nightly-report"
	const ttl = 30 * time.Second

	// NewLock sends nothing: the first acquire creates the key's row.
	workerA, err := manager.NewLock(ctx, db, key)
	if err != nil {
		return err
	}
	workerB, err := manager.NewLock(ctx, db, key)
	if err != nil {
		return err
	}

	if err := workerA.Acquire(ctx, db, ttl); err != nil {
		return err
	}
	firstFence := workerA.Fence()
	fmt.Printf("worker A acquired %q for %v: fence %d\n", key, ttl, firstFence)

	err = workerB.Acquire(ctx, db, ttl)
	if !errors.Is(err, distrlock.ErrLockAlreadyAcquired) {
		return fmt.Errorf("worker B: want ErrLockAlreadyAcquired, got %v", err)
	}
	fmt.Printf("worker B refused: %v\n", err)

	if err := workerA.Release(ctx, db); err != nil {
		return err
	}
	fmt.Printf("worker A released %q\n", key)

	if err := workerB.Acquire(ctx, db, ttl); err != nil {
		return err
	}
	fmt.Printf("worker B acquired %q: fence %d > %d, so a store that has seen B's fence refuses writes from A\n",
		key, workerB.Fence(), firstFence)
	if err := workerB.Release(ctx, db); err != nil {
		return err
	}
	fmt.Printf("worker B released %q\n", key)

	// DoExclusively acquires, runs the job while extending the lease, and releases when the job returns.
	job, err := manager.NewLock(ctx, db, key)
	if err != nil {
		return err
	}
	err = job.DoExclusively(ctx, db, func(ctx context.Context) error {
		fmt.Printf("DoExclusively: job running under %q with fence %d\n", key, job.Fence())
		return nil
	}, distrlock.WithLockTTL(ttl))
	if err != nil {
		return err
	}
	fmt.Printf("DoExclusively: job done, %q released\n", key)
	return nil
}
