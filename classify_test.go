package distrlock

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// unitClassified are driver errors and what classify must read from them.
var unitClassified = []struct {
	name string
	err  error
	want failure
}{
	{"postgres serialization failure", &pgconn.PgError{Code: "40001"}, failTransient},
	{"postgres deadlock", &pgconn.PgError{Code: "40P01"}, failTransient},
	{"postgres lock timeout", &pgconn.PgError{Code: "55P03"}, failTransient},
	{"postgres read-only transaction", &pgconn.PgError{Code: "25006"}, failReadOnly},
	{"postgres unique violation", &pgconn.PgError{Code: "23505"}, failUnknown},
	{"mysql deadlock", &mysql.MySQLError{Number: 1213}, failTransient},
	{"mysql lock wait timeout", &mysql.MySQLError{Number: 1205}, failTransient},
	{"galera node not ready", &mysql.MySQLError{Number: 1047, Message: "WSREP has not yet prepared node for application use"}, failTransient},
	{"mysql read-only transaction", &mysql.MySQLError{Number: 1792}, failReadOnly},
	{"mysql innodb_read_only", &mysql.MySQLError{Number: 1836}, failReadOnly},
	{"mysql read_only", &mysql.MySQLError{Number: 1290,
		Message: "The MariaDB server is running with the --read-only option so it cannot execute this statement"}, failReadOnly},
	{"mysql super_read_only", &mysql.MySQLError{Number: 1290,
		Message: "The MySQL server is running with the --super-read-only option so it cannot execute this statement"}, failReadOnly},
	{"mysql other option", &mysql.MySQLError{Number: 1290,
		Message: "The MySQL server is running with the --skip-grant-tables option so it cannot execute this statement"}, failUnknown},
	{"mysql duplicate key", &mysql.MySQLError{Number: 1062}, failUnknown},
	{"mysql session clock moved", &mysql.MySQLError{Number: 1690, Message: "BIGINT value is out of range in " +
		"'9223372036854775807 + (timestampdiff(MICROSECOND,current_timestamp(6),sysdate(6)) not between 0 and 600000000 and 'session_clock_moved' <> '')'"}, failSessionClock},
	{"mysql other overflow", &mysql.MySQLError{Number: 1690, Message: "BIGINT value is out of range in '`fence` + 1'"}, failUnknown},
	{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, failTransient},
	{"connection reset while reading", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, failUnknown},
	{"driver.ErrBadConn", driver.ErrBadConn, failTransient},
	{"wrapped twice", fmt.Errorf("a: %w", fmt.Errorf("b: %w", &pgconn.PgError{Code: "25006"})), failReadOnly},
	{"joined", errors.Join(context.Canceled, &mysql.MySQLError{Number: 1213}), failTransient},
	{"postgres undefined column", &pgconn.PgError{Code: "42703"}, failSchema},
	{"postgres undefined table", &pgconn.PgError{Code: "42P01"}, failSchema},
	{"pgx statement cache behind PgBouncer, duplicate", &pgconn.PgError{Code: "42P05",
		Message: `prepared statement "stmtcache_3d1e0c2a" already exists`}, failPreparedStatement},
	{"pgx statement cache behind PgBouncer, missing", &pgconn.PgError{Code: "26000",
		Message: `prepared statement "stmtcache_3d1e0c2a" does not exist`}, failPreparedStatement},
	{"mysql unknown column", &mysql.MySQLError{Number: 1054, Message: "Unknown column 'c.freed_at' in 'where clause'"}, failSchema},
	{"mysql no such table", &mysql.MySQLError{Number: 1146}, failSchema},
	{"context deadline", context.DeadlineExceeded, failUnknown},
	{"plain", errors.New("connection lost"), failUnknown},
}

func TestClassify(t *testing.T) {
	for _, c := range unitClassified {
		if got := classify(c.err); got != c.want {
			t.Errorf("%s: classify(%v) = %d, want %d", c.name, c.err, got, c.want)
		}
	}
}

