package distrlock

import (
	"context"
	"testing"
	"time"
)

// The benchmarks of the uncontended cycles, per database: go test -run '^$' -bench . -benchtime 3s
// They skip a database that is unreachable. The README shows their figures.

// benchDBs returns the databases the benchmarks run on, as sub-benchmark cases.
func benchDBs() []func(*testing.B) *testDB {
	return []func(*testing.B) *testDB{
		func(b *testing.B) *testDB { return openPostgres(b) },
		func(b *testing.B) *testDB { return openMySQL(b, "") },
		func(b *testing.B) *testDB { return openMySQL(b, "interpolateParams=true") },
		func(b *testing.B) *testDB { return openSQLite(b) },
	}
}

var benchDBNames = []string{"postgres", "mariadb", "mariadb-interpolateParams", "sqlite"}

// BenchmarkAcquireRelease measures one Acquire and one Release of one key, in autocommit mode: two
// statements per iteration.
func BenchmarkAcquireRelease(b *testing.B) {
	benchCycles(b, func(ctx context.Context) (context.Context, context.CancelFunc) { return ctx, func() {} })
}

// BenchmarkAcquireReleaseDeadline is BenchmarkAcquireRelease with the release under a context that has a
// deadline, as DoExclusively's release has (WithReleaseTimeout): the difference is what the driver spends
// on watching a context that can end.
func BenchmarkAcquireReleaseDeadline(b *testing.B) {
	benchCycles(b, func(ctx context.Context) (context.Context, context.CancelFunc) {
		return context.WithTimeout(ctx, DefaultReleaseTimeout)
	})
}

// benchCycles runs acquire+release cycles on every database, the release under the context releaseCtx makes.
func benchCycles(b *testing.B, releaseCtx func(context.Context) (context.Context, context.CancelFunc)) {
	for i, open := range benchDBs() {
		b.Run(benchDBNames[i], func(b *testing.B) {
			tdb, lock := benchLock(b, open)
			ctx := context.Background()
			for b.Loop() {
				if err := lock.Acquire(ctx, tdb.db, time.Minute); err != nil {
					b.Fatal(err)
				}
				relCtx, cancel := releaseCtx(ctx)
				err := lock.Release(relCtx, tdb.db)
				cancel()
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAcquireReleaseInTx measures one Acquire and one Release of one key in the caller's transaction,
// begun and committed in each iteration: four round trips at best. The manager has run on the *sql.DB once
// before, as an application that also holds locks outside transactions has.
func BenchmarkAcquireReleaseInTx(b *testing.B) {
	for i, open := range benchDBs() {
		b.Run(benchDBNames[i], func(b *testing.B) {
			tdb, lock := benchLock(b, open)
			ctx := context.Background()
			if err := lock.Acquire(ctx, tdb.db, time.Minute); err != nil {
				b.Fatal(err)
			}
			if err := lock.Release(ctx, tdb.db); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				tx, err := tdb.db.BeginTx(ctx, nil)
				if err != nil {
					b.Fatal(err)
				}
				if err := lock.Acquire(ctx, tx, time.Minute); err != nil {
					b.Fatal(err)
				}
				if err := lock.Release(ctx, tx); err != nil {
					b.Fatal(err)
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDoExclusively measures DoExclusively with an empty function: acquire, start and stop the
// heartbeat, release.
func BenchmarkDoExclusively(b *testing.B) {
	for i, open := range benchDBs() {
		b.Run(benchDBNames[i], func(b *testing.B) {
			tdb, lock := benchLock(b, open)
			ctx := context.Background()
			noop := func(context.Context) error { return nil }
			for b.Loop() {
				if err := lock.DoExclusively(ctx, tdb.db, noop); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchLock opens a benchmark's database, gives it a table of its own and returns a lock on it.
func benchLock(b *testing.B, open func(*testing.B) *testDB) (*testDB, DBLock) {
	tdb := open(b)
	m := newTestManager(b, tdb)
	lock, err := m.NewLock(context.Background(), tdb.db, "bench")
	if err != nil {
		b.Fatal(err)
	}
	return tdb, lock
}
