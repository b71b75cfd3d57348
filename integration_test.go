package distrlock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The integration tests of this file and of integration_concurrency_test.go run every behaviour against
// the real databases of dbtest_test.go, one subtest per database, each subtest on a table of its own.

// integDBs returns the databases of allDBs plus MariaDB with clientFoundRows=true, alone and with
// interpolateParams=true: the acquire statement reads its outcome from the affected-rows count, which
// clientFoundRows changes, so every behaviour is checked under both settings. On MariaDB it adds a session
// whose sql_mode has SIMULTANEOUS_ASSIGNMENT, under which ON DUPLICATE KEY UPDATE assigns all columns from
// the old row instead of left to right.
func integDBs(t *testing.T) []*testDB {
	dbs := append(allDBs(t),
		openMySQL(t, "clientFoundRows=true"),
		openMySQL(t, "clientFoundRows=true&interpolateParams=true"))
	if isMariaDB(t, dbs[1]) {
		simultaneous := openMySQL(t, "sql_mode=%27STRICT_TRANS_TABLES,SIMULTANEOUS_ASSIGNMENT%27")
		var mode string
		if err := simultaneous.db.QueryRowContext(context.Background(), "SELECT @@SESSION.sql_mode").Scan(&mode); err != nil ||
			!strings.Contains(mode, "SIMULTANEOUS_ASSIGNMENT") {
			t.Fatalf("the session's sql_mode is %q (%v), want SIMULTANEOUS_ASSIGNMENT", mode, err)
		}
		dbs = append(dbs, simultaneous)
	}
	return dbs
}

// isMariaDB reports whether tdb is a MariaDB server (MySQL has no SIMULTANEOUS_ASSIGNMENT mode).
func isMariaDB(t *testing.T, tdb *testDB) bool {
	t.Helper()
	var version string
	if err := tdb.db.QueryRowContext(context.Background(), "SELECT VERSION()").Scan(&version); err != nil {
		t.Fatal(err)
	}
	return strings.Contains(strings.ToLower(version), "mariadb")
}

// integEach runs fn for each database in a subtest named after it, all at once (see integRun).
func integEach(t *testing.T, dbs []*testDB, fn func(t *testing.T, tdb *testDB)) {
	t.Helper()
	integRun(t, dbs, func(tdb *testDB) string { return tdb.name }, fn)
}

// integRun runs fn for each case in a subtest, all at the same time whatever -parallel allows (it
// defaults to the number of CPUs): the subtests spend their time waiting for the databases or sleeping
// out leases, each on a table of its own.
func integRun[T any](t *testing.T, cases []T, name func(T) string, fn func(t *testing.T, c T)) {
	t.Helper()
	var wg sync.WaitGroup
	for _, c := range cases {
		wg.Go(func() { t.Run(name(c), func(t *testing.T) { fn(t, c) }) })
	}
	wg.Wait()
}

func integIsPostgres(d Dialect) bool { return d == DialectPostgres || d == DialectPgx }

// integLock returns a new lock on key.
func integLock(t testing.TB, m *DBManager, exec SQLExecutor, key string) *DBLock {
	t.Helper()
	l, err := m.NewLock(context.Background(), exec, key)
	if err != nil {
		t.Fatalf("new lock %q: %v", key, err)
	}
	return &l
}

// integAcquire acquires l and fails the test if that does not succeed.
func integAcquire(ctx context.Context, t testing.TB, l *DBLock, exec SQLExecutor, ttl time.Duration) {
	t.Helper()
	if err := l.Acquire(ctx, exec, ttl); err != nil {
		t.Fatalf("acquire %q: %v", l.Key, err)
	}
	if l.Fence() <= 0 {
		t.Fatalf("acquire %q succeeded with fence %d", l.Key, l.Fence())
	}
}

// integWantErr fails the test unless err matches want.
func integWantErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want one matching %q", what, err, want)
	}
}

// integRefused checks that a fresh lock on key cannot be acquired now.
func integRefused(ctx context.Context, t testing.TB, m *DBManager, exec SQLExecutor, key string) {
	t.Helper()
	l := integLock(t, m, exec, key)
	integWantErr(t, "acquire of a held lock", l.Acquire(ctx, exec, time.Minute), ErrLockAlreadyAcquired)
	if l.Fence() != 0 {
		t.Fatalf("refused acquire set fence %d", l.Fence())
	}
}

