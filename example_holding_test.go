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

	_ "modernc.org/sqlite"

	"github.com/distrlock/distrlock"
)

// openHoldingExample opens a fresh SQLite database with the lock table, for the examples below.
func openHoldingExample() (*sql.DB, *distrlock.DBManager, func()) {
	dir, err := os.MkdirTemp("", "distrlock-example")
	if err != nil {
		log.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "locks.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		log.Fatal(err)
	}
	m, err := distrlock.NewDBManager(distrlock.DialectSQLite)
	if err != nil {
		log.Fatal(err)
	}
	if err := m.CreateTable(context.Background(), db); err != nil {
		log.Fatal(err)
	}
	return db, m, func() { db.Close(); os.RemoveAll(dir) }
}

// A waiting acquire: the second worker waits (at most 5 s, independent of the lease's TTL) until the first
// releases the lock.
func ExampleDBLock_AcquireWait() {
	db, m, done := openHoldingExample()
	defer done()
	ctx := context.Background()

	first, _ := m.NewLock(ctx, db, "report")
	if err := first.Acquire(ctx, db, time.Minute); err != nil {
		log.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, func() { _ = first.Release(ctx, db) })

	second, _ := m.NewLock(ctx, db, "report")
	if err := second.AcquireWait(ctx, db, time.Minute, 5*time.Second); err != nil {
		log.Fatal(err)
	}
	fmt.Println("second worker has the lock, fence", second.Fence())

	// A wait that runs out reports both the contention and the timeout.
	third, _ := m.NewLock(ctx, db, "report")
	err := third.AcquireWait(ctx, db, time.Minute, 20*time.Millisecond)
	fmt.Println(errors.Is(err, distrlock.ErrLockAlreadyAcquired), errors.Is(err, distrlock.ErrWaitTimeout))
	// Output:
	// second worker has the lock, fence 2
	// true true
}

// Waiting in DoExclusively, with the owner stored for others to see.
func ExampleWithWait() {
	db, _, done := openHoldingExample()
	defer done()
	ctx := context.Background()

	err := distrlock.DoExclusively(ctx, db, distrlock.DialectSQLite, "nightly-billing", func(ctx context.Context) error {
		fmt.Println("billing runs on one replica")
		return nil
	}, distrlock.WithWait(30*time.Second), distrlock.WithOwner("replica-2"))
	if err != nil {
		log.Fatal(err)
	}
	// Output: billing runs on one replica
}

// Leader election with a Lease: the leader holds the lock in the background with its address as data;
// everyone reads who leads with Get.
func ExampleDBLock_Hold() {
	db, m, done := openHoldingExample()
	defer done()
	ctx := context.Background()

	lock, _ := m.NewLock(ctx, db, "leader")
	lock.Owner = "node-a"
	lock.Data = "10.0.0.7:8080"
	lease, err := lock.Hold(ctx, db, distrlock.WithLockTTL(10*time.Second), distrlock.WithWait(distrlock.WaitForever))
	if err != nil {
		log.Fatal(err)
	}
	// Lead under lease.Context(): it ends as soon as the lease may be lost.

	info, err := m.Get(ctx, db, "leader")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("leader %s at %s, term %d\n", info.Owner, info.Data, info.Fence)

	if err := lease.Release(ctx); err != nil { // resign
		log.Fatal(err)
	}
	info, _ = m.Get(ctx, db, "leader")
	fmt.Println("held after resigning:", info.Held)
	// Output:
	// leader node-a at 10.0.0.7:8080, term 1
	// held after resigning: false
}

// Reading locks without taking them.
func ExampleDBManager_List() {
	db, m, done := openHoldingExample()
	defer done()
	ctx := context.Background()

	for _, key := range []string{"customer/17", "customer/42", "campaign/9"} {
		lock, _ := m.NewLock(ctx, db, key)
		lock.Owner = "worker-1"
		if err := lock.Acquire(ctx, db, time.Minute); err != nil {
			log.Fatal(err)
		}
	}
	infos, err := m.List(ctx, db, distrlock.ListOptions{Prefix: "customer/", HeldOnly: true})
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
	db, m, done := openHoldingExample()
	defer done()
	ctx := context.Background()

	lock, _ := m.NewLock(ctx, db, "import")
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
