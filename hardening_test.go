package distrlock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/distrlock/distrlock/internal/faultproxy"
)

// TestIntegrationRetryAfterLostReply: an acquire whose statement takes the lock on the server after the
// client gave up on it (it waited behind another transaction's row lock while the network went silent) is
// retried by the natural next Acquire, or AcquireWait, on the same DBLock; the retry sends the lost
// attempt's token, so it succeeds with a new fence instead of being refused by its own ghost for the whole
// TTL.
func TestIntegrationRetryAfterLostReply(t *testing.T) {
	t.Parallel()
	retries := []struct {
		name  string
		retry func(ctx context.Context, l *DBLock, db *sql.DB) error
	}{
		{"Acquire", func(ctx context.Context, l *DBLock, db *sql.DB) error { return l.Acquire(ctx, db, time.Minute) }},
		{"AcquireWait", func(ctx context.Context, l *DBLock, db *sql.DB) error {
			return l.AcquireWait(ctx, db, time.Minute, 100*time.Millisecond)
		}},
	}
	integEach(t, []*testDB{openPostgres(t), openMySQL(t, ""), openMySQL(t, "interpolateParams=true")}, func(t *testing.T, tdb *testDB) {
		for _, r := range retries {
			t.Run(r.name, func(t *testing.T) {
				ctx := t.Context()
				m := newTestManager(t, tdb)
				db, proxy := proxiedDB(t, tdb)
				const key = "lost-reply"
				setup := integLock(t, m, tdb.db, key)
				integAcquire(ctx, t, setup, tdb.db, time.Minute)
				if err := setup.Release(ctx, tdb.db); err != nil {
					t.Fatal(err)
				}

				// The attempt reaches the server and waits behind another transaction's row lock; then the
				// network goes silent, so neither its reply nor the driver's cancel request (pgx sends one when
				// the context ends) gets through. Once that transaction is over, the server takes the lock for
				// the attempt with nobody to tell.
				blocker, err := tdb.db.BeginTx(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer func() { _ = blocker.Rollback() }()
				var got string
				q := integQuery(tdb.dialect, fmt.Sprintf("SELECT lock_key FROM %s WHERE lock_key = ? FOR UPDATE", m.quoted))
				if err := blocker.QueryRowContext(ctx, q, key).Scan(&got); err != nil {
					t.Fatal(err)
				}
				if err := db.PingContext(ctx); err != nil {
					t.Fatal(err)
				}
				l := integLock(t, m, db, key)
				short, cancel := context.WithTimeout(ctx, 400*time.Millisecond)
				silence := time.AfterFunc(200*time.Millisecond, func() { proxy.SetMode(faultproxy.Blackhole) })
				err = l.Acquire(short, db, time.Minute)
				cancel()
				silence.Stop()
				if err == nil || errors.Is(err, ErrLockAlreadyAcquired) {
					t.Fatalf("acquire with its reply lost: %v, want an unknown outcome", err)
				}
				if l.Token() != "" || l.Fence() != 0 || l.pending == "" {
					t.Fatalf("after the lost reply: Token() %q, fence %d, pending %q; want \"\", 0 and the attempt's token",
						l.Token(), l.Fence(), l.pending)
				}
				if err := blocker.Rollback(); err != nil {
					t.Fatal(err)
				}
				var row integRow
				for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
					if row, _ = integReadRow(ctx, t, tdb, m, key); row.token.String == l.pending && row.expireIn.Valid {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("the lost attempt never took the lock: row %+v", row)
					}
				}
				pending := l.pending
				proxy.SetMode(faultproxy.Forward)

				// The retry goes over a network that works again.
				if err := r.retry(ctx, l, tdb.db); err != nil {
					t.Fatalf("retry after the lost reply: %v (refused by its own lost attempt?)", err)
				}
				if l.Token() != pending || l.Fence() <= row.fence {
					t.Fatalf("retry holds token %q fence %d; want the lost attempt's token %q and a fence above %d",
						l.Token(), l.Fence(), pending, row.fence)
				}
				integRefused(ctx, t, m, tdb.db, key)
				if err := l.Release(ctx, tdb.db); err != nil {
					t.Fatal(err)
				}
			})
		}
	})
}

// readOnlySession is a database and the statement that makes a session of it refuse writes.
type readOnlySession struct {
	tdb *testDB
	set string
}