// integQuery turns the ? placeholders of q into PostgreSQL's $n when the database needs them.
func integQuery(d Dialect, q string) string {
	if !integIsPostgres(d) {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// integNowMicros is the server's current time in microseconds since the epoch, as the dialect's SQL
// computes it.
func integNowMicros(d Dialect) string {
	switch {
	case integIsPostgres(d):
		return "(extract(epoch FROM statement_timestamp()) * 1000000)::bigint"
	case d == DialectSQLite:
		return "CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000"
	default:
		return "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))"
	}
}

// integRow is a key's row as stored.
type integRow struct {
	token    sql.NullString
	expireIn sql.NullInt64 // expire_at less the server's current time, in microseconds; NULL when released
	fence    int64
}

func (r integRow) remaining() time.Duration {
	return time.Duration(r.expireIn.Int64) * time.Microsecond
}

// integReadRow reads key's row with SQL; ok is false when the key has no row.
func integReadRow(ctx context.Context, t testing.TB, tdb *testDB, m *DBManager, key string) (row integRow, ok bool) {
	t.Helper()
	expire := "expire_at"
	if integIsPostgres(tdb.dialect) {
		expire = "(extract(epoch FROM expire_at) * 1000000)::bigint"
	}
	q := integQuery(tdb.dialect, fmt.Sprintf("SELECT token, %s - %s, fence FROM %s WHERE lock_key = ?",
		expire, integNowMicros(tdb.dialect), m.quoted))
	err := tdb.db.QueryRowContext(ctx, q, key).Scan(&row.token, &row.expireIn, &row.fence)
	if errors.Is(err, sql.ErrNoRows) {
		return row, false
	}
	if err != nil {
		t.Fatalf("read row %q: %v", key, err)
	}
	return row, true
}

// integInsertRow stores a row for key as an older holder (another process, an older version, a
// migrated go-dbkit table) left it: expiring expireIn from the server's now, or released when expireIn is nil.
func integInsertRow(ctx context.Context, t testing.TB, tdb *testDB, m *DBManager, key, token string, expireIn *time.Duration, fence int64) {
	t.Helper()
	expire := "NULL"
	args := []any{key, token, fence}
	if expireIn != nil {
		switch {
		case integIsPostgres(tdb.dialect):
			expire = "statement_timestamp() + ?::bigint * interval '1 microsecond'"
		default:
			expire = integNowMicros(tdb.dialect) + " + ?"
		}
		args = []any{key, token, expireIn.Microseconds(), fence}
	}
	q := integQuery(tdb.dialect, fmt.Sprintf("INSERT INTO %s (lock_key, token, expire_at, fence) VALUES (?, ?, %s, ?)",
		m.quoted, expire))
	if _, err := tdb.db.ExecContext(ctx, q, args...); err != nil {
		t.Fatalf("insert row %q: %v", key, err)
	}
}

// integSleepUntil sleeps until deadline.
func integSleepUntil(deadline time.Time) { time.Sleep(time.Until(deadline)) }

// integSecondDB returns a handle for a second, concurrent transaction on tdb's database. It is tdb's own
// handle, except for SQLite, whose handle begins transactions IMMEDIATE (taking the write lock at BEGIN):
// there the second handle begins DEFERRED on the same file, so that the wait happens in the acquire
// statement, as it does on the other databases, and not at BEGIN.
func integSecondDB(t *testing.T, tdb *testDB) *sql.DB {
	t.Helper()
	if tdb.dialect != DialectSQLite {
		return tdb.db
	}
	file, _, _ := strings.Cut(tdb.dsn, "?")
	return openDB(t, "sqlite(deferred)", DialectSQLite, "sqlite", file+"?_pragma=busy_timeout(10000)").db
}

// integCountingExec counts the statements sent through it.
type integCountingExec struct {
	inner SQLExecutor
	n     atomic.Int64
}

func (c *integCountingExec) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	c.n.Add(1)
	return c.inner.ExecContext(ctx, query, args...)
}

func (c *integCountingExec) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	c.n.Add(1)
	return c.inner.QueryRowContext(ctx, query, args...)
}

// TestIntegrationDoubleAcquire: a DBLock that holds the lock cannot acquire it again (each Acquire uses a
// new token), and the refusal leaves it holding the lock under its first token and fence.
func TestIntegrationDoubleAcquire(t *testing.T) {
	t.Parallel()
	integEach(t, integDBs(t), func(t *testing.T, tdb *testDB) {
		ctx := t.Context()
		m := newTestManager(t, tdb)
		l := integLock(t, m, tdb.db, "double")
		integAcquire(ctx, t, l, tdb.db, time.Minute)
		token, fence := l.Token(), l.Fence()

		integWantErr(t, "second acquire by the same DBLock", l.Acquire(ctx, tdb.db, time.Minute), ErrLockAlreadyAcquired)
		if l.Token() != token || l.Fence() != fence {
			t.Fatalf("refused acquire changed the lock: token %q→%q, fence %d→%d", token, l.Token(), fence, l.Fence())
		}
		if row, _ := integReadRow(ctx, t, tdb, m, l.Key); row.token.String != token || row.fence != fence {
			t.Fatalf("row after refused acquire: token %q fence %d, want %q %d", row.token.String, row.fence, token, fence)
		}
		if err := l.Release(ctx, tdb.db); err != nil {
			t.Fatalf("release after refused second acquire: %v", err)
		}
	})
}

// TestIntegrationReleaseThenAcquire: acquire → release → acquire works, for the same DBLock and for
// another, with growing fences; extend works while held; a second release reports ErrLockAlreadyReleased.
func TestIntegrationReleaseThenAcquire(t *testing.T) {
	t.Parallel()
	integEach(t, integDBs(t), func(t *testing.T, tdb *testDB) {
		ctx := t.Context()
		m := newTestManager(t, tdb)
		a := integLock(t, m, tdb.db, "cycle")
		b := integLock(t, m, tdb.db, "cycle")

		integAcquire(ctx, t, a, tdb.db, time.Minute)
		f1 := a.Fence()
		if err := a.Extend(ctx, tdb.db); err != nil {
			t.Fatalf("extend while held: %v", err)
		}
		if err := a.Release(ctx, tdb.db); err != nil {
			t.Fatalf("release: %v", err)
		}
		integWantErr(t, "second release", a.Release(ctx, tdb.db), ErrLockAlreadyReleased)
		integWantErr(t, "extend after release", a.Extend(ctx, tdb.db), ErrLockAlreadyReleased)

		integAcquire(ctx, t, a, tdb.db, time.Minute)
		f2 := a.Fence()
		integWantErr(t, "acquire by another while re-held", b.Acquire(ctx, tdb.db, time.Minute), ErrLockAlreadyAcquired)
		if err := a.Release(ctx, tdb.db); err != nil {
			t.Fatalf("release after re-acquire: %v", err)
		}
		integAcquire(ctx, t, b, tdb.db, time.Minute)
		f3 := b.Fence()
		if err := b.Release(ctx, tdb.db); err != nil {
			t.Fatalf("release by the other: %v", err)
		}
		if f1 >= f2 || f2 >= f3 {
			t.Fatalf("fences %d, %d, %d do not strictly increase", f1, f2, f3)
		}
	})
}

