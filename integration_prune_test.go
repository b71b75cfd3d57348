package distrlock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
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

// TestIntegrationPrune100k: 10,000 keys (2,000 in batches of 200 on SQLite; DISTRLOCK_PRUNE_KEYS sets
// another number, in batches of 1,000: the figure is 100,000, which takes a minute) acquired and
// released once through the library, then pruned in batches while two goroutines acquire and release an
// existing key and new keys. The longest concurrent acquire is compared with the longest of the same
// workload run just before without the prune: the prune may add one batch to it, no more (not on SQLite,
// see below). Every acquired key goes, and a pruned key comes back with a larger fence.
func TestIntegrationPrune100k(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	ctx := context.Background()
	for _, tdb := range []*testDB{openPostgres(t), openMySQL(t, ""), openSQLite(t)} {
		t.Run(tdb.name, func(t *testing.T) {
			m := newTestManager(t, tdb)
			keys, batch := int64(10000), DefaultPruneBatchSize
			if tdb.dialect == DialectSQLite {
				// The pure-Go driver under -race takes 5 ms a key: 2,000 keys, still 10 batches.
				keys, batch = 2000, 200
			}
			if v := os.Getenv("DISTRLOCK_PRUNE_KEYS"); v != "" {
				batch = DefaultPruneBatchSize
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil || n < int64(batch) {
					t.Fatalf("DISTRLOCK_PRUNE_KEYS=%q: need a number of at least %d", v, batch)
				}
				keys = n
			}
			start := time.Now()
			pruneAcquireReleaseAll(t, tdb, m, keys)
			released := time.Now()
			t.Logf("acquired and released %d keys, once each, in %v", keys, released.Sub(start).Round(time.Millisecond))
			var (
				mu       sync.Mutex
				longest  time.Duration // the longest acquire of the current window
				acquires int
				byKind   [2]time.Duration // the longest of the existing key's acquires, and of new keys'
				wg       sync.WaitGroup
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
						longest = max(longest, d)
						byKind[w] = max(byKind[w], d)
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
			window := func() (time.Duration, int) {
				mu.Lock()
				defer mu.Unlock()
				l, n := longest, acquires
				longest, acquires, byKind = 0, 0, [2]time.Duration{}
				return l, n
			}
			// The baseline: the workload alone, for as long as the prune is likely to take.
			time.Sleep(time.Second)
			baseline, baseAcquires := window()
			// Every key acquired above was released over a second ago; the workload's keys freed since
			// half a second ago stay.
			timer := &pruneTimer{exec: tdb.db, m: m}
			start = time.Now()
			deleted, err := m.Prune(ctx, timer, time.Since(released)/2, WithPruneBatchSize(batch))
			took := time.Since(start)
			// The acquires under way when the prune ended count too: let them finish.
			close(done)
			wg.Wait()
			mu.Lock()
			duringKinds := byKind // since the baseline was read
			mu.Unlock()
			during, pruneAcquires := window()
			if err != nil {
				t.Fatal(err)
			}
			var left int64
			if err := tdb.db.QueryRowContext(ctx, "SELECT count(*) FROM "+m.quoted+" WHERE lock_key LIKE 'bulk/%'").Scan(&left); err != nil {
				t.Fatal(err)
			}
			if left != 0 || deleted < keys {
				t.Errorf("deleted %d rows, %d of the %d acquired keys left", deleted, left, keys)
			}
			// SQLite's busy handler lets few acquires through during a short prune; a couple suffice there.
			if baseAcquires < 10 || pruneAcquires < 2 || pruneAcquires < 10 && tdb.dialect != DialectSQLite {
				t.Errorf("only %d acquires before and %d during the prune", baseAcquires, pruneAcquires)
			}
			maxBatch := timer.max()
			t.Logf("pruned %d rows in %d batches of %d in %v: batch max %v, mean %v; concurrent acquires: "+
				"%d during the prune, longest %v (the existing key's %v, new keys' %v); %d in the second before, longest %v",
				deleted, len(timer.batches), batch, took.Round(time.Millisecond), maxBatch.Round(time.Microsecond),
				(took / time.Duration(len(timer.batches))).Round(time.Microsecond), pruneAcquires,
				during.Round(time.Microsecond), duringKinds[0].Round(time.Microsecond), duringKinds[1].Round(time.Microsecond),
				baseAcquires, baseline.Round(time.Microsecond))
			// One batch more than the workload's own longest wait, and a quarter of the prune for a shared
			// machine's scheduling: a prune that kept its locks from one batch to the next would make an
			// acquire wait for all of it (at least 11 batches) and fail this. SQLite is not held to it:
			// its writers do not queue, one that finds the database locked sleeps in its busy handler (1,
			// 2, 5 … 100 ms a try), so how long an acquire waits is chance, with or without a prune (the
			// second before it has had 23 to 110 ms here, and under -race an acquire during the prune
			// 845 ms against a 205 ms batch).
			bound := baseline + maxBatch + took/4
			if during > bound && tdb.dialect != DialectSQLite {
				t.Errorf("a concurrent acquire took %v during the prune, more than %v (the longest before it %v, "+
					"the longest batch %v)", during, bound, baseline, maxBatch)
			}
			l, _ := m.NewLock(ctx, tdb.db, "bulk/012345")
			if err := l.Acquire(ctx, tdb.db, time.Minute); err != nil {
				t.Fatal(err)
			}
			if l.Fence() <= 1 {
				t.Errorf("fence %d after pruning, want more than 1, the fence the key had", l.Fence())
			}
		})
	}
}

// pruneAcquireReleaseAll acquires and releases the keys bulk/000000 to bulk/<n-1> once each through the
// library, a thousand to a transaction, in four goroutines where the database takes concurrent writers.
func pruneAcquireReleaseAll(t *testing.T, tdb *testDB, m *DBManager, n int64) {
	t.Helper()
	ctx := context.Background()
	const perTx = 1000
	workers := 4
	if tdb.dialect == DialectSQLite {
		workers = 1
	}
	next := make(chan int64)
	go func() {
		defer close(next)
		for first := int64(0); first < n; first += perTx {
			next <- first
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for first := range next {
				if err := pruneAcquireReleaseTx(ctx, tdb.db, m, first, min(first+perTx, n)); err != nil {
					errs <- err
					for range next { // let the feeder end
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func pruneAcquireReleaseTx(ctx context.Context, db *sql.DB, m *DBManager, from, to int64) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for i := from; i < to; i++ {
		l, err := m.NewLock(ctx, tx, fmt.Sprintf("bulk/%06d", i))
		if err != nil {
			return err
		}
		if err := l.Acquire(ctx, tx, time.Minute); err != nil {
			return err
		}
		if err := l.Release(ctx, tx); err != nil {
			return err
		}
	}
	return tx.Commit()
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
