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

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver

	"github.com/distrlock/distrlock"
)

// The examples run on SQLite in a temporary directory, so their output is checked without any database
// server. The README's snippets are these functions' bodies (TestREADMESnippetsAreExamples checks it);
// with PostgreSQL or MySQL only the dialect constant and the sql.Open call change.

// openSQLite opens a SQLite database in a new temporary directory; closeDB closes it and removes the
// directory. busy_timeout makes concurrent writers wait for each other instead of failing with SQLITE_BUSY.
func openSQLite() (db *sql.DB, closeDB func()) {
	dir, err := os.MkdirTemp("", "distrlock-example-")
	if err != nil {
		log.Fatal(err)
	}
	db, err = sql.Open("sqlite", "file:"+filepath.Join(dir, "locks.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		log.Fatal(err)
	}
	return db, func() {
		_ = db.Close()
		_ = os.RemoveAll(dir)
	}
}

// createTable creates the manager's table, as a migration would.
func createTable(ctx context.Context, db *sql.DB, manager *distrlock.DBManager) {
	if _, err := db.ExecContext(ctx, manager.CreateTableSQL()); err != nil {
		log.Fatal(err)
	}
}

func ExampleDBLock_Acquire() {
	ctx := context.Background()
	db, closeDB := openSQLite() // any *sql.DB; here SQLite in a temporary directory
	defer closeDB()

	manager, err := distrlock.NewDBManager(distrlock.DialectSQLite)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, manager.CreateTableSQL()); err != nil {
		log.Fatal(err)
	}

	lock, err := manager.NewLock(ctx, db, "invoice-42")
	if err != nil {
		log.Fatal(err)
	}
	if err := lock.Acquire(ctx, db, time.Minute); err != nil {
		log.Fatal(err) // errors.Is(err, distrlock.ErrLockAlreadyAcquired) when someone else holds it
	}
	fmt.Println("acquired with fence", lock.Fence())

	// ... the work the lock protects, done within the minute (or call lock.Extend) ...

	if err := lock.Release(ctx, db); err != nil {
		log.Fatal(err)
	}
	fmt.Println("released")
	// Output:
	// acquired with fence 1
	// released
}

func ExampleDBManager_NewLock() {
	ctx := context.Background()
	db, closeDB := openSQLite()
	defer closeDB()
	manager, err := distrlock.NewDBManager(distrlock.DialectSQLite)
	if err != nil {
		log.Fatal(err)
	}
	createTable(ctx, db, manager)

	// NewLock sends nothing to the database; two DBLocks on one key stand for two workers.
	first, err := manager.NewLock(ctx, db, "reindex")
	if err != nil {
		log.Fatal(err)
	}
	second, err := manager.NewLock(ctx, db, "reindex")
	if err != nil {
		log.Fatal(err)
	}

	if err := first.Acquire(ctx, db, time.Minute); err != nil {
		log.Fatal(err)
	}
	err = second.Acquire(ctx, db, time.Minute)
	fmt.Println("second worker refused:", errors.Is(err, distrlock.ErrLockAlreadyAcquired))

	_, err = manager.NewLock(ctx, db, "")
	fmt.Println("empty key rejected:", errors.Is(err, distrlock.ErrInvalidKey))
	// Output:
	// second worker refused: true
	// empty key rejected: true
}

func ExampleDBLock_AcquireWithStaticToken() {
	ctx := context.Background()
	db, closeDB := openSQLite()
	defer closeDB()
	manager, err := distrlock.NewDBManager(distrlock.DialectSQLite)
	if err != nil {
		log.Fatal(err)
	}
	createTable(ctx, db, manager)

	// Processes that acquire with the same token share the lock; anyone else is refused.
	const token = "deploy-2024-06-01"
	for _, worker := range []string{"worker 1", "worker 2"} {
		lock, err := manager.NewLock(ctx, db, "schema-upgrade")
		if err != nil {
			log.Fatal(err)
		}
		if err := lock.AcquireWithStaticToken(ctx, db, token, time.Minute); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s holds the lock with fence %d\n", worker, lock.Fence())
	}

	other, err := manager.NewLock(ctx, db, "schema-upgrade")
	if err != nil {
		log.Fatal(err)
	}
	err = other.Acquire(ctx, db, time.Minute)
	fmt.Println("a random token is refused:", errors.Is(err, distrlock.ErrLockAlreadyAcquired))
	// Output:
	// worker 1 holds the lock with fence 1
	// worker 2 holds the lock with fence 2
	// a random token is refused: true
}