// TestIntegrationAfterExpiry: once the lease has ended on the server, release and extend return
// ErrLockAlreadyReleased and another DBLock takes the lock at once.
func TestIntegrationAfterExpiry(t *testing.T) {
	t.Parallel()
	const ttl = 300 * time.Millisecond
	integEach(t, integDBs(t), func(t *testing.T, tdb *testDB) {
		ctx := t.Context()
		m := newTestManager(t, tdb)
		rel := integLock(t, m, tdb.db, "expire-release")
		ext := integLock(t, m, tdb.db, "expire-extend")
		integAcquire(ctx, t, rel, tdb.db, ttl)
		integAcquire(ctx, t, ext, tdb.db, ttl)
		integSleepUntil(time.Now().Add(ttl + 150*time.Millisecond))

		integWantErr(t, "release after expiry", rel.Release(ctx, tdb.db), ErrLockAlreadyReleased)
		integWantErr(t, "extend after expiry", ext.Extend(ctx, tdb.db), ErrLockAlreadyReleased)
		integWantErr(t, "release after expiry and failed extend", ext.Release(ctx, tdb.db), ErrLockAlreadyReleased)
		for _, old := range []*DBLock{rel, ext} {
			next := integLock(t, m, tdb.db, old.Key)
			integAcquire(ctx, t, next, tdb.db, time.Minute)
			if next.Fence() <= old.Fence() {
				t.Fatalf("fence after expiry %d, not above the expired holder's %d", next.Fence(), old.Fence())
			}
		}
	})
}

// TestIntegrationStaticToken: two DBLocks with the same static token share the lock (the second acquire
// succeeds and renews the lease with a new fence), a different token or a random one is excluded, and
// either sharer can release it.
func TestIntegrationStaticToken(t *testing.T) {
	t.Parallel()
	integEach(t, integDBs(t), func(t *testing.T, tdb *testDB) {
		ctx := t.Context()
		m := newTestManager(t, tdb)
		const key, shared = "static", "worker-7"
		a := integLock(t, m, tdb.db, key)
		b := integLock(t, m, tdb.db, key)
		other := integLock(t, m, tdb.db, key)

		if err := a.AcquireWithStaticToken(ctx, tdb.db, shared, 30*time.Second); err != nil {
			t.Fatalf("first static acquire: %v", err)
		}
		if err := b.AcquireWithStaticToken(ctx, tdb.db, shared, 2*time.Minute); err != nil {
			t.Fatalf("second static acquire with the same token: %v", err)
		}
		if a.Token() != shared || b.Token() != shared {
			t.Fatalf("tokens %q and %q, want %q", a.Token(), b.Token(), shared)
		}
		if b.Fence() <= a.Fence() {
			t.Fatalf("renewing acquire got fence %d, not above %d", b.Fence(), a.Fence())
		}
		// The second acquire renewed the lease for its own TTL.
		if row, _ := integReadRow(ctx, t, tdb, m, key); row.remaining() < 110*time.Second || row.remaining() > 2*time.Minute {
			t.Fatalf("lease after the renewing acquire ends in %v, want about 2m", row.remaining())
		}

		integWantErr(t, "acquire with a different static token",
			other.AcquireWithStaticToken(ctx, tdb.db, "worker-8", time.Minute), ErrLockAlreadyAcquired)
		integWantErr(t, "acquire with a random token", other.Acquire(ctx, tdb.db, time.Minute), ErrLockAlreadyAcquired)
		if other.Fence() != 0 {
			t.Fatalf("excluded lock has fence %d", other.Fence())
		}

		if err := a.Release(ctx, tdb.db); err != nil {
			t.Fatalf("release by the first sharer: %v", err)
		}
		integWantErr(t, "release by the second sharer", b.Release(ctx, tdb.db), ErrLockAlreadyReleased)
		if err := other.AcquireWithStaticToken(ctx, tdb.db, "worker-8", time.Minute); err != nil {
			t.Fatalf("acquire with the other token after release: %v", err)
		}
		if other.Fence() <= b.Fence() {
			t.Fatalf("fence %d after release, not above %d", other.Fence(), b.Fence())
		}
	})
}

