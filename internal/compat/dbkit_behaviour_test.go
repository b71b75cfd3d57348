package compat

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distrlock/distrlock"
	"github.com/go-sql-driver/mysql"
	_ "github.com/lib/pq"
)

// TestDBkitBehaviour restates the cases of go-dbkit's distrlock tests (db_lock_test.go) and asserts what they
// assert, so that a program moved from go-dbkit keeps the behaviour its own tests rely on. Every case runs
// on PostgreSQL through lib/pq and through pgx, and on MariaDB under both MySQL dialects, each in a table of
// its own made by the manager's migrations, as go-dbkit's tests made theirs.
//
// The checks of driver errors (a statement cancelled by its context, the rollback that follows) are
// go-dbkit's per driver: lib/pq reports the server's cancellation, the others the context's error.
func TestDBkitBehaviour(t *testing.T) {
	for _, tg := range dbkitTargets() {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel() // the targets are separate databases or tables; their cases take seconds each
			db := tg.open(t)
			for _, c := range dbkitCases() {
				t.Run(c.name, func(t *testing.T) {
					c.run(t, newDBkitEnv(t, tg, db))
				})
			}
		})
	}
}

// dbkitTargets are the databases and drivers go-dbkit's tests ran on (PostgreSQL through lib/pq and pgx,
// MySQL), here with MariaDB under both of distrlock's MySQL dialects.
func dbkitTargets() []target {
	pg := envOr("DISTRLOCK_POSTGRES_DSN", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	my := envOr("DISTRLOCK_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/test")
	return []target{
		{name: "postgres-libpq", dialect: distrlock.DialectPostgres, driver: "postgres", dsn: pg},
		{name: "postgres-pgx", dialect: distrlock.DialectPgx, driver: "pgx", dsn: pg},
		{name: "mariadb-mysql", dialect: distrlock.DialectMySQL, driver: "mysql", dsn: my},
		{name: "mariadb-mariadb", dialect: distrlock.DialectMariaDB, driver: "mysql", dsn: my},
	}
}

// dbkitEnv is what one case works with: the shared *sql.DB of its target and a manager of a fresh table.
type dbkitEnv struct {
	tg target
	db *sql.DB
	m  *distrlock.DBManager
}

// newDBkitEnv makes a table for one case by applying the manager's migrations, the route go-dbkit's tests
// took, and drops it when the case ends.
func newDBkitEnv(t *testing.T, tg target, db *sql.DB) dbkitEnv {
	t.Helper()
	tg.table = "dbkit_behaviour_" + randomSuffix(t)
	m := tg.manager(t)
	tg.dropAfter(t, db)
	for _, mig := range m.Migrations() {
		for _, stmt := range mig.UpSQL() {
			if _, err := db.ExecContext(context.Background(), stmt); err != nil {
				t.Fatalf("migration %s: %v", mig.ID(), err)
			}
		}
	}
	return dbkitEnv{tg: tg, db: db, m: m}
}

// newLock makes a lock on key inside a transaction, as go-dbkit's tests did.
func (e dbkitEnv) newLock(ctx context.Context, t *testing.T, key string) distrlock.DBLock {
	t.Helper()
	var lock distrlock.DBLock
	if err := inTx(ctx, e.db, nil, func(tx *sql.Tx) (err error) {
		lock, err = e.m.NewLock(ctx, tx, key)
		return err
	}); err != nil {
		t.Fatalf("new lock %q: %v", key, err)
	}
	if lock.Key != key {
		t.Fatalf("lock.Key = %q, want %q", lock.Key, key)
	}
	return lock
}

// inTx runs fn in a transaction, committed when fn succeeds and rolled back otherwise: go-dbkit's DoInTx.
func inTx(ctx context.Context, db *sql.DB, opts *sql.TxOptions, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin tx: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit tx: %w", err)
	}
	return nil
}