const (
	readOnlyPostgres = "SET SESSION default_transaction_read_only = on"
	readOnlyMySQL    = "SET SESSION TRANSACTION READ ONLY"
)

// oneConnection opens the database again with a pool of one connection, so that a session setting holds
// for every statement sent through it; it is closed with the test.
func (s readOnlySession) oneConnection(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open(s.tdb.driver, s.tdb.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	db.SetMaxOpenConns(1)
	return db
}

// TestIntegrationReadOnlySession: in a read-only session (PostgreSQL default_transaction_read_only, MariaDB
// SET SESSION TRANSACTION READ ONLY) Acquire returns ErrReadOnly, never contention, keeps no token, and
// DoExclusively and Hold return within a second without running the function.
func TestIntegrationReadOnlySession(t *testing.T) {
	t.Parallel()
	sessions := []readOnlySession{
		{openPostgres(t), readOnlyPostgres},
		{openMySQL(t, ""), readOnlyMySQL},
		{openMySQL(t, "interpolateParams=true"), readOnlyMySQL},
	}
	for _, s := range sessions {
		t.Run(s.tdb.name, func(t *testing.T) {
			ctx := t.Context()
			m := newTestManager(t, s.tdb)
			db := s.oneConnection(t) // every statement runs in the session made read-only
			if _, err := db.ExecContext(ctx, s.set); err != nil {
				t.Fatal(err)
			}
			l := integLock(t, m, db, "read-only")
			err := l.Acquire(ctx, db, time.Minute)
			if !errors.Is(err, ErrReadOnly) || errors.Is(err, ErrLockAlreadyAcquired) {
				t.Fatalf("Acquire in a read-only session: %v, want ErrReadOnly and not contention", err)
			}
			if l.Token() != "" || l.pending != "" {
				t.Fatalf("after ErrReadOnly: Token() %q, pending %q; want nothing kept", l.Token(), l.pending)
			}
			start := time.Now()
			err = l.DoExclusively(ctx, db, func(context.Context) error {
				t.Error("fn ran")
				return nil
			}, WithWait(time.Minute))
			if !errors.Is(err, ErrReadOnly) || time.Since(start) > time.Second {
				t.Fatalf("DoExclusively with a wait: %v after %v, want ErrReadOnly within 1s", err, time.Since(start))
			}
			start = time.Now()
			if _, err := l.Hold(ctx, db); !errors.Is(err, ErrReadOnly) || time.Since(start) > time.Second {
				t.Fatalf("Hold: %v after %v, want ErrReadOnly within 1s", err, time.Since(start))
			}
			// Nothing was written: the key has no row.
			if row, ok := integReadRow(ctx, t, s.tdb, m, "read-only"); ok {
				t.Fatalf("a read-only session wrote the row %+v", row)
			}
		})
	}
}

// TestIntegrationAcquireWaitRetriesLockTimeout: while another transaction keeps the key's row locked, an
// acquire in a session with a short lock timeout (PostgreSQL lock_timeout, MariaDB
// innodb_lock_wait_timeout, SQLite without a busy timeout) fails with the database's error, which is
// neither contention nor an unknown outcome; AcquireWait tries again within its wait and takes the lock once
// the transaction has ended.
func TestIntegrationAcquireWaitRetriesLockTimeout(t *testing.T) {
	t.Parallel()
	cases := []struct {
		tdb      *testDB
		dsn      func(dsn string) string
		blockFor time.Duration
	}{
		{openPostgres(t), func(dsn string) string { return withParams(dsn, "lock_timeout=50") }, time.Second},
		{openMySQL(t, ""), func(dsn string) string { return withParams(dsn, "innodb_lock_wait_timeout=1") }, 2500 * time.Millisecond},
		{openMySQL(t, "interpolateParams=true"), func(dsn string) string { return withParams(dsn, "innodb_lock_wait_timeout=1") }, 2500 * time.Millisecond},
		{openSQLite(t), func(dsn string) string { return strings.Replace(dsn, "busy_timeout(10000)", "busy_timeout(0)", 1) }, time.Second},
	}
	for _, c := range cases {
		t.Run(c.tdb.name, func(t *testing.T) {
			ctx := t.Context()
			m := newTestManager(t, c.tdb)
			const key = "row-locked"
			setup := integLock(t, m, c.tdb.db, key)
			integAcquire(ctx, t, setup, c.tdb.db, time.Minute)
			if err := setup.Release(ctx, c.tdb.db); err != nil {
				t.Fatal(err)
			}
			impatient, err := sql.Open(c.tdb.driver, c.dsn(c.tdb.dsn))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = impatient.Close() })

			blocker, err := c.tdb.db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = blocker.Rollback() }()
			q := integQuery(c.tdb.dialect, fmt.Sprintf("SELECT lock_key FROM %s WHERE lock_key = ? FOR UPDATE", m.quoted))
			if c.tdb.dialect == DialectSQLite {
				// The transaction is BEGIN IMMEDIATE (the DSN's _txlock): it holds the write lock already.
				q = integQuery(c.tdb.dialect, fmt.Sprintf("SELECT lock_key FROM %s WHERE lock_key = ?", m.quoted))
			}
			var got string
			if err := blocker.QueryRowContext(ctx, q, key).Scan(&got); err != nil {
				t.Fatal(err)
			}

			l := integLock(t, m, impatient, key)
			err = l.Acquire(ctx, impatient, time.Minute)
			if err == nil || errors.Is(err, ErrLockAlreadyAcquired) || classify(err) != failTransient {
				t.Fatalf("Acquire behind a locked row: %v; want the database's lock timeout, not contention", err)
			}
			if l.pending != "" || l.Token() != "" {
				t.Fatalf("after a lock timeout: pending %q, Token() %q; want nothing kept", l.pending, l.Token())
			}

			timer := time.AfterFunc(c.blockFor, func() { _ = blocker.Rollback() })
			defer timer.Stop()
			start := time.Now()
			if err := l.AcquireWait(ctx, impatient, time.Minute, 10*time.Second); err != nil {
				t.Fatalf("AcquireWait behind a locked row: %v", err)
			}
			if waited := time.Since(start); waited < c.blockFor {
				t.Fatalf("AcquireWait took the lock after %v, while the row was locked for %v", waited, c.blockFor)
			}
			if err := l.Release(ctx, impatient); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestIntegrationHolderStopsWhenServerTurnsReadOnly: a holder whose server stays up but refuses writes from
// then on (a demoted primary, as Patroni leaves it) has its work cancelled with ErrLockLost while its lease
// still runs on the server, so no other holder can start before it stopped.
func TestIntegrationHolderStopsWhenServerTurnsReadOnly(t *testing.T) {
	t.Parallel()
	servers := []readOnlySession{{openPostgres(t), readOnlyPostgres}, {openMySQL(t, ""), readOnlyMySQL}}
	for _, s := range servers {
		t.Run(s.tdb.name, func(t *testing.T) {
			ctx := t.Context()
			m := newTestManager(t, s.tdb)
			db := s.oneConnection(t) // the holder's every statement runs in the session that turns read-only
			const ttl = 2 * time.Second
			l := integLock(t, m, db, "demoted")
			var turned, cancelled time.Time
			var left time.Duration
			err := l.DoExclusively(ctx, db, func(work context.Context) error {
				if _, err := db.ExecContext(ctx, s.set); err != nil {
					return err
				}
				turned = time.Now()
				select {
				case <-work.Done():
				case <-time.After(3 * ttl):
					return errors.New("the work was not cancelled within 3 TTLs")
				}
				cancelled = time.Now()
				if !errors.Is(context.Cause(work), ErrLockLost) {
					t.Errorf("the work's cause %v, want ErrLockLost", context.Cause(work))
				}
				// Read through another session: the lease must still have run on the server's clock when the
				// work was cancelled. The time the read took to start is added back (a lower bound: the
				// server computes the remainder later still).
				read := time.Now()
				row, ok := integReadRow(ctx, t, s.tdb, m, "demoted")
				if !ok {
					return errors.New("the lock's row is gone")
				}
				left = row.remaining() + read.Sub(cancelled)
				return nil
			}, WithLockTTL(ttl))
			if !errors.Is(err, ErrLockLost) {
				t.Fatalf("DoExclusively = %v, want ErrLockLost", err)
			}
			if left <= 0 {
				t.Fatalf("the work was cancelled %v after the server turned read-only, when the lease had already ended (%v left)", cancelled.Sub(turned), left)
			}
			t.Logf("the work stopped %v after the server turned read-only, %v before its lease ended on the server", cancelled.Sub(turned).Round(time.Millisecond), left.Round(time.Millisecond))
		})
	}
}