// TestIntegrationRollbackFrees: a lock acquired in a transaction that rolls back was never held: another
// client takes it at once, whether the rolled-back acquire created the key's row or updated it.
func TestIntegrationRollbackFrees(t *testing.T) {
	t.Parallel()
	integEach(t, integDBs(t), func(t *testing.T, tdb *testDB) {
		ctx := t.Context()
		m := newTestManager(t, tdb)
		for _, existing := range []bool{false, true} {
			key := fmt.Sprintf("rollback-existing-row-%v", existing)
			var before int64
			if existing {
				l := integLock(t, m, tdb.db, key)
				integAcquire(ctx, t, l, tdb.db, time.Minute)
				if err := l.Release(ctx, tdb.db); err != nil {
					t.Fatal(err)
				}
				before = l.Fence()
			}
			tx, err := tdb.db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			inTx := integLock(t, m, tx, key)
			integAcquire(ctx, t, inTx, tx, time.Minute)
			if err := tx.Rollback(); err != nil {
				t.Fatalf("rollback: %v", err)
			}

			next := integLock(t, m, tdb.db, key)
			quick, cancel := context.WithTimeout(ctx, 2*time.Second)
			start := time.Now()
			err = next.Acquire(quick, tdb.db, time.Minute)
			cancel()
			if err != nil {
				t.Fatalf("existing row %v: acquire after rollback: %v", existing, err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("existing row %v: acquire after rollback took %v", existing, d)
			}
			if next.Fence() <= before {
				t.Fatalf("existing row %v: fence %d after rollback, not above %d", existing, next.Fence(), before)
			}
		}
	})
}

// integLevels are the isolation levels the transaction tests cover; SQLite has only its default.
var integLevels = []sql.IsolationLevel{
	sql.LevelDefault, sql.LevelReadUncommitted, sql.LevelReadCommitted, sql.LevelRepeatableRead, sql.LevelSerializable,
}

const integSQLiteLevelSkip = "SQLite has one isolation level (serializable, one writer at a time) and " +
	"modernc.org/sqlite ignores the requested level: only sql.LevelDefault applies"

// TestIntegrationTxIsolation: at every isolation level, a second transaction's acquire of a key that an
// open transaction has acquired waits until its own context's deadline (error matching
// context.DeadlineExceeded, fence 0), and once the first commits the lock is held by the first.
// Both when the key's row is created by the first transaction and when it exists already.
func TestIntegrationTxIsolation(t *testing.T) {
	t.Parallel()
	const wait = 300 * time.Millisecond
	integEach(t, integDBs(t), func(t *testing.T, tdb *testDB) {
		m := newTestManager(t, tdb)
		second := integSecondDB(t, tdb)
		// Sequential: under REPEATABLE READ and SERIALIZABLE a waiting InnoDB insert takes gap locks that
		// could make a neighbouring key's subtest wait too.
		for _, level := range integLevels {
			for _, existing := range []bool{false, true} {
				name := fmt.Sprintf("%v/existing-row=%v", level, existing)
				t.Run(name, func(t *testing.T) {
					if tdb.dialect == DialectSQLite && level != sql.LevelDefault {
						t.Skip(integSQLiteLevelSkip)
					}
					ctx := t.Context()
					key := "iso-" + name
					var before int64
					if existing {
						l := integLock(t, m, tdb.db, key)
						integAcquire(ctx, t, l, tdb.db, time.Minute)
						if err := l.Release(ctx, tdb.db); err != nil {
							t.Fatal(err)
						}
						before = l.Fence()
					}
					opts := &sql.TxOptions{Isolation: level}
					tx1, err := tdb.db.BeginTx(ctx, opts)
					if err != nil {
						t.Fatalf("begin first: %v", err)
					}
					defer func() { _ = tx1.Rollback() }()
					first := integLock(t, m, tx1, key)
					integAcquire(ctx, t, first, tx1, time.Minute)

					tx2, err := second.BeginTx(ctx, opts)
					if err != nil {
						t.Fatalf("begin second: %v", err)
					}
					defer func() { _ = tx2.Rollback() }()
					waiter := integLock(t, m, tx2, key)
					start := time.Now()
					waitCtx, cancel := context.WithTimeout(ctx, wait)
					err = waiter.Acquire(waitCtx, tx2, time.Minute)
					cancel()
					waited := time.Since(start)
					integWantErr(t, "acquire in the second transaction", err, context.DeadlineExceeded)
					if waiter.Fence() != 0 {
						t.Fatalf("timed-out acquire has fence %d", waiter.Fence())
					}
					if waited < wait {
						t.Fatalf("second acquire returned after %v, before its %v deadline: %v", waited, wait, err)
					}
					_ = tx2.Rollback() // its connection may be gone: the driver closes it to stop the statement

					if err := tx1.Commit(); err != nil {
						t.Fatalf("commit first: %v", err)
					}
					integRefused(ctx, t, m, tdb.db, key)
					row, _ := integReadRow(ctx, t, tdb, m, key)
					if row.token.String != first.Token() || row.fence != first.Fence() || first.Fence() <= before {
						t.Fatalf("row after commit: token %q fence %d; first holder %q fence %d (before %d)",
							row.token.String, row.fence, first.Token(), first.Fence(), before)
					}
					if err := first.Release(ctx, tdb.db); err != nil {
						t.Fatalf("release by the first holder after commit: %v", err)
					}
				})
			}
		}
	})
}

// TestIntegrationTxDifferentKeys: at every isolation level, two open transactions acquire different keys
// without waiting for each other, and both locks hold after the commits.
func TestIntegrationTxDifferentKeys(t *testing.T) {
	t.Parallel()
	integEach(t, integDBs(t), func(t *testing.T, tdb *testDB) {
		if tdb.dialect == DialectSQLite {
			t.Skip("SQLite allows one writing transaction per database at a time, whatever the keys")
		}
		m := newTestManager(t, tdb)
		for _, level := range integLevels {
			for _, existing := range []bool{false, true} {
				name := fmt.Sprintf("%v/existing-rows=%v", level, existing)
				t.Run(name, func(t *testing.T) {
					ctx := t.Context()
					keys := []string{"keyA-" + name, "keyB-" + name}
					if existing {
						for _, k := range keys {
							l := integLock(t, m, tdb.db, k)
							integAcquire(ctx, t, l, tdb.db, time.Minute)
							if err := l.Release(ctx, tdb.db); err != nil {
								t.Fatal(err)
							}
						}
					}
					var txs []*sql.Tx
					var locks []*DBLock
					for _, k := range keys {
						tx, err := tdb.db.BeginTx(ctx, &sql.TxOptions{Isolation: level})
						if err != nil {
							t.Fatal(err)
						}
						defer func() { _ = tx.Rollback() }()
						l := integLock(t, m, tx, k)
						// The other transaction stays open: a wait for it would end at this deadline.
						quick, cancel := context.WithTimeout(ctx, 3*time.Second)
						err = l.Acquire(quick, tx, time.Minute)
						cancel()
						if err != nil {
							t.Fatalf("acquire %q while the other transaction is open: %v", k, err)
						}
						txs, locks = append(txs, tx), append(locks, l)
					}
					for _, tx := range txs {
						if err := tx.Commit(); err != nil {
							t.Fatalf("commit: %v", err)
						}
					}
					for _, l := range locks {
						integRefused(ctx, t, m, tdb.db, l.Key)
						if err := l.Release(ctx, tdb.db); err != nil {
							t.Fatalf("release %q: %v", l.Key, err)
						}
					}
				})
			}
		}
	})
}

// integTZ is a lock holder and a would-be thief on one database, their sessions in different time zones.
type integTZ struct {
	name          string
	holder, thief *testDB
	holderOffset  int64  // the holder's session offset from UTC, in seconds
	offsetQuery   string // reads the session's offset from UTC, in seconds
}

// integPostgresTZ returns the PostgreSQL DSN with the session time zone set at connection start.
func integPostgresTZ(zone string) string {
	dsn := postgresDSN()
	if strings.Contains(dsn, "://") {
		return withParams(dsn, "timezone="+strings.ReplaceAll(zone, "/", "%2F"))
	}
	return dsn + " timezone=" + zone
}

// TestIntegrationTimeZones: sessions in Asia/Tokyo (+09:00) and in UTC cannot steal each other's live
// lock, in both directions, and a 2 s lease taken in one zone ends for the other 2 s later: still held
// at 1 s, free at 2.2 s, not nine hours early or late. SQLite has no session time zone.
func TestIntegrationTimeZones(t *testing.T) {
	t.Parallel()
	const ttl = 2 * time.Second
	const pgOffset = "SELECT extract(timezone FROM now())::bigint"
	const myOffset = "SELECT TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(), NOW())"
	pgTokyo := openDB(t, "postgres(Asia/Tokyo)", DialectPgx, "pgx", integPostgresTZ("Asia/Tokyo"))
	pgUTC := openDB(t, "postgres(UTC)", DialectPgx, "pgx", integPostgresTZ("UTC"))
	myTokyo := openMySQL(t, "time_zone=%27%2B09%3A00%27")
	myUTC := openMySQL(t, "time_zone=%27%2B00%3A00%27")
	ipTokyo := openMySQL(t, "interpolateParams=true&time_zone=%27%2B09%3A00%27")
	ipUTC := openMySQL(t, "interpolateParams=true&time_zone=%27%2B00%3A00%27")
	const tokyo = 9 * 3600
	cases := []integTZ{
		{"postgres/Tokyo-holds-UTC-tries", pgTokyo, pgUTC, tokyo, pgOffset},
		{"postgres/UTC-holds-Tokyo-tries", pgUTC, pgTokyo, 0, pgOffset},
		{"mariadb/Tokyo-holds-UTC-tries", myTokyo, myUTC, tokyo, myOffset},
		{"mariadb/UTC-holds-Tokyo-tries", myUTC, myTokyo, 0, myOffset},
		{"mariadb(interpolateParams=true)/Tokyo-holds-UTC-tries", ipTokyo, ipUTC, tokyo, myOffset},
		{"mariadb(interpolateParams=true)/UTC-holds-Tokyo-tries", ipUTC, ipTokyo, 0, myOffset},
	}
	integRun(t, cases, func(c integTZ) string { return c.name }, func(t *testing.T, c integTZ) {
		ctx := t.Context()
		h, th := c.holder.db, c.thief.db
		for _, s := range []struct {
			db   *sql.DB
			want int64
		}{{h, c.holderOffset}, {th, tokyo - c.holderOffset}} {
			var offset int64
			if err := s.db.QueryRowContext(ctx, c.offsetQuery).Scan(&offset); err != nil {
				t.Fatal(err)
			}
			if offset != s.want {
				t.Fatalf("session offset %d s, want %d s: the DSN did not set the time zone", offset, s.want)
			}
		}
		m := newTestManager(t, c.holder)

		live := integLock(t, m, h, "live")
		integAcquire(ctx, t, live, h, time.Minute)
		integRefused(ctx, t, m, th, live.Key)
		other := integLock(t, m, th, live.Key)
		integWantErr(t, "static-token acquire from the other zone",
			other.AcquireWithStaticToken(ctx, th, "thief", time.Minute), ErrLockAlreadyAcquired)
		if err := other.Extend(ctx, th); !errors.Is(err, ErrLockAlreadyReleased) {
			t.Fatalf("extend by the excluded lock: %v", err)
		}
		// The holder's token releases the lock from either zone.
		if err := live.Release(ctx, th); err != nil {
			t.Fatalf("release from the other zone: %v", err)
		}
		integAcquire(ctx, t, other, th, time.Minute)

		short := integLock(t, m, h, "short")
		sent := time.Now()
		integAcquire(ctx, t, short, h, ttl)
		received := time.Now()

		integSleepUntil(sent.Add(ttl / 2))
		integRefused(ctx, t, m, th, short.Key)
		if late := time.Since(sent); late >= ttl {
			t.Fatalf("the check at half the TTL finished %v after the acquire was sent, too late to prove anything", late)
		}
		integSleepUntil(received.Add(ttl + 200*time.Millisecond))
		next := integLock(t, m, th, short.Key)
		integAcquire(ctx, t, next, th, time.Minute)
		if next.Fence() <= short.Fence() {
			t.Fatalf("fence %d after expiry, not above %d", next.Fence(), short.Fence())
		}
	})
}

// TestIntegrationOldTransaction: an acquire in a transaction that began 3 s earlier holds for its full
// TTL (5 s) from the statement, not from the transaction's start: another client is still refused 3.5 s
// after the commit (with the transaction's start time the lease would have ended 2 s after the commit),
// and takes the lock once the TTL has passed.
func TestIntegrationOldTransaction(t *testing.T) {
	t.Parallel()
	const (
		age = 3 * time.Second
		ttl = 5 * time.Second
	)
	integEach(t, integDBs(t), func(t *testing.T, tdb *testDB) {
		ctx := t.Context()
		m := newTestManager(t, tdb)
		tx, err := tdb.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback() }()
		var one int
		if err := tx.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
			t.Fatal(err)
		}
		time.Sleep(age)
		if integIsPostgres(tdb.dialect) {
			// Prove the transaction's clock (now()) is as old as intended.
			var txAge float64
			if err := tx.QueryRowContext(ctx, "SELECT extract(epoch FROM statement_timestamp() - now())::float8").Scan(&txAge); err != nil {
				t.Fatal(err)
			}
			if txAge < age.Seconds() {
				t.Fatalf("transaction is %.2f s old, want at least %v", txAge, age)
			}
		}
		l := integLock(t, m, tx, "old-tx")
		sent := time.Now()
		integAcquire(ctx, t, l, tx, ttl)
		received := time.Now()
		if err := tx.Commit(); err != nil {
			t.Fatalf("commit: %v", err)
		}
		committed := time.Now()

		row, _ := integReadRow(ctx, t, tdb, m, l.Key)
		if left := row.remaining(); left < ttl-time.Second || left > ttl {
			t.Fatalf("right after commit the lease ends in %v, want just under %v", left, ttl)
		}
		integSleepUntil(committed.Add(3500 * time.Millisecond))
		integRefused(ctx, t, m, tdb.db, l.Key)
		if late := time.Since(sent); late >= ttl {
			t.Fatalf("the check 3.5 s after commit finished %v after the acquire was sent: inconclusive", late)
		}
		integSleepUntil(received.Add(ttl + 200*time.Millisecond))
		next := integLock(t, m, tdb.db, l.Key)
		integAcquire(ctx, t, next, tdb.db, time.Minute)
		t.Logf("acquire in a %v-old transaction, commit %v after it; refused at commit+3.5s; free again %v after the acquire",
			age, committed.Sub(sent).Round(time.Millisecond), time.Since(sent).Round(time.Millisecond))
	})
}