// TestAcquireClassifiedError: an acquire whose error proves that nothing changed leaves the DBLock as it
// was (no token kept for a release, nothing reported as contention but a deadlock or certification
// conflict that persists through the retries); a read-only refusal matches ErrReadOnly and the driver's
// error; an error that proves nothing keeps the attempt's token.
func TestAcquireClassifiedError(t *testing.T) {
	for _, c := range unitClassified {
		if c.err == driver.ErrBadConn {
			continue // database/sql retries it on another connection, which the mock does not have
		}
		for _, d := range unitDialects {
			t.Run(c.name+"/"+string(d), func(t *testing.T) {
				f := newUnitFixture(t, d, "")
				f.hold()
				f.expectAcquire(&unitToken{}, time.Minute).fails(c.err)
				if isDeadlock(c.err) {
					// A deadlock outside a transaction is sent again, a bounded number of times.
					for range deadlockRetries {
						f.expectAcquire(&unitToken{}, time.Minute).fails(c.err)
					}
				}
				err := f.lock.Acquire(context.Background(), f.db, time.Minute)
				if errors.Is(err, ErrLockAlreadyAcquired) != isDeadlock(c.err) || !errors.Is(err, c.err) {
					t.Fatalf("Acquire = %v; want the driver's error %v, and contention only for a deadlock", err, c.err)
				}
				if errors.Is(err, ErrReadOnly) != (c.want == failReadOnly) {
					t.Fatalf("Acquire = %v: matches ErrReadOnly %v, want %v", err, errors.Is(err, ErrReadOnly), c.want == failReadOnly)
				}
				if errors.Is(err, ErrSchemaMismatch) != (c.want == failSchema) {
					t.Fatalf("Acquire = %v: matches ErrSchemaMismatch %v, want %v", err, errors.Is(err, ErrSchemaMismatch), c.want == failSchema)
				}
				if errors.Is(err, ErrSessionClock) != (c.want == failSessionClock) {
					t.Fatalf("Acquire = %v: matches ErrSessionClock %v, want %v", err, errors.Is(err, ErrSessionClock), c.want == failSessionClock)
				}
				if errors.Is(err, ErrPreparedStatementPooling) != (c.want == failPreparedStatement) {
					t.Fatalf("Acquire = %v: matches ErrPreparedStatementPooling %v, want %v", err,
						errors.Is(err, ErrPreparedStatementPooling), c.want == failPreparedStatement)
				}
				if kept := f.lock.pending != ""; kept != (c.want == failUnknown) {
					t.Fatalf("after %v: pending token kept %v, want %v", err, kept, c.want == failUnknown)
				}
				if c.want != failUnknown {
					f.wantState(unitHeldToken, unitHeldFence, unitHeldTTL)
				}
			})
		}
	}
}

// TestAcquireWaitRetriesTransient: AcquireWait tries again after a lock wait timeout, within its wait, and
// takes the lock; a read-only refusal ends the wait at once with ErrReadOnly. (A deadlock is contention:
// TestAcquireWaitConflictIsContention.)
func TestAcquireWaitRetriesTransient(t *testing.T) {
	for _, d := range unitDialects {
		t.Run(string(d), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newUnitFixture(t, d, "")
				// Nothing changed, so nothing is kept: each attempt has a token of its own.
				f.expectAcquire(&unitToken{}, time.Minute).fails(&pgconn.PgError{Code: "55P03"})
				f.expectAcquire(&unitToken{}, time.Minute).fails(&mysql.MySQLError{Number: 1205})
				tok := &unitToken{}
				f.expectAcquire(tok, time.Minute).granted(4)
				if err := f.lock.AcquireWait(context.Background(), f.db, time.Minute, time.Second); err != nil {
					t.Fatal(err)
				}
				f.wantState(tok.got, 4, time.Minute)
			})
		})
		t.Run(string(d)+"/read-only", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newUnitFixture(t, d, "")
				f.expectAcquire(&unitToken{}, time.Minute).fails(&pgconn.PgError{Code: "25006"})
				start := time.Now()
				err := f.lock.AcquireWait(context.Background(), f.db, time.Minute, time.Hour)
				if !errors.Is(err, ErrReadOnly) || errors.Is(err, ErrLockAlreadyAcquired) || time.Since(start) != 0 {
					t.Fatalf("AcquireWait = %v after %v; want ErrReadOnly at once", err, time.Since(start))
				}
			})
		})
		t.Run(string(d)+"/wait ends on transient errors", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newUnitFixture(t, d, "")
				timeout := &mysql.MySQLError{Number: 1205, Message: "Lock wait timeout exceeded"}
				// Attempts of 50 ms and pauses of 20 to 40 ms: the second attempt ends after the 100 ms wait.
				f.lock.manager.backoffMin, f.lock.manager.backoffMax = 40*time.Millisecond, 40*time.Millisecond
				for range 2 {
					a := f.expectAcquire(&unitToken{}, time.Minute)
					a.fails(timeout)
					a.delay(50 * time.Millisecond)
				}
				err := f.lock.AcquireWait(context.Background(), f.db, time.Minute, 100*time.Millisecond)
				if !errors.Is(err, ErrWaitTimeout) || !errors.Is(err, timeout) || errors.Is(err, ErrLockAlreadyAcquired) {
					t.Fatalf("AcquireWait = %v; want the wait's timeout and the last lock wait timeout, not contention", err)
				}
			})
		})
	}
}

