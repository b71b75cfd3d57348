package distrlock

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/jackc/pgx/v5/pgconn"
)

// countingLogger counts the errors DoExclusively logs (one per failed extend or release).
type countingLogger struct{ n atomic.Int64 }

func (l *countingLogger) Errorf(string, ...any) { l.n.Add(1) }

// heartbeatFixture is a PostgreSQL-dialect lock on a sqlmock database created inside the synctest bubble,
// so that database/sql's goroutines and sqlmock's delays run on the bubble's fake clock.
type heartbeatFixture struct {
	mock  sqlmock.Sqlmock
	lock  DBLock
	db    interface{ Close() error }
	sqlDB *sql.DB
	run   func(ctx context.Context, fn func(context.Context) error, opts ...DoOption) error
}

func newHeartbeatFixture(t *testing.T) *heartbeatFixture {
	t.Helper()
	db, mock, err := sqlmock.New(sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewDBManager(DialectPgx)
	if err != nil {
		t.Fatal(err)
	}
	lock, err := m.NewLock(context.Background(), db, "job")
	if err != nil {
		t.Fatal(err)
	}
	f := &heartbeatFixture{mock: mock, lock: lock, db: db, sqlDB: db}
	f.run = func(ctx context.Context, fn func(context.Context) error, opts ...DoOption) error {
		return f.lock.DoExclusively(ctx, db, fn, opts...)
	}
	t.Cleanup(func() {
		if err := mock.ExpectationsWereMet(); err != nil {
			t.Error(err)
		}
	})
	return f
}

func (f *heartbeatFixture) expectAcquire() {
	q := f.lock.manager.q
	f.mock.ExpectQuery(q.acquire).WillReturnRows(sqlmock.NewRows([]string{"fence"}).AddRow(int64(7)))
}

func (f *heartbeatFixture) expectExtend(ttl time.Duration) *sqlmock.ExpectedExec {
	return f.mock.ExpectExec(f.lock.manager.q.extend).WithArgs(ttl.Microseconds(), "job", sqlmock.AnyArg())
}

func (f *heartbeatFixture) expectRelease() {
	f.mock.ExpectExec(f.lock.manager.q.release).WithArgs(unitReleaseArgs(f.lock.manager.Dialect(), "job", sqlmock.AnyArg())...).
		WillReturnResult(sqlmock.NewResult(0, 1))
}

// TestHeartbeatExtendsOnSchedule: with TTL 10 s and an interval of 2 s, work lasting 9 s is covered by exactly
// four extends (at 2, 4, 6 and 8 s), and its context is never cancelled.
func TestHeartbeatExtendsOnSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newHeartbeatFixture(t)
		defer f.db.Close()
		const ttl = 10 * time.Second
		f.expectAcquire()
		for range 4 {
			f.expectExtend(ttl).WillReturnResult(sqlmock.NewResult(0, 1))
		}
		f.expectRelease()

		// An extend beyond the four expected ones gets an error from sqlmock, which is logged.
		logger := &countingLogger{}
		var workErr error
		err := f.run(context.Background(), func(ctx context.Context) error {
			time.Sleep(9 * time.Second)
			workErr = ctx.Err()
			return nil
		}, WithLockTTL(ttl), WithPeriodicExtendInterval(2*time.Second), WithLogger(logger))
		if err != nil {
			t.Fatalf("DoExclusively: %v", err)
		}
		if workErr != nil {
			t.Fatalf("work context ended although every extend succeeded: %v", workErr)
		}
		if n := logger.n.Load(); n != 0 {
			t.Fatalf("%d errors logged: more extends were sent than the four expected", n)
		}
	})
}

// lossCase describes an extend failure mode and when the work must learn of it.
type lossCase struct {
	name string
	// setUp registers the extends' failures; it returns how many extend attempts must be logged.
	setUp func(f *heartbeatFixture, ttl time.Duration) (loggedExtends int64)
	// cancelAfter is when, after the acquire, the work's context must end.
	cancelAfter time.Duration
	// also is a second error the lost-lease cause must match, if any.
	also error
}

