package distrlock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

// pruneTimer passes Prune's statements on and records how long each batch took: a batch is one statement
// on PostgreSQL, and on the other dialects the statements from one prune_scan.sql to the next.
type pruneTimer struct {
	exec    SQLExecutor
	m       *DBManager
	batches []time.Duration
}

func (p *pruneTimer) time(query string, start time.Time) {
	d := time.Since(start)
	if query == p.m.q.prune || query == p.m.q.pruneScan || len(p.batches) == 0 {
		p.batches = append(p.batches, d)
		return
	}
	p.batches[len(p.batches)-1] += d
}

func (p *pruneTimer) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	defer p.time(query, time.Now())
	return p.exec.ExecContext(ctx, query, args...)
}

func (p *pruneTimer) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	defer p.time(query, time.Now())
	return p.exec.QueryRowContext(ctx, query, args...)
}

func (p *pruneTimer) max() time.Duration {
	var m time.Duration
	for _, d := range p.batches {
		m = max(m, d)
	}
	return m
}

// pruneFloor reads the fence floor's row, 0 if it has none.
func pruneFloor(t testing.TB, tdb *testDB, m *DBManager) int64 {
	t.Helper()
	var floor int64
	err := tdb.db.QueryRow("SELECT fence FROM " + m.quoted + " WHERE lock_key = ''").Scan(&floor)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		t.Fatal(err)
	}
	return floor
}

