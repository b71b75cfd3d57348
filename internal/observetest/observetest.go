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
// until a releases it 100 ms after w started waiting; then lock "lost" held with a TTL of 1 s and released behind its back
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
	waiting := make(chan struct{}, 1)
	started := distrlock.ObserverFunc(func(_ context.Context, e distrlock.Event) {
		if e.Kind == distrlock.EventWaitStarted {
			select {
			case waiting <- struct{}{}:
			default:
			}
		}
	})
	m, err := distrlock.NewDBManager(distrlock.DialectSQLite, distrlock.WithObserver(distrlock.JoinObservers(obs, started)))
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
	select { // a's release comes after w has started waiting
	case <-waiting:
	case err := <-waited:
		t.Fatalf("w.AcquireWait returned %v before waiting", err)
	case <-time.After(10 * time.Second):
		t.Fatal("w did not start waiting within 10 s")
	}
	time.Sleep(100 * time.Millisecond) // a wait of at least 100 ms
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
	select {
	case <-lease.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the lease released behind its back was not lost within 10 s")
	}
	if err := lease.Release(ctx); !errors.Is(err, distrlock.ErrLockLost) {
		t.Fatalf("lease.Release = %v, want ErrLockLost", err)
	}
}