// TestHeartbeatCancelsWorkBeforeLeaseEnds: whatever makes extends fail, the work's context ends, with
// ErrLockLost as its cause, no later than TTL less the safety margin after the last successful start
// (here the acquire), the release is still attempted, and DoExclusively returns ErrLockLost.
func TestHeartbeatCancelsWorkBeforeLeaseEnds(t *testing.T) {
	const (
		ttl      = 10 * time.Second
		margin   = 1200 * time.Millisecond // deadline at 8.8 s
		interval = 3 * time.Second         // extends at 3 s, then retries every 750 ms
	)
	netErr := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	cases := []lossCase{
		{
			name: "extends hang",
			setUp: func(f *heartbeatFixture, ttl time.Duration) int64 {
				// Each attempt gets half the time left: the extend at 3 s hangs until 5.9 s and is logged, the
				// retry at 6.65 s until 7.725 s (logged), and the retry at 8.475 s, with less than a retry
				// pause left, until the lease deadline (8.8 s), where the lease counts as lost.
				for range 3 {
					f.expectExtend(ttl).WillDelayFor(time.Hour).WillReturnResult(sqlmock.NewResult(0, 1))
				}
				return 2
			},
			cancelAfter: ttl - margin,
		},
		{
			name: "extends time out",
			setUp: func(f *heartbeatFixture, ttl time.Duration) int64 {
				// A driver's own timeout, returned at once: attempts at 3, 3.75, …, 8.25 s as for network errors.
				for range 8 {
					f.expectExtend(ttl).WillReturnError(fmt.Errorf("read tcp: i/o timeout: %w", os.ErrDeadlineExceeded))
				}
				return 8
			},
			cancelAfter: ttl - margin,
		},
		{
			name: "network errors",
			setUp: func(f *heartbeatFixture, ttl time.Duration) int64 {
				// Attempts at 3, 3.75, 4.5, 5.25, 6, 6.75, 7.5 and 8.25 s; the next (9 s) is past the deadline.
				for range 8 {
					f.expectExtend(ttl).WillReturnError(netErr)
				}
				return 8
			},
			cancelAfter: ttl - margin,
		},
		{
			name: "slow extend succeeds, then extends fail",
			setUp: func(f *heartbeatFixture, ttl time.Duration) int64 {
				// The extend started at 3 s succeeds at 4.5 s: the lease is trusted until 3 + 8.8 = 11.8 s, and
				// the next extend is due at 3 + 3 = 6 s, both counted from its start, not its end. Then
				// attempts at 6, 6.75, 7.5, 8.25, 9, 9.75, 10.5 and 11.25 s fail.
				f.expectExtend(ttl).WillDelayFor(1500 * time.Millisecond).WillReturnResult(sqlmock.NewResult(0, 1))
				for range 8 {
					f.expectExtend(ttl).WillReturnError(netErr)
				}
				return 8
			},
			cancelAfter: interval + ttl - margin,
		},
		{
			name: "database says the lock is gone",
			setUp: func(f *heartbeatFixture, ttl time.Duration) int64 {
				f.expectExtend(ttl).WillReturnResult(sqlmock.NewResult(0, 0))
				return 0
			},
			cancelAfter: interval, // at once, not at the deadline
			also:        ErrLockAlreadyReleased,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newHeartbeatFixture(t)
				defer f.db.Close()
				f.expectAcquire()
				wantLogged := tc.setUp(f, ttl)
				f.expectRelease()
				logger := &countingLogger{}

				start := time.Now()
				var cancelledAfter time.Duration
				var cause error
				err := f.run(context.Background(), func(ctx context.Context) error {
					<-ctx.Done()
					cancelledAfter = time.Since(start)
					cause = context.Cause(ctx)
					return ctx.Err()
				}, WithLockTTL(ttl), WithSafetyMargin(margin), WithPeriodicExtendInterval(interval), WithLogger(logger))

				if cancelledAfter != tc.cancelAfter {
					t.Errorf("work cancelled %v after the acquire, want %v", cancelledAfter, tc.cancelAfter)
				}
				if !errors.Is(cause, ErrLockLost) || (tc.also != nil && !errors.Is(cause, tc.also)) {
					t.Errorf("cause = %v, want ErrLockLost (and %v)", cause, tc.also)
				}
				if !errors.Is(err, ErrLockLost) || !errors.Is(err, context.Canceled) {
					t.Errorf("DoExclusively = %v, want ErrLockLost joined with the work's context.Canceled", err)
				}
				if got := logger.n.Load(); got != wantLogged {
					t.Errorf("logged %d failed extends, want %d", got, wantLogged)
				}
				if took := time.Since(start); took != tc.cancelAfter {
					t.Errorf("DoExclusively returned %v after the acquire, want %v", took, tc.cancelAfter)
				}
			})
		})
	}
}