// TestPreparedStatementErrorSaysWhatToSet: the error of an acquire that PgBouncer's transaction pooling
// refused names the settings that fix it, and the driver's own message stays in it.
func TestPreparedStatementErrorSaysWhatToSet(t *testing.T) {
	f := newUnitFixture(t, DialectPgx, "")
	pgErr := &pgconn.PgError{Severity: "ERROR", Code: "42P05", Message: `prepared statement "stmtcache_3d1e0c2a" already exists`}
	f.expectAcquire(&unitToken{}, time.Minute).fails(pgErr)
	err := f.lock.Acquire(context.Background(), f.db, time.Minute)
	want := `distrlock: acquire "job": ` + ErrPreparedStatementPooling.Error() + `: ERROR: prepared statement ` +
		`"stmtcache_3d1e0c2a" already exists (SQLSTATE 42P05)`
	if err == nil || err.Error() != want {
		t.Fatalf("Acquire = %v\nwant        %s", err, want)
	}
	for _, setting := range []string{"default_query_exec_mode=exec", "cache_describe", "simple_protocol", "max_prepared_statements"} {
		if !strings.Contains(err.Error(), setting) {
			t.Errorf("the error does not name %s: %v", setting, err)
		}
	}
}

// TestNoReleaseAfterUnchangedAcquire: when DoExclusively's or Hold's acquire fails with an error that proves
// nothing changed (a standby's read-only refusal, PgBouncer's lost prepared statement, a deadlock, a refused
// connection), they return it without sending a release (sqlmock refuses any statement not expected, and
// the logger would record the failed release); after an error that proves nothing, they release the
// attempt's token.
func TestNoReleaseAfterUnchangedAcquire(t *testing.T) {
	calls := map[string]func(f *unitFixture, o ...DoOption) error{
		"DoExclusively": func(f *unitFixture, o ...DoOption) error {
			return f.lock.DoExclusively(context.Background(), f.db, func(context.Context) error {
				t.Error("fn ran")
				return nil
			}, o...)
		},
		"Hold": func(f *unitFixture, o ...DoOption) error {
			lease, err := f.lock.Hold(context.Background(), f.db, o...)
			if lease != nil {
				t.Error("Hold returned a lease")
			}
			return err
		},
	}
	released := 0
	for name, call := range calls {
		for _, c := range unitClassified {
			if c.err == driver.ErrBadConn || isDeadlock(c.err) {
				continue // retried by database/sql or by retryConflicts: TestAcquireClassifiedError covers them
			}
			t.Run(name+"/"+c.name, func(t *testing.T) {
				f := newUnitFixture(t, DialectPgx, "")
				tok := &unitToken{}
				f.expectAcquire(tok, time.Minute).fails(c.err)
				if c.want == failUnknown {
					f.mock.ExpectExec(unitQuery(t, DialectPgx, "release", "")).
						WithArgs(unitReleaseArgs(DialectPgx, unitKey, tok)...).WillReturnResult(sqlmock.NewResult(0, 1))
					released++
				}
				logger := &unitPlainLogger{}
				err := call(f, WithLockTTL(time.Minute), WithLogger(logger))
				if !errors.Is(err, c.err) || errors.Is(err, ErrLockAlreadyAcquired) {
					t.Fatalf("%s = %v; want the driver's error %v and not contention", name, err, c.err)
				}
				if len(logger.messages) != 0 {
					t.Fatalf("logged %q", logger.messages)
				}
				if err := f.mock.ExpectationsWereMet(); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
	if released == 0 {
		t.Fatal("no case made an unknown outcome: the release path was never exercised")
	}
}
