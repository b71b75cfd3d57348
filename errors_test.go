package distrlock

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
)

// unitSentinels are every exported error of the package, with their texts; go-dbkit's two texts are a
// promise to its users.
var unitSentinels = []struct {
	err  error
	text string
}{
	{ErrLockAlreadyAcquired, "distributed lock already acquired"},
	{ErrLockAlreadyReleased, "distributed lock already released"},
	{ErrLockNotAcquired, "lock was never acquired"},
	{ErrLockLost, "distributed lock lost"},
	{ErrInvalidKey, "invalid lock key"},
	{ErrInvalidToken, "invalid lock token"},
	{ErrInvalidTTL, "invalid lock TTL"},
	{ErrInvalidTableName, "invalid table name"},
	{ErrUnsupportedDialect, "unsupported sql dialect"},
	{ErrNilExecutor, "nil SQL executor"},
	{ErrInvalidLock, "lock not created by DBManager.NewLock"},
	{ErrInvalidOption, "invalid option"},
	{ErrNotLeader, "not the leader of the election"},
	{ErrNoLeader, "no leader elected"},
	{ErrPreparedStatementPooling, "prepared statement missing or duplicated on the server connection (a " +
		"transaction-mode pooler such as PgBouncer in front of a driver's statement cache): with pgx set " +
		"default_query_exec_mode=exec (or cache_describe, or simple_protocol) in the DSN, or " +
		"max_prepared_statements in PgBouncer 1.21 or later"},
}

// TestSentinelTexts: the texts stay as they are (go-dbkit's exactly), and say "distrlock:" nowhere, since
// the wrapping op error says it once.
func TestSentinelTexts(t *testing.T) {
	for _, s := range unitSentinels {
		if s.err.Error() != s.text {
			t.Errorf("sentinel text %q, want %q", s.err, s.text)
		}
	}
}

// TestSentinelsDistinct: no sentinel matches another, so errors.Is tells every case apart.
func TestSentinelsDistinct(t *testing.T) {
	for i, a := range unitSentinels {
		for j, b := range unitSentinels {
			if i != j && errors.Is(a.err, b.err) {
				t.Errorf("%q matches %q", a.err, b.err)
			}
		}
	}
}

// TestNeverAcquiredMatches: the error of Extend and Release on a never-acquired lock matches
// ErrLockNotAcquired and ErrLockAlreadyReleased (go-dbkit's answer), nothing else, and reads as the former.
func TestNeverAcquiredMatches(t *testing.T) {
	err := opError("release", "job", errNeverAcquired{})
	for _, s := range unitSentinels {
		want := s.err == ErrLockNotAcquired || s.err == ErrLockAlreadyReleased
		if errors.Is(err, s.err) != want {
			t.Errorf("errors.Is(%q, %q) = %v, want %v", err, s.err, !want, want)
		}
	}
	if want := `distrlock: release "job": lock was never acquired`; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

// TestOpError: `distrlock: <op> "<key>": <cause>`, the cause stays matchable, and keys longer than 64
// bytes are cut in the message only.
func TestOpError(t *testing.T) {
	errDriver := errors.New("driver: boom")
	for _, c := range []struct {
		key, want string
	}{
		{"job", `distrlock: extend "job": driver: boom`},
		{"", `distrlock: extend "": driver: boom`},
		{`say "hi"`, `distrlock: extend "say \"hi\"": driver: boom`},
		{"line\nbreak", `distrlock: extend "line\nbreak": driver: boom`},
		{strings.Repeat("k", 64), `distrlock: extend "` + strings.Repeat("k", 64) + `": driver: boom`},
		{strings.Repeat("k", 65), `distrlock: extend "` + strings.Repeat("k", 64) + `…": driver: boom`},
		{strings.Repeat("k", 255), `distrlock: extend "` + strings.Repeat("k", 64) + `…": driver: boom`},
	} {
		err := opError("extend", c.key, errDriver)
		if err.Error() != c.want {
			t.Errorf("opError(%q) = %q, want %q", c.key, err, c.want)
		}
		if !errors.Is(err, errDriver) {
			t.Errorf("opError(%q) does not wrap the cause", c.key)
		}
	}
	var target *unitDriverError
	if err := opError("acquire", "job", fmt.Errorf("exec: %w", &unitDriverError{code: 40001})); !errors.As(err, &target) || target.code != 40001 {
		t.Errorf("errors.As cannot reach the driver's error type through %q", err)
	}
}

type unitDriverError struct{ code int }

func (e *unitDriverError) Error() string { return fmt.Sprintf("driver error %d", e.code) }

// TestContextError: a live context is no error; an ended one reports ctx.Err(), and its cause too when it
// has a distinct one.
func TestContextError(t *testing.T) {
	if err := contextError(context.Background()); err != nil {
		t.Errorf("live context: %v", err)
	}
	errCause := errors.New("shutting down")
	for _, c := range unitEndedContexts(errCause) {
		t.Run(c.name, func(t *testing.T) {
			err := contextError(c.ctx(t))
			for _, want := range c.want {
				if !errors.Is(err, want) {
					t.Errorf("%q does not match %q", err, want)
				}
			}
		})
	}
	ctx, cancel := context.WithTimeoutCause(context.Background(), -time.Second, errCause)
	defer cancel()
	if err := contextError(ctx); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, errCause) {
		t.Errorf("timeout with cause: %q", err)
	}
}

