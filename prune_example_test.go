package distrlock_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/distrlock/distrlock"
)

// Prune deletes the rows of locks free for long enough; a pruned key comes back with a larger fence.
func ExampleDBManager_Prune() {
	ctx := context.Background()
	db, closeDB := openSQLite()
	defer closeDB()
	manager, err := distrlock.NewDBManager(distrlock.DialectSQLite)
	if err != nil {
		log.Fatal(err)
	}
	createTable(ctx, db, manager)
	lock, err := manager.NewLock(ctx, db, "customer/42")
	if err != nil {
		log.Fatal(err)
	}
	for range 2 {
		if err := lock.Acquire(ctx, db, time.Minute); err != nil {
			log.Fatal(err)
		}
		if err := lock.Release(ctx, db); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("fence before pruning:", lock.Fence())

	// In production, say once a night: rows free for a day go, 1,000 per transaction.
	// deleted, err := manager.Prune(ctx, db, 24*time.Hour)
	deleted, err := manager.Prune(ctx, db, 0, distrlock.WithPruneBatchSize(1000))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("rows deleted:", deleted)

	if err := lock.Acquire(ctx, db, time.Minute); err != nil {
		log.Fatal(err)
	}
	fmt.Println("fence after pruning:", lock.Fence())
	// Output:
	// fence before pruning: 2
	// rows deleted: 1
	// fence after pruning: 3
}