// uuidString returns a random version 4 UUID: go-dbkit's keys and tokens in its tests, and its token
// column's type on PostgreSQL.
func uuidString(t *testing.T) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// checkCancelledAcquire checks the error of an acquire that waited for a row lock until its context ended:
// lib/pq returns the server's answer to its cancel request, the other drivers the context's error.
// allowDeadline also accepts the context's error from lib/pq, which go-dbkit does when the transaction's
// own context ended too.
func checkCancelledAcquire(t *testing.T, dialect distrlock.Dialect, err error, allowDeadline bool) {
	t.Helper()
	switch {
	case err == nil:
		t.Fatal("acquire succeeded, want it to wait until its context ended")
	case dialect != distrlock.DialectPostgres:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("acquire: %v, want context.DeadlineExceeded", err)
		}
	case strings.Contains(err.Error(), "canceling statement due to user request"):
	case allowDeadline && errors.Is(err, context.DeadlineExceeded):
	default:
		t.Fatalf("acquire: %v, want lib/pq's %q", err, "canceling statement due to user request")
	}
}

// rollbackAfterCancel rolls back a transaction whose statement or context was cancelled and checks the
// error with go-dbkit's expectations for each driver.
func rollbackAfterCancel(t *testing.T, dialect distrlock.Dialect, tx *sql.Tx) {
	t.Helper()
	err := tx.Rollback()
	var ok bool
	switch dialect {
	case distrlock.DialectMySQL, distrlock.DialectMariaDB:
		// go-sql-driver/mysql sometimes rolls back cleanly.
		ok = err == nil || errors.Is(err, sql.ErrTxDone) || errors.Is(err, mysql.ErrInvalidConn) ||
			errors.Is(err, context.DeadlineExceeded)
	case distrlock.DialectPostgres:
		ok = err != nil && (errors.Is(err, sql.ErrTxDone) || errors.Is(err, driver.ErrBadConn) ||
			strings.Contains(err.Error(), "canceling statement due to user request"))
	case distrlock.DialectPgx:
		// pgx may close the connection when the context ends.
		ok = err != nil && (errors.Is(err, sql.ErrTxDone) || errors.Is(err, context.DeadlineExceeded) ||
			strings.Contains(err.Error(), "conn closed"))
	}
	if !ok {
		t.Errorf("rollback after the cancellation: %v", err)
	}
}

// recordingLogger is a go-dbkit Logger that keeps what it is given.
type recordingLogger struct {
	mu    sync.Mutex
	lines []string
}

func (l *recordingLogger) Errorf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *recordingLogger) logged() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

type dbkitCase struct {
	name string
	run  func(t *testing.T, e dbkitEnv)
}

func dbkitCases() []dbkitCase {
	var cases []dbkitCase
	for _, level := range []sql.IsolationLevel{
		sql.LevelReadUncommitted, sql.LevelReadCommitted, sql.LevelRepeatableRead, sql.LevelSerializable,
	} {
		cases = append(cases, dbkitCase{
			name: "a second transaction waits for the held key until its deadline, " + level.String(),
			run:  func(t *testing.T, e dbkitEnv) { sameKeyTwoTransactions(t, e, level) },
		})
	}
	return append(cases,
		dbkitCase{"two transactions hold two keys at once", twoKeysTwoTransactions},
		dbkitCase{"a held lock refuses its own second acquire", acquireTwice},
		dbkitCase{"a released lock is acquired again", acquireReleaseAcquire},
		dbkitCase{"one of ten concurrent acquires wins", concurrentAcquires},
		dbkitCase{"ten holders take turns acquiring and releasing", concurrentTurns},
		dbkitCase{"release after the TTL finds the lock released", releaseAfterTTL},
		dbkitCase{"a static token takes its own lock again and no other", staticToken},
		dbkitCase{"an acquire waiting for the key fails when the shared context ends", sharedContextEnds},
		dbkitCase{"extends keep the lock until the TTL after the last one", extendUntilTTL},
		dbkitCase{"DoExclusively extends the lease and refuses others until fn returns", doExclusivelyExtends},
		dbkitCase{"DoExclusively with an extend interval longer than the TTL loses the lock", doExclusivelyIntervalTooLong},
	)
}