// TestHeartbeatHungExtendDoesNotDelayReturn: when the work finishes while an extend hangs, DoExclusively
// cancels that extend and returns at once, and releases the lock.
func TestHeartbeatHungExtendDoesNotDelayReturn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newHeartbeatFixture(t)
		defer f.db.Close()
		const ttl = 10 * time.Second
		f.expectAcquire()
		f.expectExtend(ttl).WillDelayFor(time.Hour).WillReturnResult(sqlmock.NewResult(0, 1))
		f.expectRelease()

		start := time.Now()
		err := f.run(context.Background(), func(ctx context.Context) error {
			time.Sleep(2500 * time.Millisecond) // the extend started at 2 s and hangs
			return nil
		}, WithLockTTL(ttl), WithPeriodicExtendInterval(2*time.Second))
		if err != nil {
			t.Fatalf("DoExclusively: %v", err)
		}
		if took := time.Since(start); took != 2500*time.Millisecond {
			t.Fatalf("DoExclusively returned after %v, want 2.5s", took)
		}
	})
}

// TestDoExclusivelyReturnsWorkError: fn's error comes back unchanged and the lock is released.
func TestDoExclusivelyReturnsWorkError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newHeartbeatFixture(t)
		defer f.db.Close()
		f.expectAcquire()
		f.expectRelease()
		boom := fmt.Errorf("boom")
		if err := f.run(context.Background(), func(context.Context) error { return boom }); err != boom {
			t.Fatalf("DoExclusively = %v, want fn's error itself", err)
		}
	})
}

// TestNoGoroutineOutlives: DoExclusively, and a Lease once released, leave no goroutine behind, even when an
// extend hangs at the moment they stop. Counted inside a synctest bubble, where nothing else starts
// goroutines.
func TestNoGoroutineOutlives(t *testing.T) {
	const ttl = 10 * time.Second
	cases := []struct {
		name string
		hold func(f *heartbeatFixture, logger Logger) error
	}{
		{"DoExclusively", func(f *heartbeatFixture, logger Logger) error {
			return f.run(context.Background(), func(ctx context.Context) error {
				time.Sleep(2500 * time.Millisecond) // the extend started at 2 s hangs
				return nil
			}, WithLockTTL(ttl), WithPeriodicExtendInterval(2*time.Second), WithLogger(logger))
		}},
		{"Lease", func(f *heartbeatFixture, logger Logger) error {
			lease, err := f.lock.Hold(context.Background(), f.sqlDB, WithLockTTL(ttl), WithPeriodicExtendInterval(2*time.Second),
				WithLogger(logger))
			if err != nil {
				return err
			}
			time.Sleep(2500 * time.Millisecond)
			if err := lease.Release(context.Background()); err != nil {
				return err
			}
			if lease.Context().Err() == nil {
				return errors.New("lease context alive after Release")
			}
			return nil
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newHeartbeatFixture(t)
				defer f.db.Close()
				f.expectAcquire()
				f.expectExtend(ttl).WillDelayFor(time.Hour).WillReturnResult(sqlmock.NewResult(0, 1))
				f.expectRelease()

				synctest.Wait()
				before := runtime.NumGoroutine()
				logger := &countingLogger{}
				if err := tc.hold(f, logger); err != nil {
					t.Fatal(err)
				}
				synctest.Wait() // let goroutines that are exiting finish
				if after := runtime.NumGoroutine(); after > before {
					t.Errorf("%d goroutines before, %d after: %d outlived the call", before, after, after-before)
				}
				// A leaked heartbeat would extend again, get an error from sqlmock (nothing more is
				// expected) and log it: an hour later nothing has been logged.
				time.Sleep(time.Hour)
				if n := logger.n.Load(); n != 0 {
					t.Errorf("%d errors logged after the call returned", n)
				}
			})
		})
	}
}