func pruneCount(t testing.TB, tdb *testDB, m *DBManager) int64 {
	t.Helper()
	var n int64
	if err := tdb.db.QueryRow("SELECT count(*) FROM " + m.quoted).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestIntegrationPruneKeeps: with real acquisitions, Prune deletes the keys free for longer than freeFor,
// in batches, and keeps a held key, a key whose queue has a waiter that may be alive, and a key freed less
// than freeFor ago; a pruned key acquired again gets a fence above every fence it had, and the floor is
// neither listed nor gettable.
func TestIntegrationPruneKeeps(t *testing.T) {
	ctx := context.Background()
	for _, tdb := range allDBs(t) {
		t.Run(tdb.name, func(t *testing.T) {
			m := newTestManager(t, tdb)
			const keys, rounds, batch = 250, 3, 40
			before := map[string]int64{}
			for i := range keys {
				key := fmt.Sprintf("old/%03d", i)
				l, err := m.NewLock(ctx, tdb.db, key)
				if err != nil {
					t.Fatal(err)
				}
				for range rounds {
					if err := l.Acquire(ctx, tdb.db, time.Minute); err != nil {
						t.Fatal(err)
					}
					before[key] = l.Fence()
					if err := l.Release(ctx, tdb.db); err != nil {
						t.Fatal(err)
					}
				}
			}
			held, _ := m.NewLock(ctx, tdb.db, "held")
			if err := held.Acquire(ctx, tdb.db, time.Minute); err != nil {
				t.Fatal(err)
			}
			queued, _ := m.NewLock(ctx, tdb.db, "queued")
			if err := queued.Acquire(ctx, tdb.db, time.Minute); err != nil {
				t.Fatal(err)
			}
			if err := queued.Release(ctx, tdb.db); err != nil {
				t.Fatal(err)
			}
			// A waiter's ticket (enqueue.sql) on a lock freed just now: with a 1-hour grace per ticket it may
			// still be alive, so the row stays.
			if _, err := m.spec.enqueue(ctx, tdb.db, m.q.enqueue, "queued"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond)
			recent, _ := m.NewLock(ctx, tdb.db, "recent")
			if err := recent.Acquire(ctx, tdb.db, time.Minute); err != nil {
				t.Fatal(err)
			}
			if err := recent.Release(ctx, tdb.db); err != nil {
				t.Fatal(err)
			}
			m.backoffMax = 30 * time.Minute // a grace of an hour
			timer := &pruneTimer{exec: tdb.db, m: m}
			deleted, err := m.Prune(ctx, timer, 200*time.Millisecond, WithPruneBatchSize(batch))
			if err != nil {
				t.Fatal(err)
			}
			if deleted != keys {
				t.Fatalf("deleted %d rows, want %d", deleted, keys)
			}
			if want := (keys + batch - 1) / batch; len(timer.batches) < want {
				t.Errorf("%d batches of %d, want at least %d", len(timer.batches), batch, want)
			}
			// held, queued, recent and the floor.
			if n := pruneCount(t, tdb, m); n != 4 {
				t.Errorf("%d rows left, want 4", n)
			}
			var maxBefore int64
			for _, f := range before {
				maxBefore = max(maxBefore, f)
			}
			if floor := pruneFloor(t, tdb, m); floor != maxBefore {
				t.Errorf("floor %d, want the largest fence pruned, %d", floor, maxBefore)
			}
			infos, err := m.List(ctx, tdb.db, ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(infos) != 3 {
				t.Errorf("List: %d locks, want held, queued and recent: %+v", len(infos), infos)
			}
			if _, err := m.Get(ctx, tdb.db, ""); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("Get of the floor's key: %v, want ErrInvalidKey", err)
			}
			for _, key := range []string{"old/000", "old/137", "old/249"} {
				l, _ := m.NewLock(ctx, tdb.db, key)
				if err := l.Acquire(ctx, tdb.db, time.Minute); err != nil {
					t.Fatal(err)
				}
				if l.Fence() <= before[key] {
					t.Errorf("%s: fence %d after pruning, had %d before", key, l.Fence(), before[key])
				}
				t.Logf("%s: fence %d before pruning, %d after", key, before[key], l.Fence())
				// The row exists again: the next acquisition counts on from it.
				if err := l.Release(ctx, tdb.db); err != nil {
					t.Fatal(err)
				}
				if err := l.Acquire(ctx, tdb.db, time.Minute); err != nil {
					t.Fatal(err)
				}
			}
			// Once free long enough, the held and queued keys go too (the queue's grace back to normal).
			if err := held.Release(ctx, tdb.db); err != nil {
				t.Fatal(err)
			}
			m.backoffMax = DefaultWaitMaxBackoff
			time.Sleep(50 * time.Millisecond)
			deleted, err = m.Prune(ctx, tdb.db, 0)
			if err != nil {
				t.Fatal(err)
			}
			if deleted != 3 { // held, queued, recent; the three keys re-acquired are held
				t.Errorf("second prune deleted %d, want 3", deleted)
			}
		})
	}
}

// TestIntegrationPrune100k: 100,000 keys released an hour ago (inserted in one statement), pruned in
// batches of 1,000 while other goroutines acquire and release an existing key and new keys; no concurrent
// acquire waits much longer than one batch, every key goes, and pruned keys come back with larger fences.
func TestIntegrationPrune100k(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	ctx := context.Background()
	for _, tdb := range []*testDB{openPostgres(t), openMySQL(t, ""), openSQLite(t)} {
		t.Run(tdb.name, func(t *testing.T) {
			m := newTestManager(t, tdb)
			const keys, batch = 100000, DefaultPruneBatchSize
			start := time.Now()
			if _, err := tdb.db.ExecContext(ctx, pruneBulkInsert(tdb.dialect, m.quoted)); err != nil {
				t.Fatal(err)
			}
			t.Logf("inserted %d free rows (fences 1 to 7) in %v", keys, time.Since(start).Round(time.Millisecond))
			other, _ := m.NewLock(ctx, tdb.db, "other")
			if err := other.Acquire(ctx, tdb.db, time.Minute); err != nil {
				t.Fatal(err)
			}
			if err := other.Release(ctx, tdb.db); err != nil {
				t.Fatal(err)
			}

			var (
				mu         sync.Mutex
				maxAcquire time.Duration
				acquires   int
				wg         sync.WaitGroup
			)
			done := make(chan struct{})
			for w := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						select {
						case <-done:
							return
						default:
						}
						key := "other"
						if w == 1 {
							key = fmt.Sprintf("new/%d", i) // a new row: the INSERT arm, which reads the floor
						}
						l, _ := m.NewLock(ctx, tdb.db, key)
						t0 := time.Now()
						err := l.Acquire(ctx, tdb.db, time.Minute)
						d := time.Since(t0)
						if err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						maxAcquire = max(maxAcquire, d)
						acquires++
						mu.Unlock()
						if err := l.Release(ctx, tdb.db); err != nil {
							t.Error(err)
							return
						}
						// A pause, as a real client makes between holds: SQLite's busy handler does not queue
						// writers, and without it the pruner rarely gets the database.
						time.Sleep(time.Millisecond + rand.N(2*time.Millisecond))
					}
				}()
			}
			timer := &pruneTimer{exec: tdb.db, m: m}
			start = time.Now()
			deleted, err := m.Prune(ctx, timer, time.Minute, WithPruneBatchSize(batch))
			took := time.Since(start)
			close(done)
			wg.Wait()
			if err != nil {
				t.Fatal(err)
			}
			if deleted != keys {
				t.Errorf("deleted %d rows, want %d", deleted, keys)
			}
			if acquires < 10 {
				t.Errorf("only %d concurrent acquires during the prune", acquires)
			}
			maxBatch := timer.max()
			t.Logf("pruned %d rows in %d batches of %d in %v: batch max %v, mean %v; %d concurrent acquires, max %v",
				deleted, len(timer.batches), batch, took.Round(time.Millisecond), maxBatch.Round(time.Microsecond),
				(took / time.Duration(len(timer.batches))).Round(time.Microsecond), acquires, maxAcquire.Round(time.Microsecond))
			// Generous: one batch, plus room for a shared machine's scheduling. SQLite's writers do not queue:
			// one that finds the database locked sleeps in its busy handler (up to 100 ms at a time) while
			// the others, the pruner's three statements a batch included, may take the lock first, so an
			// acquire there can wait through several batches, each of which holds the lock only briefly.
			bound := maxBatch + 500*time.Millisecond
			if tdb.dialect == DialectSQLite {
				bound = 5*maxBatch + 2*time.Second
			}
			if maxAcquire > bound {
				t.Errorf("a concurrent acquire took %v, more than %v (the longest batch took %v)", maxAcquire, bound, maxBatch)
			}
			if floor := pruneFloor(t, tdb, m); floor != 7 {
				t.Errorf("floor %d, want 7", floor)
			}
			l, _ := m.NewLock(ctx, tdb.db, "bulk/012345")
			if err := l.Acquire(ctx, tdb.db, time.Minute); err != nil {
				t.Fatal(err)
			}
			if l.Fence() != 8 {
				t.Errorf("fence %d after pruning, want 8 (above 7, the largest pruned)", l.Fence())
			}
		})
	}
}