// TestIntegrationLongTTL: a 10-year lease and a MaxTTL (100-year) lease hold, and the expiry stored in the
// table is the server's now plus the TTL within a minute; extend keeps it so. MaxTTL+1ns is rejected with
// ErrInvalidTTL without sending anything and without changing the DBLock.
func TestIntegrationLongTTL(t *testing.T) {
	t.Parallel()
	const tenYears = 10 * 365 * 24 * time.Hour
	integEach(t, integDBs(t), func(t *testing.T, tdb *testDB) {
		ctx := t.Context()
		m := newTestManager(t, tdb)
		for _, c := range []struct {
			key string
			ttl time.Duration
		}{{"ten-years", tenYears}, {"max-ttl", MaxTTL}} {
			l := integLock(t, m, tdb.db, c.key)
			integAcquire(ctx, t, l, tdb.db, c.ttl)
			integRefused(ctx, t, m, tdb.db, c.key)
			checkExpiry := func(when string) {
				t.Helper()
				row, ok := integReadRow(ctx, t, tdb, m, c.key)
				if !ok || !row.expireIn.Valid {
					t.Fatalf("%s %s: no stored expiry", c.key, when)
				}
				if diff := row.remaining() - c.ttl; diff < -time.Minute || diff > time.Minute {
					t.Fatalf("%s %s: stored expiry is now + %v, want now + %v (off by %v)", c.key, when, row.remaining(), c.ttl, diff)
				}
			}
			checkExpiry("after acquire")
			if err := l.Extend(ctx, tdb.db); err != nil {
				t.Fatalf("extend %s: %v", c.key, err)
			}
			checkExpiry("after extend")
			integRefused(ctx, t, m, tdb.db, c.key)
		}

		counted := &integCountingExec{inner: tdb.db}
		fresh := integLock(t, m, counted, "too-long")
		integWantErr(t, "acquire with MaxTTL+1ns", fresh.Acquire(ctx, counted, MaxTTL+1), ErrInvalidTTL)
		integWantErr(t, "static acquire with MaxTTL+1ns",
			fresh.AcquireWithStaticToken(ctx, counted, "static", MaxTTL+1), ErrInvalidTTL)
		if fresh.Token() != "" || fresh.Fence() != 0 || fresh.TTL != 0 {
			t.Fatalf("rejected acquire changed the lock: token %q fence %d TTL %v", fresh.Token(), fresh.Fence(), fresh.TTL)
		}

		held := integLock(t, m, tdb.db, "held")
		integAcquire(ctx, t, held, tdb.db, time.Minute)
		token, fence := held.Token(), held.Fence()
		integWantErr(t, "re-acquire of a held lock with MaxTTL+1ns", held.Acquire(ctx, counted, MaxTTL+1), ErrInvalidTTL)
		if held.Token() != token || held.Fence() != fence || held.TTL != time.Minute {
			t.Fatalf("rejected acquire changed the held lock: token %q fence %d TTL %v", held.Token(), held.Fence(), held.TTL)
		}
		if n := counted.n.Load(); n != 0 {
			t.Fatalf("rejected acquires sent %d statements, want 0", n)
		}
		if _, ok := integReadRow(ctx, t, tdb, m, "too-long"); ok {
			t.Fatal("rejected acquire created a row")
		}
	})
}

