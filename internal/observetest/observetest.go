// Package observetest drives the scripted run that the observer adapters' tests (otel/, prometheus/)
// measure: the same events for each, on a SQLite file.
package observetest

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/distrlock/distrlock"
	_ "modernc.org/sqlite" // the database of the run
)

// Run observes with obs, on a new SQLite database: lock k acquired by a, refused to b, waited for by w
// until a releases it after 100 ms; then lock "lost" held with a TTL of 1 s and released behind its back
// with its token, so that its next extend fails and its lease is lost, and released by its holder. At the
// end w holds k: 3 acquires succeed, at least 2 are refused, 1 wait, 2 releases succeed and 1 finds the
// lock not held, 1 extend fails, 1 lease is lost, 1 lock is held.
func Run(t testing.TB, obs distrlock.Observer) {
	t.Helper()
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "locks.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	m, err := distrlock.NewDBManager(distrlock.DialectSQLite, distrlock.WithObserver(obs))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CreateTable(ctx, db); err != nil {
		t.Fatal(err)
	}
	lock := func(key string) *distrlock.DBLock {
		l, err := m.NewLock(ctx, db, key)
		if err != nil {
			t.Fatal(err)
		}
		return &l
	}
	a, b, w := lock("k"), lock("k"), lock("k")
	if err := a.Acquire(ctx, db, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := b.Acquire(ctx, db, time.Minute); !errors.Is(err, distrlock.ErrLockAlreadyAcquired) {
		t.Fatalf("b.Acquire = %v, want ErrLockAlreadyAcquired", err)
	}
	waited := make(chan error)
	go func() { waited <- w.AcquireWait(ctx, db, time.Minute, 10*time.Second) }()
	time.Sleep(100 * time.Millisecond)
	if err := a.Release(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	lease, err := m.Hold(ctx, db, "lost", distrlock.WithLockTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.ReleaseWithToken(ctx, db, "lost", lease.Token()); err != nil {
		t.Fatal(err)
	}
	<-lease.Context().Done()
	if err := lease.Release(ctx); !errors.Is(err, distrlock.ErrLockLost) {
		t.Fatalf("lease.Release = %v, want ErrLockLost", err)
	}
}
