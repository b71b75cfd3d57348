package pgnotify_test

import (
	"context"
	"database/sql"
	"log"
	"os/signal"
	"sync"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver

	"github.com/distrlock/distrlock"
	"github.com/distrlock/distrlock/pgnotify"
)

// Example wires a Listener into a DBManager, so that AcquireWait wakes when another process releases the
// key instead of at its next poll. It needs a PostgreSQL server, so its output is not checked.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	const dsn = "postgres://postgres@127.0.0.1:5432/test"

	listener, err := pgnotify.New(dsn)
	if err != nil {
		log.Fatal(err)
	}
	// The listener's goroutine is ours: it runs until ctx ends, and we wait for it before returning.
	var wg sync.WaitGroup
	defer wg.Wait()
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	wg.Go(func() { _ = listener.Run(runCtx) })

	manager, err := distrlock.NewDBManager(distrlock.DialectPgx, distrlock.WithNotifier(listener))
	if err != nil {
		log.Fatal(err)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	if err := manager.CreateTable(ctx, db); err != nil {
		log.Fatal(err)
	}

	lock, err := manager.NewLock(ctx, db, "nightly-report")
	if err != nil {
		log.Fatal(err)
	}
	if err := lock.AcquireWait(ctx, db, time.Minute, 30*time.Second); err != nil {
		log.Fatal(err)
	}
	defer func() { _ = lock.Release(context.WithoutCancel(ctx), db) }()
	// … the work that needs the lock …
}

// Example_pgBouncer runs the locks through PgBouncer in transaction mode and the listener on a connection
// straight to the server: LISTEN needs a session, which transaction pooling does not keep. It needs the
// servers, so its output is not checked.
func Example_pgBouncer() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// pgx's default statement cache fails behind transaction pooling (distrlock.ErrPreparedStatementPooling):
	// exec, cache_describe or simple_protocol work.
	const pooled = "postgres://app@pgbouncer:6432/app?default_query_exec_mode=exec"
	const direct = "postgres://app@db-primary:5432/app"

	listener, err := pgnotify.New(direct)
	if err != nil {
		log.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	wg.Go(func() { _ = listener.Run(runCtx) })

	manager, err := distrlock.NewDBManager(distrlock.DialectPgx, distrlock.WithNotifier(listener))
	if err != nil {
		log.Fatal(err)
	}
	db, err := sql.Open("pgx", pooled)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	lock, err := manager.NewLock(ctx, db, "nightly-report")
	if err != nil {
		log.Fatal(err)
	}
	err = lock.DoExclusively(ctx, db, func(ctx context.Context) error {
		return nil // … the work that needs the lock …
	}, distrlock.WithWait(time.Minute))
	if err != nil {
		log.Fatal(err)
	}
}