// TestIntegrationFences: fences grow across release and re-acquire, across expiry, and continue from the
// fence of a row left by an older holder (another manager, a migrated table), expired, released or live.
func TestIntegrationFences(t *testing.T) {
	t.Parallel()
	integEach(t, integDBs(t), func(t *testing.T, tdb *testDB) {
		ctx := t.Context()
		m := newTestManager(t, tdb)

		var fences []int64
		a := integLock(t, m, tdb.db, "chain")
		b := integLock(t, m, tdb.db, "chain")
		integAcquire(ctx, t, a, tdb.db, time.Minute)
		fences = append(fences, a.Fence())
		if err := a.Release(ctx, tdb.db); err != nil {
			t.Fatal(err)
		}
		integAcquire(ctx, t, a, tdb.db, time.Minute) // same DBLock again
		fences = append(fences, a.Fence())
		if err := a.Release(ctx, tdb.db); err != nil {
			t.Fatal(err)
		}
		integAcquire(ctx, t, b, tdb.db, 300*time.Millisecond) // another DBLock, left to expire
		fences = append(fences, b.Fence())
		time.Sleep(450 * time.Millisecond)
		integAcquire(ctx, t, a, tdb.db, time.Minute)
		fences = append(fences, a.Fence())
		if err := b.AcquireWithStaticToken(ctx, tdb.db, "s", time.Minute); !errors.Is(err, ErrLockAlreadyAcquired) {
			t.Fatalf("static acquire of a held lock: %v", err)
		}
		if err := a.Release(ctx, tdb.db); err != nil {
			t.Fatal(err)
		}
		if err := b.AcquireWithStaticToken(ctx, tdb.db, "s", time.Minute); err != nil {
			t.Fatal(err)
		}
		fences = append(fences, b.Fence())
		if err := b.AcquireWithStaticToken(ctx, tdb.db, "s", time.Minute); err != nil { // renewal
			t.Fatal(err)
		}
		fences = append(fences, b.Fence())
		if fences[0] != 1 {
			t.Errorf("first fence of a new key is %d, want 1", fences[0])
		}
		for i := 1; i < len(fences); i++ {
			if fences[i] <= fences[i-1] {
				t.Fatalf("fences %v do not strictly increase", fences)
			}
		}
		if row, _ := integReadRow(ctx, t, tdb, m, "chain"); row.fence != fences[len(fences)-1] {
			t.Fatalf("stored fence %d, last returned %d", row.fence, fences[len(fences)-1])
		}

		// Rows left by older holders; a second manager on the table plays a new process.
		m2, err := NewDBManager(tdb.dialect, WithTableName(m.TableName()))
		if err != nil {
			t.Fatal(err)
		}
		expired, live := -time.Second, 500*time.Millisecond
		for _, c := range []struct {
			key      string
			expireIn *time.Duration
			fence    int64
		}{
			{"old-released", nil, 41},
			{"old-expired", &expired, 41},
			{"old-live", &live, 41},
			{"dbkit-migrated", nil, 0}, // go-dbkit's rows get fence 0 from the upgrade migration
		} {
			integInsertRow(ctx, t, tdb, m, c.key, "old-holder", c.expireIn, c.fence)
			l := integLock(t, m2, tdb.db, c.key)
			if c.expireIn != nil && *c.expireIn > 0 {
				integWantErr(t, c.key+": acquire of a live older lock", l.Acquire(ctx, tdb.db, time.Minute), ErrLockAlreadyAcquired)
				if row, _ := integReadRow(ctx, t, tdb, m, c.key); row.fence != c.fence || row.token.String != "old-holder" {
					t.Fatalf("%s: refused acquire changed the row: fence %d token %q", c.key, row.fence, row.token.String)
				}
				time.Sleep(*c.expireIn + 150*time.Millisecond)
			}
			integAcquire(ctx, t, l, tdb.db, time.Minute)
			if l.Fence() <= c.fence {
				t.Fatalf("%s: fence %d, not above the older holder's %d", c.key, l.Fence(), c.fence)
			}
			if row, _ := integReadRow(ctx, t, tdb, m, c.key); row.fence != l.Fence() || row.token.String != l.Token() {
				t.Fatalf("%s: row has fence %d token %q, lock has %d %q", c.key, row.fence, row.token.String, l.Fence(), l.Token())
			}
		}
	})
}