// pruneBulkInsert makes 100,000 rows bulk/000000 to bulk/099999, released an hour ago, with fences 1 to 7.
func pruneBulkInsert(d Dialect, table string) string {
	switch d {
	case DialectSQLite:
		return `WITH RECURSIVE g(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM g WHERE n < 99999)
INSERT INTO ` + table + ` (lock_key, token, fence, freed_at)
SELECT printf('bulk/%06d', n), 'bulk', 1 + n % 7, (CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) - 3600000) * 1000 FROM g`
	case DialectMySQL, DialectMariaDB:
		digits := "(SELECT 0 AS n UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)"
		return `INSERT INTO ` + table + ` (lock_key, token, fence, freed_at)
SELECT CONCAT('bulk/', LPAD(n, 6, '0')), 'bulk', 1 + n % 7, TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) - 3600000000
FROM (SELECT a.n + 10 * b.n + 100 * c.n + 1000 * e.n + 10000 * f.n AS n
      FROM ` + digits + ` AS a, ` + digits + ` AS b, ` + digits + ` AS c, ` + digits + ` AS e, ` + digits + ` AS f) AS g`
	default:
		return `INSERT INTO ` + table + ` (lock_key, token, fence, freed_at)
SELECT 'bulk/' || lpad(n::text, 6, '0'), 'bulk', 1 + n % 7, statement_timestamp() - interval '1 hour'
FROM generate_series(0, 99999) AS n`
	}
}

