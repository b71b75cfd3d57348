package distrlock_test

import (
	"context"
	"database/sql"
	"errors"
	"log"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver

	"github.com/distrlock/distrlock"
	"github.com/distrlock/distrlock/internal/readmecheck"
)

// The election examples need a PostgreSQL server, so they are compiled and not run; the integration tests
// run the same calls on every database.

// A service runs as several replicas: one leads, the others stand by and take over within the TTL when it
// dies, or at once when it shuts down.
func ExampleElection_Run() {
	db, err := sql.Open("pgx", "postgres://postgres@127.0.0.1:5432/test")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	m, err := distrlock.NewDBManager(distrlock.DialectPgx)
	if err != nil {
		log.Fatal(err)
	}
	e, err := m.NewElection(db, "scheduler", distrlock.WithElectionTTL(15*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	// SIGTERM ends the term's context; Run then resigns, so a standby need not wait for the lease to run out.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = e.Run(ctx, "10.0.0.7:8080", distrlock.Callbacks{
		OnStartedLeading: func(ctx context.Context) {
			log.Printf("leading in term %d", e.Term())
			<-ctx.Done() // do the leader's work under ctx; return once it ends
		},
		OnStoppedLeading: func() { log.Print("stopped leading") },
		OnNewLeader: func(l distrlock.LeaderInfo) {
			log.Printf("leader %s at %s, term %d", l.Identity, l.Value, l.Term)
		},
	})
	if !errors.Is(err, context.Canceled) {
		log.Print(err)
	}
}

// A client follows the leader's address without standing for election.
func ExampleElection_Observe() {
	db, err := sql.Open("pgx", "postgres://postgres@127.0.0.1:5432/test")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	m, err := distrlock.NewDBManager(distrlock.DialectPgx)
	if err != nil {
		log.Fatal(err)
	}
	e, err := m.NewElection(db, "scheduler")
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for l := range e.Observe(ctx) { // closed when ctx ends
		if l.Term == 0 {
			log.Print("no leader")
			continue
		}
		log.Printf("send work to %s (term %d)", l.Value, l.Term)
	}
}

// TestElectionGuideSnippetsAreExamples checks that the Go snippets of docs/election.md are the bodies of
// the examples of this file.
func TestElectionGuideSnippetsAreExamples(t *testing.T) {
	guide, err := os.ReadFile("docs/election.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range readmecheck.Check(guide, "../election_example_test.go", "election_example_test.go", 1) {
		t.Error(err)
	}
}
