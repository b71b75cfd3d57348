package distrlock_test

import (
	"context"
	"database/sql"
	"errors"
	"log"
	"os"
	"testing"
	"time"

	"github.com/distrlock/distrlock"
	"github.com/distrlock/distrlock/internal/readmecheck"
)

// ExampleWithLockAtLeastFor runs a nightly job once across every replica of a service: each replica's
// scheduler fires at the same minute, the first one runs the job, and the lock stays taken for the period
// even when the job ends early, so a replica whose clock or scheduler is late does not run it again.
func ExampleWithLockAtLeastFor() {
	db, err := sql.Open("pgx", "postgres://postgres@127.0.0.1:5432/test")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	m, err := distrlock.NewDBManager(distrlock.DialectPgx)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	lock, err := m.NewLock(ctx, db, "nightly-billing")
	if err != nil {
		log.Fatal(err)
	}
	// Called by every replica's scheduler, e.g. at 02:00 each night.
	err = lock.DoExclusively(ctx, db, func(ctx context.Context) error {
		return runBilling(ctx)
	}, distrlock.WithLockAtLeastFor(time.Hour), distrlock.WithLockTTL(2*time.Hour))
	switch {
	case errors.Is(err, distrlock.ErrLockAlreadyAcquired):
		// Another replica ran it in this period.
	case err != nil:
		log.Print(err)
	}
}

func runBilling(context.Context) error { return nil }

// TestFleetGuideSnippetsAreExamples checks that the Go snippets of docs/periodic-jobs.md and
// docs/waiting.md are the bodies of examples.
func TestFleetGuideSnippetsAreExamples(t *testing.T) {
	for _, c := range []struct{ guide, name, file string }{
		{"docs/periodic-jobs.md", "../fleet_example_test.go", "fleet_example_test.go"},
		{"docs/waiting.md", "../pgnotify/example_test.go", "pgnotify/example_test.go"},
	} {
		guide, err := os.ReadFile(c.guide)
		if err != nil {
			t.Fatal(err)
		}
		for _, err := range readmecheck.Check(guide, c.name, c.file, 1) {
			t.Errorf("%s: %v", c.guide, err)
		}
	}
}