// TestIntegrationAmbiguousAcquire: an acquire whose statement waits for a row lock held by another open
// transaction and whose context is cancelled mid-flight returns an error matching context.Canceled, keeps
// the attempted token privately (Token() is "") with fence 0, and once the blocking transaction has rolled
// back a release with that DBLock succeeds (the abandoned statement went on and took the lock) or returns ErrLockAlreadyReleased
// (it did not) but never ErrLockNotAcquired; either way the lock is then free, not stranded.
func TestIntegrationAmbiguousAcquire(t *testing.T) {
	t.Parallel()
	const blockFor = 300 * time.Millisecond
	integEach(t, integDBs(t), func(t *testing.T, tdb *testDB) {
		ctx := t.Context()
		m := newTestManager(t, tdb)
		const key = "ambiguous"
		setup := integLock(t, m, tdb.db, key)
		integAcquire(ctx, t, setup, tdb.db, time.Minute)
		if err := setup.Release(ctx, tdb.db); err != nil {
			t.Fatal(err)
		}

		blocker, err := tdb.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = blocker.Rollback() }()
		lockRow := integQuery(tdb.dialect, fmt.Sprintf("SELECT lock_key FROM %s WHERE lock_key = ? FOR UPDATE", m.quoted))
		if tdb.dialect == DialectSQLite {
			// BEGIN IMMEDIATE already holds the database's write lock; SQLite has no FOR UPDATE.
			lockRow = integQuery(tdb.dialect, fmt.Sprintf("SELECT lock_key FROM %s WHERE lock_key = ?", m.quoted))
		}
		var got string
		if err := blocker.QueryRowContext(ctx, lockRow, key).Scan(&got); err != nil {
			t.Fatalf("lock the row: %v", err)
		}

		l := integLock(t, m, tdb.db, key)
		acqCtx, cancel := context.WithCancel(ctx)
		timer := time.AfterFunc(blockFor, cancel)
		start := time.Now()
		err = l.Acquire(acqCtx, tdb.db, time.Minute) // a long TTL: a stranded lock would show below
		blocked := time.Since(start)
		timer.Stop()
		cancel()
		if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("cancelled acquire: got %v, want an error matching context.Canceled", err)
		}
		if errors.Is(err, ErrLockAlreadyAcquired) {
			t.Fatalf("cancelled acquire reported a refusal it cannot know: %v", err)
		}
		if blocked < blockFor {
			t.Fatalf("acquire returned after %v, before the cancellation at %v: %v", blocked, blockFor, err)
		}
		t.Logf("cancelled acquire after %v: %v", blocked.Round(time.Millisecond), err)
		if l.Token() != "" || l.Fence() != 0 || l.pending == "" {
			t.Fatalf("after a lost outcome: Token() %q, fence %d, pending %q; want \"\", 0 and the attempted token kept",
				l.Token(), l.Fence(), l.pending)
		}
		attempted := l.pending

		if err := blocker.Rollback(); err != nil {
			t.Fatalf("rollback blocker: %v", err)
		}
		// The abandoned statement may still run on the server now that the row is free: wait until it has
		// taken the lock, or long enough to say it will not.
		tookIt := false
		for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if row, _ := integReadRow(ctx, t, tdb, m, key); row.token.String == attempted && row.expireIn.Valid {
				tookIt = true
				break
			}
		}
		err = l.Release(ctx, tdb.db)
		switch {
		case errors.Is(err, ErrLockNotAcquired):
			t.Fatalf("release after a lost outcome: %v (the token was forgotten)", err)
		case err == nil:
			t.Logf("the abandoned acquire took the lock after the cancellation; release freed it")
		case errors.Is(err, ErrLockAlreadyReleased):
			t.Logf("the abandoned acquire never took the lock; release reports %v", err)
		default:
			t.Fatalf("release after a lost outcome: %v", err)
		}
		if tookIt != (err == nil) {
			t.Fatalf("the row showed the attempted token: %v, but release returned %v", tookIt, err)
		}
		next := integLock(t, m, tdb.db, key)
		integAcquire(ctx, t, next, tdb.db, time.Minute)
	})
}