// TestHeartbeatRetriesHungExtendWithDefaults: with the default options (TTL 1 m, interval 30 s, margin
// 6 s), an extend that hangs on its connection is given up at 42 s, half the time left, and the retry
// at 43 s succeeds: the work is never cancelled.
func TestHeartbeatRetriesHungExtendWithDefaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newHeartbeatFixture(t)
		defer f.db.Close()
		f.expectAcquire()
		f.expectExtend(DefaultLockTTL).WillDelayFor(time.Hour).WillReturnResult(sqlmock.NewResult(0, 1))
		f.expectExtend(DefaultLockTTL).WillReturnResult(sqlmock.NewResult(0, 1)) // at 43 s
		f.expectExtend(DefaultLockTTL).WillReturnResult(sqlmock.NewResult(0, 1)) // at 73 s
		f.expectRelease()
		logger := &countingLogger{}

		var workErr error
		err := f.run(context.Background(), func(ctx context.Context) error {
			time.Sleep(90 * time.Second)
			workErr = ctx.Err()
			return nil
		}, WithLogger(logger))
		if err != nil || workErr != nil {
			t.Fatalf("DoExclusively = %v, work context %v; want both nil", err, workErr)
		}
		if n := logger.n.Load(); n != 1 {
			t.Fatalf("%d failed extends logged, want the one that hung", n)
		}
	})
}

// TestDoExclusivelyPanic: a panic in fn still stops the heartbeat and releases the lock before it
// reaches the caller; synctest would report a heartbeat left running.
func TestDoExclusivelyPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newHeartbeatFixture(t)
		defer f.db.Close()
		f.expectAcquire()
		f.expectExtend(10 * time.Second).WillReturnResult(sqlmock.NewResult(0, 1))
		f.expectRelease()
		logger := &countingLogger{}

		recovered := func() (r any) {
			defer func() { r = recover() }()
			_ = f.run(context.Background(), func(ctx context.Context) error {
				time.Sleep(3 * time.Second) // one extend, at 2 s
				panic("boom")
			}, WithLockTTL(10*time.Second), WithPeriodicExtendInterval(2*time.Second), WithLogger(logger))
			return nil
		}()
		if recovered != "boom" {
			t.Fatalf("recovered %v, want fn's panic", recovered)
		}
		time.Sleep(time.Hour) // a heartbeat left running would extend, fail against sqlmock and log
		if n := logger.n.Load(); n != 0 {
			t.Fatalf("%d errors logged after the panic", n)
		}
	})
}

// TestHeartbeatAfterSlowAcquire: an acquire that takes 25 s (blocked behind another session's transaction)
// with the default options is followed by an extend 30 s after it started, not after it returned, so the
// lease, counted from the acquire's start, is never taken for lost.
func TestHeartbeatAfterSlowAcquire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newHeartbeatFixture(t)
		defer f.db.Close()
		f.mock.ExpectQuery(f.lock.manager.q.acquire).WillDelayFor(25 * time.Second).
			WillReturnRows(sqlmock.NewRows([]string{"fence"}).AddRow(int64(7)))
		f.expectExtend(DefaultLockTTL).WillReturnResult(sqlmock.NewResult(0, 1)) // at 30 s
		f.expectExtend(DefaultLockTTL).WillReturnResult(sqlmock.NewResult(0, 1)) // at 60 s
		f.expectRelease()
		start := time.Now()
		var workErr error
		err := f.run(context.Background(), func(ctx context.Context) error {
			time.Sleep(70*time.Second - time.Since(start))
			workErr = context.Cause(ctx)
			return nil
		})
		if err != nil || workErr != nil {
			t.Fatalf("DoExclusively = %v, work context %v; want both nil", err, workErr)
		}
	})
}