// sameKeyTwoTransactions: while one transaction holds the key's lock, another's acquire waits for the row
// and fails when its own context ends, leaving its Token empty.
func sameKeyTwoTransactions(t *testing.T, e dbkitEnv, level sql.IsolationLevel) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key := uuidString(t)
	lock1, lock2 := e.newLock(ctx, t, key), e.newLock(ctx, t, key)

	tx1, err := e.db.BeginTx(ctx, &sql.TxOptions{Isolation: level})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := tx1.Commit(); err != nil {
			t.Errorf("commit of the holder's transaction: %v", err)
		}
	}()
	tx2, err := e.db.BeginTx(ctx, &sql.TxOptions{Isolation: level})
	if err != nil {
		t.Fatal(err)
	}
	defer rollbackAfterCancel(t, e.tg.dialect, tx2)

	if err := lock1.Acquire(ctx, tx1, time.Second); err != nil {
		t.Fatalf("first acquire: %v", err)
	}
	if lock1.Token() == "" {
		t.Fatal("Token() is empty after a successful acquire")
	}

	ctx2, cancel2 := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel2()
	err = lock2.Acquire(ctx2, tx2, time.Second)
	if got := lock2.Token(); got != "" {
		t.Errorf("Token() = %q after the acquire failed, want \"\"", got)
	}
	checkCancelledAcquire(t, e.tg.dialect, err, false)
}

// twoKeysTwoTransactions: locks on different keys do not wait for each other.
func twoKeysTwoTransactions(t *testing.T, e dbkitEnv) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lock1, lock2 := e.newLock(ctx, t, uuidString(t)), e.newLock(ctx, t, uuidString(t))

	tx1, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := tx1.Commit(); err != nil {
			t.Error(err)
		}
	}()
	tx2, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := tx2.Commit(); err != nil {
			t.Error(err)
		}
	}()

	for i, step := range []struct {
		lock *distrlock.DBLock
		tx   *sql.Tx
	}{{&lock1, tx1}, {&lock2, tx2}} {
		if err := step.lock.Acquire(ctx, step.tx, time.Second); err != nil {
			t.Fatalf("acquire %d: %v", i+1, err)
		}
		if step.lock.Token() == "" {
			t.Fatalf("lock %d: Token() is empty after a successful acquire", i+1)
		}
	}
}

// acquireTwice: Acquire draws a new token each time, so a DBLock that holds its lock cannot acquire it again.
func acquireTwice(t *testing.T, e dbkitEnv) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lock := e.newLock(ctx, t, uuidString(t))

	if err := inTx(ctx, e.db, nil, func(tx *sql.Tx) error { return lock.Acquire(ctx, tx, time.Second) }); err != nil {
		t.Fatalf("first acquire: %v", err)
	}
	held := lock.Token()
	err := inTx(ctx, e.db, nil, func(tx *sql.Tx) error { return lock.Acquire(ctx, tx, time.Second) })
	if !errors.Is(err, distrlock.ErrLockAlreadyAcquired) {
		t.Fatalf("second acquire: %v, want ErrLockAlreadyAcquired", err)
	}
	// go-dbkit sets the token only when an acquire succeeds.
	if got := lock.Token(); got != held {
		t.Errorf("Token() = %q after the refused acquire, want the holding token %q", got, held)
	}
}

// acquireReleaseAcquire: a held lock refuses a second acquire until it is released.
func acquireReleaseAcquire(t *testing.T, e dbkitEnv) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lock := e.newLock(ctx, t, uuidString(t))
	acquire := func() error {
		return inTx(ctx, e.db, nil, func(tx *sql.Tx) error { return lock.Acquire(ctx, tx, time.Second) })
	}

	if err := acquire(); err != nil {
		t.Fatalf("first acquire: %v", err)
	}
	if err := acquire(); !errors.Is(err, distrlock.ErrLockAlreadyAcquired) {
		t.Fatalf("acquire while held: %v, want ErrLockAlreadyAcquired", err)
	}
	if err := inTx(ctx, e.db, nil, func(tx *sql.Tx) error { return lock.Release(ctx, tx) }); err != nil {
		t.Fatalf("release: %v", err)
	}
	if err := acquire(); err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
}