// TestIntegrationAmbiguousReacquireKeepsHeldToken: a DBLock that holds the lock and makes a second Acquire
// whose outcome is lost (its statement waits behind another transaction's row lock until the context
// ends) can still release the lock it held: nothing stays stranded under a token nobody knows.
func TestIntegrationAmbiguousReacquireKeepsHeldToken(t *testing.T) {
	t.Parallel()
	integEach(t, []*testDB{openPostgres(t), openMySQL(t, ""), openMySQL(t, "interpolateParams=true")}, func(t *testing.T, tdb *testDB) {
		ctx := t.Context()
		m := newTestManager(t, tdb)
		l := integLock(t, m, tdb.db, "k")
		integAcquire(ctx, t, l, tdb.db, time.Minute)
		held := l.Token()

		blocker, err := tdb.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer blocker.Rollback()
		var k string
		q := integQuery(tdb.dialect, fmt.Sprintf("SELECT lock_key FROM %s WHERE lock_key = ? FOR UPDATE", m.quoted))
		if err := blocker.QueryRowContext(ctx, q, "k").Scan(&k); err != nil {
			t.Fatal(err)
		}
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		err = l.Acquire(short, tdb.db, time.Minute)
		cancel()
		if tdb.dialect == DialectPgx || tdb.dialect == DialectPostgres {
			// PostgreSQL's gate reads the row without waiting for its lock: a clean refusal, nothing kept.
			if !errors.Is(err, ErrLockAlreadyAcquired) || l.pending != "" {
				t.Fatalf("second acquire: %v, pending token %q: want a refusal that keeps no token", err, l.pending)
			}
		} else if err == nil || errors.Is(err, ErrLockAlreadyAcquired) || l.pending == "" || l.pending == held {
			t.Fatalf("second acquire: %v, pending token %q (held %q): want an ambiguous outcome with a new token", err, l.pending, held)
		}
		if err := blocker.Rollback(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond) // the abandoned statement runs, and is refused: the lock is held

		if err := l.Release(ctx, tdb.db); err != nil {
			t.Fatalf("release after the ambiguous re-acquire: %v", err)
		}
		next := integLock(t, m, tdb.db, "k")
		if err := next.Acquire(ctx, tdb.db, time.Minute); err != nil {
			row, _ := integReadRow(ctx, t, tdb, m, "k")
			t.Fatalf("the lock stayed held after release (row token %q): %v", row.token.String, err)
		}
	})
}