// TestHeartbeatCancelBeforeRelease: DoExclusively and Lease.Release end the work's context before the
// release statement frees the lock.
func TestHeartbeatCancelBeforeRelease(t *testing.T) {
	for _, name := range []string{"DoExclusively", "Lease"} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newHeartbeatFixture(t)
				defer f.db.Close()
				f.expectAcquire()
				f.mock.ExpectExec(f.lock.manager.q.release).WithArgs(unitReleaseArgs(f.lock.manager.Dialect(), "job", sqlmock.AnyArg())...).
					WillDelayFor(time.Second).WillReturnResult(sqlmock.NewResult(0, 1))
				var workCtx context.Context
				done := make(chan error, 1)
				if name == "DoExclusively" {
					ready := make(chan struct{})
					go func() {
						done <- f.run(context.Background(), func(ctx context.Context) error {
							workCtx = ctx
							close(ready)
							return nil
						})
					}()
					<-ready
				} else {
					lease, err := f.lock.Hold(context.Background(), f.sqlDB)
					if err != nil {
						t.Fatal(err)
					}
					workCtx = lease.Context()
					go func() { done <- lease.Release(context.Background()) }()
				}
				time.Sleep(500 * time.Millisecond) // the release statement is in flight until 1 s
				if workCtx.Err() == nil {
					t.Error("the work's context is alive while the lock is being released")
				}
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

// TestAcquireWaitCancelledMidAttempt: a wait whose context ends while an attempt is in flight, after a
// refusal, reports contention and cancellation.
func TestAcquireWaitCancelledMidAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newHeartbeatFixture(t)
		defer f.db.Close()
		q := f.lock.manager.q.acquire
		f.mock.ExpectQuery(q).WillReturnRows(sqlmock.NewRows([]string{"fence"})) // refused
		f.mock.ExpectQuery(f.lock.manager.q.enqueue).WithArgs("job", true).WillReturnRows(sqlmock.NewRows([]string{"queue_tail"}).AddRow(int64(1)))
		// The waiter reads that the lock was released and that it is next, and tries again.
		f.mock.ExpectQuery(f.lock.manager.q.peek).WithArgs("job").
			WillReturnRows(unitPeekRows("other", nil, int64(10), nil, 0, 1))
		f.mock.ExpectQuery(q).WillDelayFor(time.Hour).WillReturnRows(sqlmock.NewRows([]string{"fence"}).AddRow(int64(1)))
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(time.Second, cancel) // the second attempt is in flight by then
		err := f.lock.AcquireWait(ctx, f.sqlDB, time.Minute, WaitForever)
		if !errors.Is(err, ErrLockAlreadyAcquired) || !errors.Is(err, context.Canceled) {
			t.Fatalf("AcquireWait = %v, want contention and cancellation", err)
		}
	})
}

// TestDoExclusivelyReleasesUnknownOutcome: when the acquire's outcome is lost (the connection broke with
// the statement sent), DoExclusively frees the lock under the attempted token in case it was taken.
func TestDoExclusivelyReleasesUnknownOutcome(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newHeartbeatFixture(t)
		defer f.db.Close()
		reset := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
		f.mock.ExpectQuery(f.lock.manager.q.acquire).WillReturnError(reset)
		var released recordedArg
		f.mock.ExpectExec(f.lock.manager.q.release).WithArgs(unitReleaseArgs(f.lock.manager.Dialect(), "job", &released)...).WillReturnResult(sqlmock.NewResult(0, 1))
		called := false
		err := f.run(context.Background(), func(context.Context) error { called = true; return nil })
		if !errors.As(err, new(*net.OpError)) || called {
			t.Fatalf("DoExclusively = %v (fn called: %v), want the acquire's error and no call", err, called)
		}
		// The release carries the attempted token, and the DBLock does not report it as holding.
		if tok, ok := released.value.(string); !ok || tok == "" || f.lock.Token() != "" || f.lock.pending != "" {
			t.Fatalf("released token %v; Token() %q, pending %q after the release, want both empty",
				released.value, f.lock.Token(), f.lock.pending)
		}
	})
}

// recordedArg is a sqlmock argument matcher that accepts any value and records it.
type recordedArg struct{ value driver.Value }

func (a *recordedArg) Match(v driver.Value) bool {
	a.value = v
	return true
}

