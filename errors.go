package distrlock

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Errors returned by this package. Every error that leaves the package wraps one of them (or a driver's
// error) with the operation and the key, so match them with [errors.Is], never by text.
var (
	// ErrLockAlreadyAcquired is returned by [DBLock.Acquire] and [DBLock.AcquireWithStaticToken] when another
	// token holds an unexpired lease on the key (or other clients' writes to it conflicted with every retry),
	// and by [DoExclusively] when it could not take the lock.
	// Its text is go-dbkit's.
	ErrLockAlreadyAcquired = errors.New("distributed lock already acquired")

	// ErrLockAlreadyReleased is returned by [DBLock.Extend], [DBLock.Release] and [DBLock.Guard] when the lock
	// is no longer held under this DBLock's token: it was released, it expired, or another holder has taken it
	// since. Acquire again to hold it. Its text is go-dbkit's.
	ErrLockAlreadyReleased = errors.New("distributed lock already released")

	// ErrLockNotAcquired is returned by [DBLock.Extend], [DBLock.Release] and [DBLock.Guard] on a DBLock that
	// has never attempted an acquisition, and by [DBLock.Keep] on one that does not hold its lock; nothing is
	// sent. Except from Keep it also matches [ErrLockAlreadyReleased], which is what go-dbkit returned
	// in that case.
	ErrLockNotAcquired = errors.New("lock was never acquired")

	// ErrLockLost is the cause (see [context.Cause]) of the cancellation of the context that
	// [DBLock.DoExclusively] gives its function when the lease may have ended on the server, and it is
	// returned by DoExclusively in that case.
	ErrLockLost = errors.New("distributed lock lost")

	// ErrWaitTimeout is the reason, besides [ErrLockAlreadyAcquired], of the error [DBLock.AcquireWait] and a
	// waiting DoExclusively return when their maximum wait ran out; it also matches [context.DeadlineExceeded].
	ErrWaitTimeout = fmt.Errorf("wait for lock timed out: %w", context.DeadlineExceeded)

	// ErrInvalidKey is returned for a key that is empty, longer than [MaxKeyLength] bytes, not valid
	// UTF-8 or contains a NUL byte.
	ErrInvalidKey = errors.New("invalid lock key")

	// ErrInvalidToken is returned by [DBLock.AcquireWithStaticToken], and for [WithToken], for a token that is
	// empty, longer than [MaxTokenLength] bytes, not valid UTF-8 or contains a NUL byte.
	ErrInvalidToken = errors.New("invalid lock token")

	// ErrInvalidTTL is returned for a lease duration below [MinTTL] or above [MaxTTL].
	ErrInvalidTTL = errors.New("invalid lock TTL")

	// ErrInvalidTableName is returned by [NewDBManager] for a table name that is not a plain SQL identifier
	// or a schema-qualified one (see [WithTableName]).
	ErrInvalidTableName = errors.New("invalid table name")

	// ErrUnsupportedDialect is returned by [NewDBManager], [CreateTableSQL] and [DropTableSQL] for a
	// dialect other than the Dialect constants of this package.
	ErrUnsupportedDialect = errors.New("unsupported sql dialect")

	// ErrNilExecutor is returned when a nil [SQLExecutor] (or a nil *sql.DB, *sql.Tx or *sql.Conn) is passed.
	ErrNilExecutor = errors.New("nil SQL executor")

	// ErrInvalidLock is returned by the methods of a [DBLock] that was not made by [DBManager.NewLock].
	ErrInvalidLock = errors.New("lock not created by DBManager.NewLock")

	// ErrInvalidOption is returned for an option whose value is out of range.
	ErrInvalidOption = errors.New("invalid option")

	// ErrReadOnly is returned by the calls that write a lock (acquire, extend, release, and DoExclusively,
	// Hold and AcquireWait through them) when the database refused the write because it is read-only: a
	// PostgreSQL standby, a read-only transaction or session, MySQL's read_only or super_read_only. Nothing
	// was changed; it wraps the driver's error.
	ErrReadOnly = errors.New("database is read-only")

	// ErrSessionClock is returned by the calls that run MySQL or MariaDB statements when the session's clock
	// is not the server's real time (SET timestamp moved it, or a statement waited over 10 minutes before
	// reading it): the statement refused to run, and nothing was changed. It wraps the driver's error.
	ErrSessionClock = errors.New("session clock differs from the server's real time")

	// ErrSchemaMismatch is returned by the calls that run a statement when the database says the lock table
	// or one of its columns does not exist: the table is missing, or lacks a migration this version uses
	// (apply [DBManager.Migrations]). Nothing was changed; it wraps the driver's error.
	ErrSchemaMismatch = errors.New("lock table missing or not migrated")

	// ErrNotInTransaction is returned by [DBLock.Guard] and [Lease.Guard] when given a *sql.DB, whose
	// statements run in autocommit mode: a guard protects the writes of the transaction it runs in.
	ErrNotInTransaction = errors.New("guard needs the caller's transaction")

	// ErrPreparedStatementPooling is returned by the calls that run a statement when PostgreSQL refused it
	// because the driver's prepared statement did not exist on the server connection, or already existed
	// there (SQLSTATE 26000, 42P05): the driver caches prepared statements behind a transaction-mode pooler
	// such as PgBouncer. Nothing was changed; it wraps the driver's error, and its text says what to set.
	ErrPreparedStatementPooling = errors.New("prepared statement missing or duplicated on the server connection " +
		"(a transaction-mode pooler such as PgBouncer in front of a driver's statement cache): with pgx set " +
		"default_query_exec_mode=exec (or cache_describe, or simple_protocol) in the DSN, or max_prepared_statements " +
		"in PgBouncer 1.21 or later")

	// ErrNotLeader is returned by [Election.Proclaim] when the candidate does not lead: it never won, it
	// resigned, or its lease has ended. It is also the cause of an [Election.Context] outside a term.
	ErrNotLeader = errors.New("not the leader of the election")

	// ErrNoLeader is returned by [Election.Leader] when no candidate leads the election.
	ErrNoLeader = errors.New("no leader elected")

	// ErrAlreadyRunning is returned by [Election.Run] while another Run of the same Election has not
	// returned.
	ErrAlreadyRunning = errors.New("election already running")
)

// opError formats an error leaving the package: `distrlock: <op> "<key>": <cause>`.
func opError(op, key string, err error) error {
	return fmt.Errorf("distrlock: %s %q: %w", op, printableKey(key), err)
}

// printableKey shortens keys that are too long to be read in an error message.
func printableKey(key string) string {
	const maxShown = 64
	if len(key) <= maxShown {
		return key
	}
	cut := maxShown
	for cut > 0 && !utf8.RuneStart(key[cut]) {
		cut--
	}
	return key[:cut] + "…"
}

// contextError reports why ctx ended, keeping both ctx.Err() and a distinct cause matchable.
func contextError(ctx context.Context) error {
	err := ctx.Err()
	if err == nil {
		return nil
	}
	cause := context.Cause(ctx)
	switch {
	case cause == nil || cause == err:
		return err
	case errors.Is(cause, err): // e.g. ErrWaitTimeout, which says it is a deadline itself
		return cause
	default:
		return fmt.Errorf("%w: %w", err, cause)
	}
}