func ExampleDBLock_Fence() {
	ctx := context.Background()
	db, closeDB := openSQLite()
	defer closeDB()
	manager, err := distrlock.NewDBManager(distrlock.DialectSQLite)
	if err != nil {
		log.Fatal(err)
	}
	createTable(ctx, db, manager)

	// The protected resource remembers the largest fence it has accepted and refuses smaller ones.
	if _, err := db.ExecContext(ctx,
		`CREATE TABLE reports (id INTEGER PRIMARY KEY, body TEXT, fence INTEGER NOT NULL DEFAULT 0);
		 INSERT INTO reports (id) VALUES (1)`); err != nil {
		log.Fatal(err)
	}
	writeReport := func(body string, fence int64) bool {
		res, err := db.ExecContext(ctx,
			`UPDATE reports SET body = ?, fence = ? WHERE id = 1 AND fence <= ?`, body, fence, fence)
		if err != nil {
			log.Fatal(err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			log.Fatal(err)
		}
		return n == 1
	}

	// Worker A takes the lock, then stalls (a GC pause, a slow disk) past the end of its lease.
	a, err := manager.NewLock(ctx, db, "report")
	if err != nil {
		log.Fatal(err)
	}
	if err := a.Acquire(ctx, db, 20*time.Millisecond); err != nil {
		log.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)

	// Worker B takes the expired lock and writes.
	b, err := manager.NewLock(ctx, db, "report")
	if err != nil {
		log.Fatal(err)
	}
	if err := b.Acquire(ctx, db, time.Minute); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("A's fence %d, B's fence %d\n", a.Fence(), b.Fence())
	fmt.Println("B writes:", writeReport("from B", b.Fence()))

	// A wakes up and writes with its stale fence: refused.
	fmt.Println("A writes:", writeReport("from A", a.Fence()))
	// Output:
	// A's fence 1, B's fence 2
	// B writes: true
	// A writes: false
}

func ExampleDBLock_Acquire_transaction() {
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

	// Acquire inside the caller's transaction: the lock and the job row are committed together, or neither.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Rollback() // a no-op once committed
	lock, err := manager.NewLock(ctx, tx, "job:resize-images")
	if err != nil {
		log.Fatal(err)
	}
	if err := lock.Acquire(ctx, tx, time.Minute); err != nil {
		log.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO jobs (name) VALUES (?)`, "resize-images"); err != nil {
		log.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("committed lock and job, fence", lock.Fence())

	// The lease counts from the acquiring statement, not from the start of the transaction.
	if err := lock.Release(ctx, db); err != nil {
		log.Fatal(err)
	}
	fmt.Println("released")
	// Output:
	// committed lock and job, fence 1
	// released
}

func ExampleDoExclusively() {
	ctx := context.Background()
	db, closeDB := openSQLite()
	defer closeDB()

	createTableSQL, err := distrlock.CreateTableSQL(distrlock.DialectSQLite)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, createTableSQL); err != nil {
		log.Fatal(err)
	}

	// Runs the function while holding the lock on "daily-cleanup" in the default table, extending the
	// lease in the background, and releases it afterwards.
	err = distrlock.DoExclusively(ctx, db, distrlock.DialectSQLite, "daily-cleanup", func(ctx context.Context) error {
		fmt.Println("cleaning up")
		return nil
	})
	if errors.Is(err, distrlock.ErrLockAlreadyAcquired) {
		fmt.Println("another instance is cleaning up")
	} else if err != nil {
		log.Fatal(err)
	}
	// Output:
	// cleaning up
}

func ExampleDBLock_DoExclusively() {
	ctx := context.Background()
	db, closeDB := openSQLite()
	defer closeDB()
	manager, err := distrlock.NewDBManager(distrlock.DialectSQLite)
	if err != nil {
		log.Fatal(err)
	}
	createTable(ctx, db, manager)

	lock, err := manager.NewLock(ctx, db, "billing-run")
	if err != nil {
		log.Fatal(err)
	}
	err = lock.DoExclusively(ctx, db, func(ctx context.Context) error {
		fmt.Println("billing with fence", lock.Fence())
		// Long work checks ctx: it is cancelled, with cause distrlock.ErrLockLost, before the lease can
		// end on the server if the lease cannot be extended.
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		default:
			return nil
		}
	}, distrlock.WithLockTTL(30*time.Second), distrlock.WithReleaseTimeout(2*time.Second))
	if err != nil {
		log.Fatal(err)
	}

	// DoExclusively released the lock: it can be taken again, with a larger fence.
	if err := lock.Acquire(ctx, db, time.Minute); err != nil {
		log.Fatal(err)
	}
	fmt.Println("re-acquired with fence", lock.Fence())
	// Output:
	// billing with fence 1
	// re-acquired with fence 2
}

func ExampleNewDBManager() {
	manager, err := distrlock.NewDBManager(distrlock.DialectPostgres, distrlock.WithTableName("app.job_locks"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(manager.TableName())

	// Table names are validated and then quoted; they are never SQL fragments.
	_, err = distrlock.NewDBManager(distrlock.DialectPostgres, distrlock.WithTableName("locks; DROP TABLE users"))
	fmt.Println("rejected:", errors.Is(err, distrlock.ErrInvalidTableName))
	// Output:
	// app.job_locks
	// rejected: true
}

func ExampleCreateTableSQL() {
	createTableSQL, err := distrlock.CreateTableSQL(distrlock.DialectPostgres)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(createTableSQL)
	// Output:
	// CREATE TABLE IF NOT EXISTS "distributed_locks" (
	//     lock_key    varchar(255) PRIMARY KEY,
	//     token       text,
	//     expire_at   timestamptz,
	//     fence       bigint NOT NULL DEFAULT 0,
	//     ttl_us      bigint,
	//     owner       text,
	//     data        bytea,
	//     acquired_at timestamptz,
	//     queue_head  bigint NOT NULL DEFAULT 0,
	//     queue_tail  bigint NOT NULL DEFAULT 0,
	//     freed_at    timestamptz
	// );
}

// Wait for a lock another worker holds: at most 5 seconds, independent of the lease's TTL.
func ExampleDBLock_AcquireWait() {
	ctx := context.Background()
	db, closeDB := openSQLite()
	defer closeDB()
	manager, err := distrlock.NewDBManager(distrlock.DialectSQLite)
	if err != nil {
		log.Fatal(err)
	}
	if err := manager.CreateTable(ctx, db); err != nil {
		log.Fatal(err)
	}

	first, err := manager.NewLock(ctx, db, "report")
	if err != nil {
		log.Fatal(err)
	}
	if err := first.Acquire(ctx, db, time.Minute); err != nil {
		log.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, func() { _ = first.Release(ctx, db) })

	second, err := manager.NewLock(ctx, db, "report")
	if err != nil {
		log.Fatal(err)
	}
	if err := second.AcquireWait(ctx, db, time.Minute, 5*time.Second); err != nil {
		log.Fatal(err)
	}
	fmt.Println("second worker has the lock, fence", second.Fence())

	// A wait that runs out reports both the contention and the timeout.
	third, err := manager.NewLock(ctx, db, "report")
	if err != nil {
		log.Fatal(err)
	}
	err = third.AcquireWait(ctx, db, time.Minute, 20*time.Millisecond)
	fmt.Println(errors.Is(err, distrlock.ErrLockAlreadyAcquired), errors.Is(err, distrlock.ErrWaitTimeout))
	// Output:
	// second worker has the lock, fence 2
	// true true
}

// Wait for the lock in DoExclusively, and store the owner with it for others to read.
func ExampleWithWait() {
	ctx := context.Background()
	db, closeDB := openSQLite()
	defer closeDB()
	createTableSQL, err := distrlock.CreateTableSQL(distrlock.DialectSQLite)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, createTableSQL); err != nil {
		log.Fatal(err)
	}

	err = distrlock.DoExclusively(ctx, db, distrlock.DialectSQLite, "nightly-billing", func(ctx context.Context) error {
		fmt.Println("billing runs on one replica")
		return nil
	}, distrlock.WithWait(30*time.Second), distrlock.WithOwner("replica-2"))
	if err != nil {
		log.Fatal(err)
	}
	// Output: billing runs on one replica
}

// Leader election: the leader holds a Lease, extended in the background, with its address as data;
// every replica reads who leads with Get.
func ExampleDBLock_Hold() {
	ctx := context.Background()
	db, closeDB := openSQLite()
	defer closeDB()
	manager, err := distrlock.NewDBManager(distrlock.DialectSQLite)
	if err != nil {
		log.Fatal(err)
	}
	createTable(ctx, db, manager)

	lock, err := manager.NewLock(ctx, db, "leader")
	if err != nil {
		log.Fatal(err)
	}
	lock.Owner = "node-a"
	lock.Data = "10.0.0.7:8080"
	// Campaign: wait until no other node leads.
	lease, err := lock.Hold(ctx, db, distrlock.WithLockTTL(10*time.Second), distrlock.WithWait(distrlock.WaitForever))
	if err != nil {
		log.Fatal(err)
	}
	// Lead under lease.Context(): it ends, with cause distrlock.ErrLockLost, as soon as the lease may be lost.

	info, err := manager.Get(ctx, db, "leader")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("leader %s at %s, term %d\n", info.Owner, info.Data, info.Fence)

	// Resign.
	if err := lease.Release(ctx); err != nil {
		log.Fatal(err)
	}
	info, err = manager.Get(ctx, db, "leader")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("held after resigning:", info.Held)
	// Output:
	// leader node-a at 10.0.0.7:8080, term 1
	// held after resigning: false
}

// Read locks without taking them: the held ones under a prefix.
func ExampleDBManager_List() {
	ctx := context.Background()
	db, closeDB := openSQLite()
	defer closeDB()
	manager, err := distrlock.NewDBManager(distrlock.DialectSQLite)
	if err != nil {
		log.Fatal(err)
	}
	createTable(ctx, db, manager)
	for _, key := range []string{"customer/17", "customer/42", "campaign/9"} {
		lock, err := manager.NewLock(ctx, db, key)
		if err != nil {
			log.Fatal(err)
		}
		lock.Owner = "worker-1"
		if err := lock.Acquire(ctx, db, time.Minute); err != nil {
			log.Fatal(err)
		}
	}

	infos, err := manager.List(ctx, db, distrlock.ListOptions{Prefix: "customer/", HeldOnly: true})
	if err != nil {
		log.Fatal(err)
	}
	for _, info := range infos {
		fmt.Println(info.Key, info.Owner, info.Held, info.TTL)
	}
	// Output:
	// customer/17 worker-1 true 1m0s
	// customer/42 worker-1 true 1m0s
}

// The remaining lease on the database's clock, and a renewal with another TTL.
func ExampleDBLock_ExtendTTL() {
	ctx := context.Background()
	db, closeDB := openSQLite()
	defer closeDB()
	manager, err := distrlock.NewDBManager(distrlock.DialectSQLite)
	if err != nil {
		log.Fatal(err)
	}
	createTable(ctx, db, manager)

	lock, err := manager.NewLock(ctx, db, "import")
	if err != nil {
		log.Fatal(err)
	}
	if err := lock.Acquire(ctx, db, 10*time.Second); err != nil {
		log.Fatal(err)
	}
	if err := lock.ExtendTTL(ctx, db, time.Hour); err != nil {
		log.Fatal(err)
	}
	left, err := lock.Remaining(ctx, db)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(left > 59*time.Minute, lock.TTL)
	// Output: true 1h0m0s
}

func ExampleWithGalera() {
	// Every node of the cluster serves the same manager: open the *sql.DB on any node, or on a proxy in
	// front of them (go-sql-driver/mysql: "user:password@tcp(node1:3306)/app").
	manager, err := distrlock.NewDBManager(distrlock.DialectMariaDB, distrlock.WithGalera())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(manager.Dialect())

	// MySQL has no SET STATEMENT: on a MySQL-based Galera cluster, set wsrep_sync_wait=7 in the DSN instead.
	_, err = distrlock.NewDBManager(distrlock.DialectMySQL, distrlock.WithGalera())
	fmt.Println("rejected:", errors.Is(err, distrlock.ErrInvalidOption))
	// Output:
	// mariadb
	// rejected: true
}