// TestDoExclusivelyIntervalTooLong: go-dbkit's case of an extend interval longer than the TTL (TTL 3 s,
// interval 10 s) is accepted with a logged warning; fn's context is cancelled with ErrLockLost at the TTL
// less the safety margin (2.7 s), before the lease can end and without any extend; DoExclusively returns
// an error whose text is fn's own ("context canceled", as go-dbkit's test expects) that also matches
// ErrLockLost, and then releases.
func TestDoExclusivelyIntervalTooLong(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newHeartbeatFixture(t)
		defer f.db.Close()
		f.expectAcquire()
		f.expectRelease()
		var logger unitPlainLogger
		start := time.Now()
		var cancelledAfter time.Duration
		err := f.run(context.Background(), func(ctx context.Context) error {
			<-ctx.Done()
			cancelledAfter = time.Since(start)
			if !errors.Is(context.Cause(ctx), ErrLockLost) {
				t.Errorf("fn's context ended with cause %v, want ErrLockLost", context.Cause(ctx))
			}
			return ctx.Err()
		}, WithLockTTL(3*time.Second), WithPeriodicExtendInterval(10*time.Second), WithLogger(&logger))
		if cancelledAfter != 2700*time.Millisecond {
			t.Errorf("fn's context ended after %v, want 2.7s (TTL less the default margin)", cancelledAfter)
		}
		if err == nil || err.Error() != context.Canceled.Error() || !errors.Is(err, ErrLockLost) || !errors.Is(err, context.Canceled) {
			t.Fatalf("DoExclusively = %q; want the text %q, matching ErrLockLost and context.Canceled", err, context.Canceled)
		}
		if len(logger.messages) != 1 || !strings.Contains(logger.messages[0], "extend interval 10s is not shorter than TTL 3s") {
			t.Fatalf("logged %q, want one warning about the interval", logger.messages)
		}
	})
}

// TestDoExclusivelyLostWithoutWorkError: when the lease is lost and fn returns nil, the error is the loss,
// in the package's format.
func TestDoExclusivelyLostWithoutWorkError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newHeartbeatFixture(t)
		defer f.db.Close()
		f.expectAcquire()
		f.expectExtend(4 * time.Second).WillReturnResult(sqlmock.NewResult(0, 0)) // the lock is gone
		f.expectRelease()
		err := f.run(context.Background(), func(ctx context.Context) error {
			<-ctx.Done()
			return nil
		}, WithLockTTL(4*time.Second))
		unitWantErr(t, err, "do exclusively", "job", ErrLockLost, ErrLockAlreadyReleased)
	})
}

// TestHeartbeatReadOnlyRetries: an extend refused because the database is read-only (a failover may be
// under way) is retried until the lease stops being trusted: one success in time keeps the lease, and
// refusals until then end the work with ErrLockLost and ErrReadOnly as its cause.
func TestHeartbeatReadOnlyRetries(t *testing.T) {
	readOnly := &pgconn.PgError{Code: "25006", Message: "cannot execute UPDATE in a read-only transaction"}
	t.Run("recovers", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newHeartbeatFixture(t)
			defer f.db.Close()
			f.expectAcquire()
			// Extend due at 2 s is refused, the retries at 2.5 s and 3 s too; the one at 3.5 s succeeds.
			for range 3 {
				f.expectExtend(4 * time.Second).WillReturnError(readOnly)
			}
			f.expectExtend(4 * time.Second).WillReturnResult(sqlmock.NewResult(0, 1))
			f.expectRelease()
			err := f.run(context.Background(), func(ctx context.Context) error {
				select {
				case <-ctx.Done():
					return context.Cause(ctx)
				case <-time.After(4 * time.Second):
					return nil
				}
			}, WithLockTTL(4*time.Second))
			if err != nil {
				t.Fatalf("DoExclusively = %v, want the lease kept by the retry", err)
			}
		})
	})
	t.Run("stays read-only", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newHeartbeatFixture(t)
			defer f.db.Close()
			f.expectAcquire()
			// Retries every 500 ms from 2 s; the lease is trusted until 3.6 s.
			for range 4 {
				f.expectExtend(4 * time.Second).WillReturnError(readOnly)
			}
			f.expectRelease()
			start := time.Now()
			err := f.run(context.Background(), func(ctx context.Context) error {
				<-ctx.Done()
				return nil
			}, WithLockTTL(4*time.Second))
			unitWantErr(t, err, "do exclusively", "job", ErrLockLost, ErrReadOnly)
			if took := time.Since(start); took != 3600*time.Millisecond {
				t.Errorf("the work was cancelled after %v, want 3.6s (TTL less margin)", took)
			}
		})
	})
}