// TestIntegrationPruneRace: goroutines take and free a few keys, half of them inside a transaction, while a
// pruner deletes every free row (freeFor 0, batches of 2) in a loop; each key's fences, read while holding
// it, only grow, and no two goroutines hold a key at once.
func TestIntegrationPruneRace(t *testing.T) {
	ctx := context.Background()
	for _, tdb := range []*testDB{openPostgres(t), openMySQL(t, ""), openSQLite(t)} {
		t.Run(tdb.name, func(t *testing.T) {
			m := newTestManager(t, tdb)
			// The floor exists before the first acquire, as migration 00005 makes it (see DBManager.Prune's
			// notes in docs/design.md on a table's first prune).
			for _, mig := range m.Migrations() {
				if strings.HasPrefix(mig.ID(), "distrlock_00005") {
					for _, stmt := range mig.UpSQL() {
						if _, err := tdb.db.ExecContext(ctx, stmt); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			const keys, workers = 4, 8
			var (
				mu       sync.Mutex
				last     = map[string]int64{}
				holding  = map[string]bool{}
				acquired int
				pruned   int64
				wg       sync.WaitGroup
			)
			// At least 2 s, and on until enough has happened to prove something (SQLite under -race on a busy
			// machine is slow), at most 10 s.
			start := time.Now()
			running := func() bool {
				mu.Lock()
				enough := acquired >= 50 && pruned >= 5
				mu.Unlock()
				elapsed := time.Since(start)
				return elapsed < 2*time.Second || !enough && elapsed < 10*time.Second
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for running() {
					n, err := m.Prune(ctx, tdb.db, 0, WithPruneBatchSize(2))
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					pruned += n
					mu.Unlock()
				}
			}()
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; running(); i++ {
						key := fmt.Sprintf("race/%d", (w+i)%keys)
						l, _ := m.NewLock(ctx, tdb.db, key)
						var err error
						if w%2 == 1 {
							err = pruneAcquireInTx(ctx, tdb.db, &l)
						} else {
							err = l.Acquire(ctx, tdb.db, time.Minute)
						}
						if errors.Is(err, ErrLockAlreadyAcquired) || err != nil && classify(err) == failTransient {
							time.Sleep(time.Millisecond)
							continue
						}
						if err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						if holding[key] {
							t.Errorf("%s: two holders", key)
						}
						if l.Fence() <= last[key] {
							t.Errorf("%s: fence %d after %d", key, l.Fence(), last[key])
						}
						holding[key], last[key] = true, l.Fence()
						acquired++
						mu.Unlock()
						time.Sleep(100 * time.Microsecond)
						mu.Lock()
						holding[key] = false
						mu.Unlock()
						if err := l.Release(ctx, tdb.db); err != nil {
							t.Error(err)
							return
						}
						// A pause, as a real client makes between holds: SQLite's busy handler does not queue
						// writers, and without it the pruner rarely gets the database.
						time.Sleep(time.Millisecond + rand.N(2*time.Millisecond))
					}
				}()
			}
			wg.Wait()
			t.Logf("%d acquisitions of %d keys, %d rows pruned, last fences %v", acquired, keys, pruned, last)
			if acquired < 50 || pruned < 5 {
				t.Errorf("%d acquisitions and %d rows pruned: too few to prove anything", acquired, pruned)
			}
		})
	}
}

// pruneAcquireInTx acquires l inside a transaction that commits at once (MySQL sends acquire_in_tx.sql).
func pruneAcquireInTx(ctx context.Context, db *sql.DB, l *DBLock) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if err := l.Acquire(ctx, tx, time.Minute); err != nil {
		return err
	}
	return tx.Commit()
}