// concurrentAcquires: of ten locks on one key acquired at once, each in its own transaction, exactly one
// wins and the others are refused with ErrLockAlreadyAcquired and keep an empty Token.
func concurrentAcquires(t *testing.T, e dbkitEnv) {
	const n = 10
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key := uuidString(t)
	locks := make([]distrlock.DBLock, n)
	for i := range locks {
		locks[i] = e.newLock(ctx, t, key)
	}

	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range locks {
		wg.Go(func() {
			errs[i] = inTx(ctx, e.db, nil, func(tx *sql.Tx) error { return locks[i].Acquire(ctx, tx, time.Second) })
		})
	}
	wg.Wait()

	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
			if locks[i].Token() == "" {
				t.Errorf("lock %d won with an empty Token()", i)
			}
		case errors.Is(err, distrlock.ErrLockAlreadyAcquired):
			if got := locks[i].Token(); got != "" {
				t.Errorf("lock %d: Token() = %q after a refused acquire, want \"\"", i, got)
			}
		default:
			t.Errorf("lock %d: %v, want nil or ErrLockAlreadyAcquired", i, err)
		}
	}
	if won != 1 {
		t.Errorf("%d acquires won, want 1", won)
	}
}

// concurrentTurns: ten holders of one key retry while it is held and release it as soon as they have it;
// every one of them gets it once, and nothing but ErrLockAlreadyAcquired stands in their way.
func concurrentTurns(t *testing.T, e dbkitEnv) {
	const n = 10
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	key := uuidString(t)
	locks := make([]distrlock.DBLock, n)
	for i := range locks {
		locks[i] = e.newLock(ctx, t, key)
	}

	var turns atomic.Int32
	fatal := make(chan error, n)
	var wg sync.WaitGroup
	for i := range locks {
		lock := &locks[i]
		wg.Go(func() {
			for {
				err := inTx(ctx, e.db, nil, func(tx *sql.Tx) error { return lock.Acquire(ctx, tx, time.Second) })
				if err == nil {
					break
				}
				if !errors.Is(err, distrlock.ErrLockAlreadyAcquired) {
					fatal <- fmt.Errorf("acquire: %w", err)
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
			turns.Add(1)
			if err := inTx(ctx, e.db, nil, func(tx *sql.Tx) error { return lock.Release(ctx, tx) }); err != nil {
				fatal <- fmt.Errorf("release: %w", err)
			}
		})
	}
	wg.Wait()
	close(fatal)
	for err := range fatal {
		t.Error(err)
	}
	if got := turns.Load(); got != n {
		t.Errorf("%d holders got the lock, want %d", got, n)
	}
}

// releaseAfterTTL: once the lease has run out, Release reports ErrLockAlreadyReleased.
func releaseAfterTTL(t *testing.T, e dbkitEnv) {
	const ttl = 10 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var lock distrlock.DBLock
	if err := inTx(ctx, e.db, nil, func(tx *sql.Tx) (err error) {
		if lock, err = e.m.NewLock(ctx, tx, uuidString(t)); err != nil {
			return err
		}
		return lock.Acquire(ctx, tx, ttl)
	}); err != nil {
		t.Fatalf("acquire: %v", err)
	}

	time.Sleep(2 * ttl)

	err := inTx(ctx, e.db, nil, func(tx *sql.Tx) error { return lock.Release(ctx, tx) })
	if !errors.Is(err, distrlock.ErrLockAlreadyReleased) {
		t.Fatalf("release after the TTL: %v, want ErrLockAlreadyReleased", err)
	}
}

// staticToken: a lock held under a static token is taken again by a new DBLock with that token; after a
// release, a lock held under a random token refuses the static one.
func staticToken(t *testing.T, e dbkitEnv) {
	const ttl = 10 * time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key, token := uuidString(t), uuidString(t)
	var lock distrlock.DBLock
	newAndAcquire := func(acquire func(tx *sql.Tx) error) error {
		return inTx(ctx, e.db, nil, func(tx *sql.Tx) (err error) {
			if lock, err = e.m.NewLock(ctx, tx, key); err != nil {
				return err
			}
			return acquire(tx)
		})
	}
	withToken := func(tx *sql.Tx) error { return lock.AcquireWithStaticToken(ctx, tx, token, ttl) }

	if err := newAndAcquire(withToken); err != nil {
		t.Fatalf("acquire with the static token: %v", err)
	}
	if err := newAndAcquire(withToken); err != nil {
		t.Fatalf("acquire again with the same static token: %v", err)
	}
	if got := lock.Token(); got != token {
		t.Errorf("Token() = %q, want the static token %q", got, token)
	}
	if err := inTx(ctx, e.db, nil, func(tx *sql.Tx) error { return lock.Release(ctx, tx) }); err != nil {
		t.Fatalf("release: %v", err)
	}

	if err := newAndAcquire(func(tx *sql.Tx) error { return lock.Acquire(ctx, tx, ttl) }); err != nil {
		t.Fatalf("acquire with a random token: %v", err)
	}
	random := lock.Token()
	err := inTx(ctx, e.db, nil, withToken)
	if !errors.Is(err, distrlock.ErrLockAlreadyAcquired) {
		t.Fatalf("static token while a random one holds the lock: %v, want ErrLockAlreadyAcquired", err)
	}
	if got := lock.Token(); got != random {
		t.Errorf("Token() = %q after the refused acquire, want the holding token %q", got, random)
	}
}

// sharedContextEnds: both transactions and both acquires share one context, which ends while the second
// acquire waits for the row: the acquire fails with the context's end and its Token stays empty.
func sharedContextEnds(t *testing.T, e dbkitEnv) {
	const ttl = time.Second
	ctx, cancel := context.WithTimeout(context.Background(), ttl) // as long as the lease, as in go-dbkit
	defer cancel()
	key := uuidString(t)
	lock1, lock2 := e.newLock(ctx, t, key), e.newLock(ctx, t, key)

	tx1, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rollbackAfterCancel(t, e.tg.dialect, tx1)
	tx2, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rollbackAfterCancel(t, e.tg.dialect, tx2)

	if err := lock1.Acquire(ctx, tx1, ttl); err != nil {
		t.Fatalf("first acquire: %v", err)
	}
	if lock1.Token() == "" {
		t.Fatal("Token() is empty after a successful acquire")
	}
	err = lock2.Acquire(ctx, tx2, ttl)
	checkCancelledAcquire(t, e.tg.dialect, err, true)
	if got := lock2.Token(); got != "" {
		t.Errorf("Token() = %q after the acquire failed, want \"\"", got)
	}
}

// extendUntilTTL: each Extend renews the lease for the TTL; once a TTL passes without one, Extend reports
// ErrLockAlreadyReleased.
func extendUntilTTL(t *testing.T, e dbkitEnv) {
	const ttl = time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var lock distrlock.DBLock
	if err := inTx(ctx, e.db, nil, func(tx *sql.Tx) (err error) {
		if lock, err = e.m.NewLock(ctx, tx, uuidString(t)); err != nil {
			return err
		}
		return lock.Acquire(ctx, tx, ttl)
	}); err != nil {
		t.Fatalf("acquire: %v", err)
	}
	extend := func() error {
		return inTx(ctx, e.db, nil, func(tx *sql.Tx) error { return lock.Extend(ctx, tx) })
	}

	for i := range 3 {
		time.Sleep(ttl / 2)
		if err := extend(); err != nil {
			t.Fatalf("extend %d: %v", i+1, err)
		}
	}
	time.Sleep(2 * ttl)
	if err := extend(); !errors.Is(err, distrlock.ErrLockAlreadyReleased) {
		t.Fatalf("extend after the TTL: %v, want ErrLockAlreadyReleased", err)
	}
}

// doExclusivelyExtends: while fn runs, its lease is extended well past the TTL, so DoExclusively on another
// lock of the key is refused; after fn returns the key is free again. Timings are go-dbkit's scaled by half
// (TTL 1.5 s instead of 3 s, with the interval at a third of it), so the refusals span twice the TTL.
func doExclusivelyExtends(t *testing.T, e dbkitEnv) {
	const (
		ttl            = 1500 * time.Millisecond
		interval       = ttl / 3
		releaseTimeout = time.Second
	)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	key := uuidString(t)
	lock1, lock2 := e.newLock(ctx, t, key), e.newLock(ctx, t, key)
	log1, log2 := &recordingLogger{}, &recordingLogger{}
	options := func(l distrlock.Logger) []distrlock.DoOption {
		return []distrlock.DoOption{
			distrlock.WithLockTTL(ttl),
			distrlock.WithPeriodicExtendInterval(interval),
			distrlock.WithReleaseTimeout(releaseTimeout),
			distrlock.WithLogger(l),
		}
	}

	started, finish := make(chan struct{}), make(chan struct{})
	result := make(chan error, 1)
	go func() {
		result <- lock1.DoExclusively(ctx, e.db, func(context.Context) error {
			close(started)
			<-finish
			return nil
		}, options(log1)...)
	}()
	select {
	case <-started:
	case err := <-result:
		t.Fatalf("DoExclusively returned before running fn: %v", err)
	}

	for i := range 7 {
		err := lock2.DoExclusively(ctx, e.db, func(context.Context) error {
			t.Error("fn ran while another DoExclusively held the lock")
			return nil
		}, options(log2)...)
		if !errors.Is(err, distrlock.ErrLockAlreadyAcquired) {
			t.Fatalf("attempt %d while held: %v, want ErrLockAlreadyAcquired", i+1, err)
		}
		if got := lock2.Token(); got != "" {
			t.Fatalf("attempt %d: Token() = %q after the refused acquire, want \"\"", i+1, got)
		}
		time.Sleep(interval)
	}

	close(finish)
	if err := <-result; err != nil {
		t.Fatalf("DoExclusively: %v", err)
	}
	if lines := log1.logged(); len(lines) != 0 {
		t.Errorf("the holder logged %q, want nothing: every extend and the release succeeded", lines)
	}
	time.Sleep(2 * ttl)

	ran := false
	if err := lock2.DoExclusively(ctx, e.db, func(context.Context) error {
		ran = true
		return nil
	}, options(log2)...); err != nil {
		t.Fatalf("DoExclusively after the holder finished: %v", err)
	}
	if !ran {
		t.Error("fn did not run")
	}
}

// doExclusivelyIntervalTooLong: an extend interval longer than the TTL is accepted and fn runs, but the
// lease ends before the first extend: fn's context is cancelled, another holder takes the key, and
// DoExclusively returns fn's error, context.Canceled's text as in go-dbkit, which also matches ErrLockLost.
func doExclusivelyIntervalTooLong(t *testing.T, e dbkitEnv) {
	const (
		ttl            = 3 * time.Second
		interval       = 10 * time.Second
		releaseTimeout = time.Second
	)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	key := uuidString(t)
	lock1, lock2 := e.newLock(ctx, t, key), e.newLock(ctx, t, key)
	log1 := &recordingLogger{}
	options := func(l distrlock.Logger) []distrlock.DoOption {
		return []distrlock.DoOption{
			distrlock.WithLockTTL(ttl),
			distrlock.WithPeriodicExtendInterval(interval),
			distrlock.WithReleaseTimeout(releaseTimeout),
			distrlock.WithLogger(l),
		}
	}

	started := make(chan struct{})
	result := make(chan error, 1)
	go func() {
		result <- lock1.DoExclusively(ctx, e.db, func(ctx context.Context) error {
			close(started)
			<-ctx.Done()
			return ctx.Err()
		}, options(log1)...)
	}()
	select {
	case <-started:
	case err := <-result:
		t.Fatalf("DoExclusively returned before running fn: %v", err)
	}

	time.Sleep(2 * ttl)
	if err := lock2.DoExclusively(ctx, e.db, func(context.Context) error { return nil },
		options(&recordingLogger{})...); err != nil {
		t.Fatalf("DoExclusively once the first lease ran out: %v", err)
	}

	err := <-result
	if err == nil || err.Error() != context.Canceled.Error() {
		t.Fatalf("DoExclusively whose lease ran out: %v, want the text %q", err, context.Canceled.Error())
	}
	if !errors.Is(err, distrlock.ErrLockLost) {
		t.Errorf("DoExclusively whose lease ran out: %v does not match ErrLockLost", err)
	}
	if len(log1.logged()) == 0 {
		t.Error("nothing was logged about the lease that could not be kept")
	}
}
