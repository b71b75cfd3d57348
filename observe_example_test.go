package distrlock_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"

	"github.com/distrlock/distrlock"
)

func ExampleSlogLogger() {
	ctx := context.Background()
	db, closeDB := openSQLite()
	defer closeDB()

	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		Level: slog.LevelDebug, // acquires and releases are Debug; a retried extend Warn; a lost lease Error
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "duration" {
				return slog.Attr{} // left out to keep this example's output stable
			}
			return a
		},
	}))
	manager, err := distrlock.NewDBManager(distrlock.DialectSQLite,
		distrlock.WithManagerLogger(distrlock.SlogLogger(logger))) // or WithLogger(...) for one call
	if err != nil {
		log.Fatal(err)
	}
	createTable(ctx, db, manager)

	lock, err := manager.NewLock(ctx, db, "nightly-report")
	if err != nil {
		log.Fatal(err)
	}
	err = lock.DoExclusively(ctx, db, func(ctx context.Context) error {
		return nil // the work
	}, distrlock.WithOwner("worker-1"))
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// level=DEBUG msg="distrlock: acquire" distrlock.key=nightly-report distrlock.fence=1 distrlock.owner=worker-1
	// level=DEBUG msg="distrlock: release" distrlock.key=nightly-report distrlock.fence=1 distrlock.owner=worker-1
}

func ExampleWithObserver() {
	ctx := context.Background()
	db, closeDB := openSQLite()
	defer closeDB()

	observer := distrlock.ObserverFunc(func(ctx context.Context, e distrlock.Event) {
		// Called synchronously: keep it quick (update a metric, log).
		fmt.Println(e.Kind, e.Key, e.Fence, e.Outcome())
	})
	manager, err := distrlock.NewDBManager(distrlock.DialectSQLite, distrlock.WithObserver(observer))
	if err != nil {
		log.Fatal(err)
	}
	createTable(ctx, db, manager)

	first, err := manager.NewLock(ctx, db, "invoice-42")
	if err != nil {
		log.Fatal(err)
	}
	second := first // another holder of the same key
	if err := first.Acquire(ctx, db, distrlock.DefaultLockTTL); err != nil {
		log.Fatal(err)
	}
	_ = second.Acquire(ctx, db, distrlock.DefaultLockTTL) // refused: first holds it
	if err := first.Release(ctx, db); err != nil {
		log.Fatal(err)
	}
	// Output:
	// acquire invoice-42 1 ok
	// acquire invoice-42 0 contended
	// release invoice-42 1 ok
}
