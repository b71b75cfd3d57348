package distrlock_test

import (
	"context"
	"database/sql"
	"errors"
	"log"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver

	"github.com/distrlock/distrlock"
	"github.com/distrlock/distrlock/internal/readmecheck"
)

// The README's examples need a PostgreSQL server, so they are compiled and not run; the integration tests
// run the same calls on every database.

// A job that every replica starts runs on one of them at a time.
func ExampleDBLock_DoExclusively_postgres() {
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
	if err := manager.CreateTable(ctx, db); err != nil { // or apply the migrations with your migrator
		log.Fatal(err)
	}

	lock, err := manager.NewLock(ctx, db, "nightly-report")
	if err != nil {
		log.Fatal(err)
	}
	err = lock.DoExclusively(ctx, db, func(ctx context.Context) error {
		log.Printf("reporting with fence %d", lock.Fence())
		return buildReport(ctx) // stop when ctx ends: its cause is then distrlock.ErrLockLost
	}, distrlock.WithLockTTL(30*time.Second))
	switch {
	case errors.Is(err, distrlock.ErrLockAlreadyAcquired):
		log.Print("another replica is reporting")
	case err != nil:
		log.Fatal(err)
	}
}

// The lock is taken in the caller's transaction, so it commits with the rows it is about, or not at all.
func ExampleDBLock_Acquire_postgresTransaction() {
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

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Rollback() // a no-op once committed
	lock, err := manager.NewLock(ctx, tx, "invoice-42")
	if err != nil {
		log.Fatal(err)
	}
	if err := lock.Acquire(ctx, tx, time.Minute); err != nil {
		log.Fatal(err) // errors.Is(err, distrlock.ErrLockAlreadyAcquired) when someone else holds it
	}
	// The fence grows with every acquisition: a write that carries it can be refused to a stale holder.
	if _, err := tx.ExecContext(ctx, `UPDATE invoices SET state = 'sending', fence = $1 WHERE id = 42`, lock.Fence()); err != nil {
		log.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		log.Fatal(err)
	}

	// ... send the invoice within the minute (or call lock.Extend) ...

	if err := lock.Release(ctx, db); err != nil {
		log.Fatal(err)
	}
}

func buildReport(context.Context) error { return nil }

// TestDocsSnippetsAreExamples checks that the Go snippets of the README and of the guides in docs/ are the
// bodies of compiled examples. The migrator snippets of docs/migrations.md are checked in internal/compat,
// whose examples need the migrators; docs/election.md and docs/periodic-jobs.md by the tests beside their
// examples.
func TestDocsSnippetsAreExamples(t *testing.T) {
	for _, c := range []struct {
		page, name, file string
		min              int
	}{
		{"README.md", "readme_example_test.go", "readme_example_test.go", 2},
		{"README.md", "election_example_test.go", "election_example_test.go", 1},
		{"docs/waiting.md", "../example_test.go", "example_test.go", 5},
		{"docs/guarantees.md", "../example_test.go", "example_test.go", 1},
		{"docs/galera.md", "../example_test.go", "example_test.go", 1},
		{"docs/migrations.md", "../dbkit_example_test.go", "dbkit_example_test.go", 1},
		{"docs/guard.md", "../guard_example_test.go", "guard_example_test.go", 2},
		{"docs/resume.md", "../guard_example_test.go", "guard_example_test.go", 2},
		{"docs/scale-out.md", "../pgnotify/example_test.go", "pgnotify/example_test.go", 1},
		{"docs/operations.md", "../prune_example_test.go", "prune_example_test.go", 1},
		{"docs/observability.md", "../observe_example_test.go", "observe_example_test.go", 2},
		{"docs/observability.md", "../prometheus/example_test.go", "prometheus/example_test.go", 1},
		{"docs/observability.md", "../otel/example_test.go", "otel/example_test.go", 1},
	} {
		page, err := os.ReadFile(c.page)
		if err != nil {
			t.Fatal(err)
		}
		for _, err := range readmecheck.Check(page, c.name, c.file, c.min) {
			t.Errorf("%s: %v", c.page, err)
		}
	}
}