// TestWithContext: a failure while the context is live is returned as it is; one after the context ended
// also matches the context's error (and cause), whatever the driver returned, and is not doubled when the
// driver already returned the context's error.
func TestWithContext(t *testing.T) {
	errDriver := errors.New("driver: canceling query due to user request")
	if err := withContext(context.Background(), errDriver); err != errDriver {
		t.Errorf("live context: got %q, want the driver's error unchanged", err)
	}
	errCause := errors.New("shutting down")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errCause)
	err := withContext(ctx, errDriver)
	for _, want := range []error{errDriver, context.Canceled, errCause} {
		if !errors.Is(err, want) {
			t.Errorf("%q does not match %q", err, want)
		}
	}
	wrapped := fmt.Errorf("driver: %w", context.Canceled)
	if err := withContext(ctx, wrapped); !errors.Is(err, context.Canceled) || strings.Count(err.Error(), "context canceled") != 1 {
		t.Errorf("got %q, want it to match context.Canceled and say so once", err)
	}
}

// TestLostLeaseErrorForm: the error DoExclusively returns when the lease is lost keeps the package's form,
// `distrlock: do exclusively "<key>": …`, saying "distrlock:" once, and matches ErrLockLost and the
// extend's own answer. The lease is lost at the first extend (2 s, on synctest's clock), which finds the
// lock gone.
func TestLostLeaseErrorForm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newUnitFixture(t, DialectPgx, "")
		tok := &unitToken{}
		const ttl = 10 * time.Second
		f.expectAcquire(tok, ttl).granted(1)
		f.mock.ExpectExec(unitQuery(t, DialectPgx, "extend", "")).WithArgs(ttl.Microseconds(), unitKey, tok).
			WillReturnResult(sqlmock.NewResult(0, 0))
		f.mock.ExpectExec(unitQuery(t, DialectPgx, "release", "")).WithArgs(unitReleaseArgs(DialectPgx, unitKey, tok)...).
			WillReturnResult(sqlmock.NewResult(0, 0))
		var cause error
		err := f.lock.DoExclusively(context.Background(), f.db, func(ctx context.Context) error {
			<-ctx.Done()
			cause = context.Cause(ctx)
			return nil
		}, WithLockTTL(ttl), WithPeriodicExtendInterval(2*time.Second))
		if !errors.Is(cause, ErrLockLost) {
			t.Errorf("fn's context ended with cause %v, want ErrLockLost", cause)
		}
		unitWantErr(t, err, "do exclusively", unitKey, ErrLockLost, ErrLockAlreadyReleased)
	})
}
