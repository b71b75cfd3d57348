package distrlock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// integRowVersion reads what changes whenever a statement writes or locks the key's row: PostgreSQL's
// xmin and xmax (a row lock sets xmax), MySQL's contended counter and queue columns, SQLite's row as a
// whole (SQLite has no row locks).
func integRowVersion(ctx context.Context, t *testing.T, tdb *testDB, m *DBManager, key string) string {
	t.Helper()
	var q string
	switch {
	case integIsPostgres(tdb.dialect):
		q = fmt.Sprintf("SELECT xmin::text || '/' || xmax::text FROM %s WHERE lock_key = $1", m.quoted)
	case tdb.dialect == DialectSQLite:
		q = fmt.Sprintf("SELECT token || '/' || expire_at || '/' || fence || '/' || queue_tail FROM %s WHERE lock_key = ?", m.quoted)
	default:
		q = fmt.Sprintf("SELECT CONCAT(contended, '/', fence, '/', queue_tail, '/', expire_at) FROM %s WHERE lock_key = ?", m.quoted)
	}
	var v string
	if err := tdb.db.QueryRowContext(ctx, q, key).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestIntegrationRefusalWritesNothing: an acquire refused because another holds the lock, or because
// waiters are queued before it, neither writes nor locks the key's row (PostgreSQL: xmin and xmax stay;
// MySQL: the session's Handler_write and Handler_update stay and contended is not bumped).
func TestIntegrationRefusalWritesNothing(t *testing.T) {
	t.Parallel()
	integEach(t, allDBs(t), func(t *testing.T, tdb *testDB) {
		ctx := t.Context()
		m := newTestManager(t, tdb)
		holder := integLock(t, m, tdb.db, "k")
		integAcquire(ctx, t, holder, tdb.db, time.Minute)
		before := integRowVersion(ctx, t, tdb, m, "k")
		conn, err := tdb.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		handlers := func() (n int64) {
			if tdb.dialect != DialectMySQL && tdb.dialect != DialectMariaDB {
				return 0
			}
			rows, err := conn.QueryContext(ctx, "SHOW SESSION STATUS WHERE Variable_name IN ('Handler_write', 'Handler_update')")
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			for rows.Next() {
				var name string
				var v int64
				if err := rows.Scan(&name, &v); err != nil {
					t.Fatal(err)
				}
				n += v
			}
			return n
		}
		h0 := handlers()
		waiter := integLock(t, m, conn, "k")
		for range 20 {
			integWantErr(t, "acquire of a held lock", waiter.Acquire(ctx, conn, time.Minute), ErrLockAlreadyAcquired)
		}
		// SHOW STATUS itself writes a temporary table: count the reads' own share with a second SHOW.
		h1 := handlers()
		h2 := handlers()
		if writes := (h1 - h0) - (h2 - h1); writes != 0 {
			t.Errorf("20 refused acquires: %d handler writes in their session, want 0", writes)
		}
		if after := integRowVersion(ctx, t, tdb, m, "k"); after != before {
			t.Errorf("20 refused acquires changed or locked the row: %s, then %s", before, after)
		}
	})
}

// TestIntegrationQueueOrder: waiters take a released lock in the order they queued, before the releaser
// tries again, across managers (so no in-process wake-up helps), and the fences keep growing.
func TestIntegrationQueueOrder(t *testing.T) {
	t.Parallel()
	integEach(t, allDBs(t), func(t *testing.T, tdb *testDB) {
		ctx := t.Context()
		m := newTestManager(t, tdb)
		// Every party has its own manager, as separate processes would. A waiter reads at least every
		// 200 ms and each ticket gets a grace of 400 ms: with the default 50 and 100 ms a stall of the
		// loaded CI host (make scale-test) once let the second waiter's grace pass before the first read.
		other := func() *DBManager {
			mm, err := NewDBManager(tdb.dialect, WithTableName(m.table), WithWaitBackoff(DefaultWaitMinBackoff, 200*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			return mm
		}
		holder := integLock(t, other(), tdb.db, "k")
		integAcquire(ctx, t, holder, tdb.db, time.Minute)
		var (
			mu    sync.Mutex
			order []string
			wg    sync.WaitGroup
		)
		for i, name := range []string{"first", "second", "third"} {
			l := integLock(t, other(), tdb.db, "k")
			wg.Go(func() {
				if err := l.AcquireWait(ctx, tdb.db, time.Minute, 20*time.Second); err != nil {
					t.Errorf("%s: %v", name, err)
					return
				}
				mu.Lock()
				order = append(order, name)
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
				if err := l.Release(ctx, tdb.db); err != nil {
					t.Errorf("%s: release: %v", name, err)
				}
			})
			// Each waiter queues before the next one starts.
			integWaitFor(t, func() bool {
				var tail int64
				q := integQuery(tdb.dialect, fmt.Sprintf("SELECT queue_tail FROM %s WHERE lock_key = ?", m.quoted))
				return tdb.db.QueryRowContext(ctx, q, "k").Scan(&tail) == nil && tail == int64(i+1)
			})
		}
		fence := holder.Fence()
		if err := holder.Release(ctx, tdb.db); err != nil {
			t.Fatal(err)
		}
		// The releaser's next attempt does not take the lock back while others queue.
		integWantErr(t, "the releaser's next acquire", holder.Acquire(ctx, tdb.db, time.Minute), ErrLockAlreadyAcquired)
		wg.Wait()
		if fmt.Sprint(order) != "[first second third]" {
			t.Fatalf("the waiters took the lock in the order %v, want [first second third]", order)
		}
		next := integLock(t, m, tdb.db, "k")
		integAcquire(ctx, t, next, tdb.db, time.Minute)
		if next.Fence() != fence+4 {
			t.Fatalf("fence after three hand-overs %d, want %d", next.Fence(), fence+4)
		}
	})
}

// integWaitFor polls cond for up to 10 seconds.
func integWaitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 10 s")
}

// TestIntegrationLockAtLeastFor: DoExclusively with WithLockAtLeastFor keeps the lock taken until that long
// after its acquisition when the work ends sooner; the next acquire succeeds after it, with a higher fence.
func TestIntegrationLockAtLeastFor(t *testing.T) {
	t.Parallel()
	integEach(t, allDBs(t), func(t *testing.T, tdb *testDB) {
		ctx := t.Context()
		m := newTestManager(t, tdb)
		l := integLock(t, m, tdb.db, "job")
		start := time.Now()
		if err := l.DoExclusively(ctx, tdb.db, func(context.Context) error { return nil },
			WithLockTTL(10*time.Second), WithLockAtLeastFor(time.Second)); err != nil {
			t.Fatal(err)
		}
		info, err := m.Get(ctx, tdb.db, "job")
		if err != nil {
			t.Fatal(err)
		}
		if held := info.ExpiresAt.Sub(info.AcquiredAt); held < 999*time.Millisecond || held > 1001*time.Millisecond {
			t.Fatalf("after an early release the lease ends %v after its acquisition, want 1 s", held)
		}
		integRefused(ctx, t, m, tdb.db, "job")
		integSleepUntil(start.Add(1100 * time.Millisecond))
		next := integLock(t, m, tdb.db, "job")
		integAcquire(ctx, t, next, tdb.db, time.Minute)
		if next.Fence() != 2 {
			t.Fatalf("fence %d, want 2", next.Fence())
		}
		// Released after its least hold, a lock is free at once.
		if err := next.DoExclusively(ctx, tdb.db, func(context.Context) error { return nil }, WithLockAtLeastFor(time.Millisecond)); !errors.Is(err, ErrLockAlreadyAcquired) {
			t.Fatalf("DoExclusively on a lock its own DBLock holds under another token: %v", err)
		}
		if err := next.Release(ctx, tdb.db); err != nil {
			t.Fatal(err)
		}
		integAcquire(ctx, t, integLock(t, m, tdb.db, "job"), tdb.db, time.Minute)
	})
}

// TestIntegrationReleasePublishes: on PostgreSQL a release through a manager with a Notifier publishes the
// key on its channel, in the releasing statement, when a ticket waits for it or the lock announces its
// releases (an election's); a release nobody queued for, one that keeps its least hold, and a refused one
// publish nothing. Notices come in commit order, so the first two must be the two that should publish.
func TestIntegrationReleasePublishes(t *testing.T) {
	t.Parallel()
	tdb := openPostgres(t)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, tdb.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	channel := fmt.Sprintf("distrlock_test_%d", time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "LISTEN "+channel); err != nil {
		t.Fatal(err)
	}
	plain := newTestManager(t, tdb)
	m, err := NewDBManager(DialectPgx, WithTableName(plain.table), WithNotifier(&fakeNotifier{channel: channel}))
	if err != nil {
		t.Fatal(err)
	}
	acquired := func(key string) *DBLock {
		l := integLock(t, m, tdb.db, key)
		integAcquire(ctx, t, l, tdb.db, time.Minute)
		return l
	}
	queue := func(key string) {
		w := waitState{lock: integLock(t, m, tdb.db, key), exec: tdb.db}
		if w.enqueue(ctx); w.ticket == 0 {
			t.Fatalf("no ticket for %s", key)
		}
	}
	release := func(l *DBLock) {
		if err := l.Release(ctx, tdb.db); err != nil {
			t.Fatal(err)
		}
	}
	alone := acquired("alone")
	release(alone)
	kept := acquired("kept")
	queue("kept")
	kept.minHold = time.Minute
	release(kept)
	integWantErr(t, "second release", alone.Release(ctx, tdb.db), ErrLockAlreadyReleased)
	awaited := acquired("awaited")
	queue("awaited")
	release(awaited)
	announced := acquired("announced")
	announced.announce = true
	release(announced)
	for _, want := range []string{"awaited", "announced"} {
		wait, cancel := context.WithTimeout(ctx, 5*time.Second)
		n, err := conn.WaitForNotification(wait)
		cancel()
		if err != nil || n.Payload != want {
			t.Fatalf("notification: %v, %v; want %q", n, err, want)
		}
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if n, err := conn.WaitForNotification(short); err == nil {
		t.Fatalf("a third release published %q", n.Payload)
	}
}

// TestIntegrationWaiterWakesOnNotice: a waiter of a manager with a listening Notifier sleeps until a notice
// (not polling), and takes the lock right after one.
func TestIntegrationWaiterWakesOnNotice(t *testing.T) {
	t.Parallel()
	tdb := openPostgres(t)
	ctx := t.Context()
	plain := newTestManager(t, tdb)
	n := &fakeNotifier{}
	m, err := NewDBManager(DialectPgx, WithTableName(plain.table), WithNotifier(n))
	if err != nil {
		t.Fatal(err)
	}
	// The holder is another manager, as another process would be: its release wakes nobody here.
	holder := integLock(t, plain, tdb.db, "job")
	integAcquire(ctx, t, holder, tdb.db, time.Minute)
	counting := &integCountingExec{inner: tdb.db}
	done := make(chan error, 1)
	go func() {
		l := integLock(t, m, tdb.db, "job")
		done <- l.AcquireWait(ctx, counting, time.Minute, 10*time.Second)
	}()
	time.Sleep(500 * time.Millisecond)
	if err := holder.Release(ctx, tdb.db); err != nil {
		t.Fatal(err)
	}
	if got := counting.n.Load(); got > 4 {
		t.Errorf("a waiter sent %d statements in 0.5 s while a notifier listened, want at most 4 (attempt, ticket, reads)", got)
	}
	released := time.Now()
	n.notify("job")
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(released); d > 500*time.Millisecond {
			t.Errorf("took the lock %v after the notice", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter did not take the lock within 5 s of the notice")
	}
}

// TestIntegrationTableNotMigrated: on a table without migration 00004 (the wait queue), Acquire and
// AcquireWait fail at once with ErrSchemaMismatch and the driver's error, keep no token and report no
// contention; a missing table gives the same error.
func TestIntegrationTableNotMigrated(t *testing.T) {
	t.Parallel()
	integEach(t, allDBs(t), func(t *testing.T, tdb *testDB) {
		ctx := t.Context()
		m := newTestManager(t, tdb)
		if _, err := tdb.db.ExecContext(ctx, m.DropTableSQL()); err != nil {
			t.Fatal(err)
		}
		l := integLock(t, m, tdb.db, "job")
		err := l.Acquire(ctx, tdb.db, time.Minute)
		if !errors.Is(err, ErrSchemaMismatch) || errors.Is(err, ErrLockAlreadyAcquired) || l.pending != "" {
			t.Fatalf("acquire on a missing table: %v (pending %q), want ErrSchemaMismatch and nothing kept", err, l.pending)
		}
		for _, mig := range m.Migrations() {
			if strings.Contains(mig.ID(), "00004") {
				break
			}
			for _, stmt := range mig.UpSQL() {
				if _, err := tdb.db.ExecContext(ctx, stmt); err != nil {
					t.Fatalf("%s: %v", mig.ID(), err)
				}
			}
		}
		err = l.Acquire(ctx, tdb.db, time.Minute)
		if !errors.Is(err, ErrSchemaMismatch) || errors.Is(err, ErrLockAlreadyAcquired) || l.pending != "" || l.Token() != "" {
			t.Fatalf("acquire on a table without 00004: %v (pending %q), want ErrSchemaMismatch and nothing kept", err, l.pending)
		}
		start := time.Now()
		err = l.AcquireWait(ctx, tdb.db, time.Minute, 10*time.Second)
		if !errors.Is(err, ErrSchemaMismatch) || time.Since(start) > time.Second {
			t.Fatalf("AcquireWait on a table without 00004: %v after %v, want ErrSchemaMismatch at once", err, time.Since(start))
		}
	})
}

// TestIntegrationGiveUpLeavesQueue: waiters that give up in the order they queued leave the queue empty,
// so a plain Acquire takes the lock at once when its holder releases it, as go-dbkit's does.
func TestIntegrationGiveUpLeavesQueue(t *testing.T) {
	t.Parallel()
	integEach(t, allDBs(t), func(t *testing.T, tdb *testDB) {
		ctx := t.Context()
		m := newTestManager(t, tdb)
		holder := integLock(t, m, tdb.db, "k")
		integAcquire(ctx, t, holder, tdb.db, time.Minute)
		queue := func() (head, tail int64) {
			q := integQuery(tdb.dialect, fmt.Sprintf("SELECT queue_head, queue_tail FROM %s WHERE lock_key = ?", m.quoted))
			if err := tdb.db.QueryRowContext(ctx, q, "k").Scan(&head, &tail); err != nil {
				t.Fatal(err)
			}
			return head, tail
		}
		var wg sync.WaitGroup
		for i := range 3 {
			other, err := NewDBManager(tdb.dialect, WithTableName(m.table))
			if err != nil {
				t.Fatal(err)
			}
			l := integLock(t, other, tdb.db, "k")
			wg.Go(func() {
				err := l.AcquireWait(ctx, tdb.db, time.Minute, 300*time.Millisecond)
				if !errors.Is(err, ErrWaitTimeout) {
					t.Errorf("waiter %d: %v, want the wait's timeout", i, err)
				}
			})
			integWaitFor(t, func() bool { _, tail := queue(); return tail == int64(i+1) })
		}
		wg.Wait()
		if head, tail := queue(); head != tail {
			t.Fatalf("after every waiter gave up: queue head %d, tail %d; want an empty queue", head, tail)
		}
		if err := holder.Release(ctx, tdb.db); err != nil {
			t.Fatal(err)
		}
		integAcquire(ctx, t, integLock(t, m, tdb.db, "k"), tdb.db, time.Minute)
	})
}

// TestIntegrationDequeue: a waiter that gives up moves the queue's head past its ticket when it is the
// next one, the tail back when it is the last one, and changes nothing when its ticket is in the middle
// or the head has already passed it (the tail never falls behind the head).
func TestIntegrationDequeue(t *testing.T) {
	t.Parallel()
	integEach(t, allDBs(t), func(t *testing.T, tdb *testDB) {
		ctx := t.Context()
		m := newTestManager(t, tdb)
		integAcquire(ctx, t, integLock(t, m, tdb.db, "k"), tdb.db, time.Minute)
		set := integQuery(tdb.dialect, fmt.Sprintf("UPDATE %s SET queue_head = ?, queue_tail = ? WHERE lock_key = ?", m.quoted))
		get := integQuery(tdb.dialect, fmt.Sprintf("SELECT queue_head, queue_tail FROM %s WHERE lock_key = ?", m.quoted))
		for _, c := range []struct {
			name               string
			head, tail, ticket int64
			wantHead, wantTail int64
		}{
			{"next", 4, 7, 5, 5, 7},
			{"next and last", 4, 5, 5, 5, 5},
			{"last", 3, 7, 7, 3, 6},
			{"middle", 3, 7, 5, 3, 7},
			{"passed, and the tail", 7, 7, 7, 7, 7},
			{"passed", 7, 9, 6, 7, 9},
		} {
			if _, err := tdb.db.ExecContext(ctx, set, c.head, c.tail, "k"); err != nil {
				t.Fatal(err)
			}
			if _, err := tdb.db.ExecContext(ctx, m.q.dequeue, m.spec.dequeueArgs("k", c.ticket)...); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			var head, tail int64
			if err := tdb.db.QueryRowContext(ctx, get, "k").Scan(&head, &tail); err != nil {
				t.Fatal(err)
			}
			if head != c.wantHead || tail != c.wantTail {
				t.Errorf("%s: ticket %d of queue (%d, %d] left (%d, %d], want (%d, %d]",
					c.name, c.ticket, c.head, c.tail, head, tail, c.wantHead, c.wantTail)
			}
		}
	})
}

// TestIntegrationFirstUseStarvesNobody: four parties, each with its own *sql.DB and manager as processes
// would have, start waiting for a key that has no row yet, then loop on it (wait, hold 5 ms, release).
// Every one takes the lock in turn: none is left behind the queue. On MariaDB the first acquires of a key
// can deadlock on the gap where its row would be, and all fail; a waiter whose ticket then found no row
// used to wait without one behind every ticket queued after it, until the others stopped: before the fix
// this test failed in each of four runs. Each trial is a new key.
func TestIntegrationFirstUseStarvesNobody(t *testing.T) {
	t.Parallel()
	integEach(t, []*testDB{openPostgres(t), openMySQL(t, "")}, func(t *testing.T, tdb *testDB) {
		m := newTestManager(t, tdb)
		const parties, trials, run = 4, 8, 600 * time.Millisecond
		dbs := make([]*sql.DB, parties)
		managers := make([]*DBManager, parties)
		for i := range parties {
			db, err := sql.Open(tdb.driver, tdb.dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			if dbs[i], err = db, db.PingContext(t.Context()); err != nil {
				t.Fatal(err)
			}
			if managers[i], err = NewDBManager(tdb.dialect, WithTableName(m.table)); err != nil {
				t.Fatal(err)
			}
		}
		for trial := range trials {
			key := fmt.Sprintf("first-use-%d", trial)
			end := time.Now().Add(run)
			counts := make([]int, parties)
			var wg sync.WaitGroup
			for i := range parties {
				wg.Go(func() {
					for time.Now().Before(end) {
						l, err := managers[i].NewLock(t.Context(), dbs[i], key)
						if err != nil {
							t.Errorf("party %d: %v", i, err)
							return
						}
						if err := l.AcquireWait(t.Context(), dbs[i], time.Minute, 10*time.Second); err != nil {
							t.Errorf("party %d: %v", i, err)
							return
						}
						if time.Now().Before(end) {
							counts[i]++
						}
						time.Sleep(5 * time.Millisecond)
						if err := l.Release(t.Context(), dbs[i]); err != nil {
							t.Errorf("party %d: release: %v", i, err)
							return
						}
					}
				})
			}
			wg.Wait()
			// A fair share is about 20 each; a party left behind the queue takes it only after the end.
			if slices.Min(counts) == 0 {
				t.Fatalf("trial %d: acquisitions per party in %v: %v; want each at least 1", trial, run, counts)
			}
		}
	})
}
