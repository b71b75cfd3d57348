package distrlock

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// DBLock is a lock on one key, made by [DBManager.NewLock]; each of its operations is one SQL statement on
// the [SQLExecutor] passed to it, in autocommit mode or inside the caller's transaction, and its lease is
// measured on the database's clock. It is not safe for concurrent use: give each goroutine its own.
type DBLock struct {
	// Key identifies the lock.
	Key string
	// TTL is the lease duration of the last acquisition that took the lock; Extend renews the lease for TTL.
	TTL time.Duration
	// Owner, if set before an acquire, is stored with the lock for others to read with [DBManager.Get]:
	// a host name or a process identity (at most [MaxOwnerLength] bytes of UTF-8 without NUL).
	Owner string
	// Data, if set before an acquire, is stored with the lock for others to read (at most [MaxDataLength]
	// bytes, which need not be text): what the holder works on, or a leader's address. It is a string so
	// that a DBLock stays comparable, as go-dbkit's is.
	Data string

	token   string // of the last acquisition that took the lock
	held    bool   // token took the lock, and no Release or lost acquire outcome came since
	fence   int64
	manager *DBManager
	// pending is the token of an acquire whose outcome was lost: it may hold the lock. The next Acquire
	// sends it again, so that a retry is not refused by its own lost attempt, and Release frees it.
	pending string
	// since is when the last successful acquire or extend statement was sent: the server counts the lease
	// from no earlier, so it is trusted until since plus TTL (Keep).
	since time.Time
	// minHold keeps the lock taken until its acquisition plus minHold when it is released sooner
	// (WithLockAtLeastFor).
	minHold time.Duration
	// announce makes a release publish the key to the manager's Notifier even when no ticket waits
	// (an election's term).
	announce bool
	// logger, during a call with WithLogger, receives the events of its acquire and release instead of
	// the manager's logger.
	logger Logger
}

// Token returns the token that holds the lock after a successful acquire, and "" while the lock is not
// known to be held: before the first successful acquire, after Release, and after an acquire whose
// outcome was lost. A refused acquire leaves it alone.
func (l *DBLock) Token() string {
	if !l.held {
		return ""
	}
	return l.token
}

// Fence returns the fencing token of the last successful acquisition, or 0 if there was none (or its
// outcome was lost). A key's fences only grow, so a service that remembers the largest fence it accepted
// for the key can refuse work from every older holder.
func (l *DBLock) Fence() int64 { return l.fence }

// Acquire takes the lock for ttl under a new random token, in one statement on exec that also creates the
// key's row on first use. It returns [ErrLockAlreadyAcquired] when another token, or this DBLock (each
// Acquire uses a new token), holds an unexpired lease or, outside a transaction, while [DBLock.AcquireWait]'s
// waiters are queued for a lock freed moments ago, or when other clients' writes to the key made every retry
// fail with a deadlock or a Galera certification conflict; [ErrReadOnly] when the database refuses writes, and
// [ErrSchemaMismatch] when the table is missing or not migrated. Inside a transaction the statement locks
// the key's row until the transaction ends, even when refused: keep such transactions short.
func (l *DBLock) Acquire(ctx context.Context, exec SQLExecutor, ttl time.Duration) error {
	_, err := l.acquire(ctx, exec, "acquire", l.retryToken(), ttl)
	return err
}

// AcquireWithStaticToken is [DBLock.Acquire] with a token of the caller's choice (1 to [MaxTokenLength]
// bytes of UTF-8 without NUL), for processes that share one lock or take back their own after a restart.
// Acquiring with the token that holds the lock succeeds and renews the lease, with a new fence.
func (l *DBLock) AcquireWithStaticToken(ctx context.Context, exec SQLExecutor, token string, ttl time.Duration) error {
	const op = "acquire with static token"
	if err := validateToken(token); err != nil {
		return opError(op, l.Key, err)
	}
	_, err := l.acquire(ctx, exec, op, token, ttl)
	return err
}

// retryToken is the token of the next Acquire: the one of a lost attempt, which may hold the lock, or a
// new one.
func (l *DBLock) retryToken() string {
	if l.pending != "" {
		return l.pending
	}
	return newToken()
}

// outcome is what an acquire attempt is known to have done.
type outcome int

const (
	notSent   outcome = iota // invalid input, or the context had ended: nothing was sent
	taken                    // the statement took the lock
	refused                  // the statement ran and found the lock held under another token
	unchanged                // the statement failed and certainly changed nothing (see classify)
	lost                     // the statement may have run; its outcome is unknown
)

func (l *DBLock) acquire(ctx context.Context, exec SQLExecutor, op, token string, ttl time.Duration) (outcome, error) {
	var out outcome
	err := retryConflicts(ctx, exec, func() (err error) {
		out, err = l.acquireTicket(ctx, exec, op, token, ttl, 0, 0)
		return err
	})
	if _, inTx := exec.(*sql.Tx); !inTx && out == unchanged && isDeadlock(err) {
		// Other clients wrote the key's row at the same moment every time: contention. Inside a
		// transaction the error stays as it is: the deadlock ended the caller's transaction.
		return out, opError(op, l.Key, fmt.Errorf("%w: %w", ErrLockAlreadyAcquired, errors.Unwrap(err)))
	}
	return out, err
}

// retryConflicts runs send, and outside a caller's transaction runs it again, after a short jittered pause,
// while it fails with a deadlock or a Galera certification conflict (both MySQL's 1213, PostgreSQL's 40P01),
// at most deadlockRetries times: the server rolled the statement back whole, so it changed nothing. Two
// acquires of a key's first row can deadlock on MySQL's gap locks; on Galera any statement that writes a
// row another node wrote at the same moment fails certification, unless the server's own retry
// (wsrep_retry_autocommit) succeeded. A deadlock inside a transaction has ended it: the caller decides.
func retryConflicts(ctx context.Context, exec SQLExecutor, send func() error) error {
	err := send()
	if _, inTx := exec.(*sql.Tx); inTx {
		return err
	}
	for retry := 1; retry <= deadlockRetries && isDeadlock(err) && ctx.Err() == nil; retry++ {
		time.Sleep(rand.N(time.Duration(retry) * time.Millisecond))
		err = send()
	}
	return err
}

// deadlockRetries bounds how many times retryConflicts sends a statement again, with a pause of up to as
// many milliseconds as the retry's number (about 0.2 s in all).
const deadlockRetries = 20

// acquireTicket is acquire for a waiter holding ticket in the key's queue (0: none); grace 0 is the
// manager's.
func (l *DBLock) acquireTicket(ctx context.Context, exec SQLExecutor, op, token string, ttl time.Duration, ticket int64, grace time.Duration) (outcome, error) {
	if err := l.check(ctx, exec); err != nil {
		return notSent, opError(op, l.Key, err)
	}
	if err := validateTTL(ttl); err != nil {
		return notSent, opError(op, l.Key, err)
	}
	if err := validateOwnerData(l.Owner, l.Data); err != nil {
		return notSent, opError(op, l.Key, err)
	}
	if grace == 0 {
		grace = l.manager.handoverGrace()
	}
	args := acquireArgs{key: l.Key, token: token, ttlMicros: ttl.Microseconds(), ticket: ticket, graceMicros: grace.Microseconds()}
	if l.Owner != "" {
		args.owner = l.Owner
	}
	if l.Data != "" {
		args.data = []byte(l.Data) // bytes, for PostgreSQL's bytea and MySQL's blob
	}
	m := l.manager
	query := m.q.acquire
	_, inTx := exec.(*sql.Tx)
	if inTx {
		query, args.ungated = m.q.acquireInTx, m.spec.gapLocks
	}
	ctx = m.startSpan(ctx, Event{Kind: EventAcquire, Key: l.Key})
	sent := time.Now()
	fence, err := m.spec.acquire(ctx, m.stmts.executor(exec), query, args)
	out, err := l.acquired(ctx, op, token, ttl, sent, fence, err)
	if m.observing(l.logger) {
		e := Event{Kind: EventAcquire, Key: l.Key, Err: err, Duration: time.Since(sent)}
		if out == taken {
			e.Fence, e.Owner = l.fence, l.Owner
		}
		m.emit(ctx, l.logger, e)
	}
	return out, err
}

// acquired records the outcome of an acquire statement sent at sent that returned fence and err.
func (l *DBLock) acquired(ctx context.Context, op, token string, ttl time.Duration, sent time.Time, fence int64, err error) (outcome, error) {
	switch {
	case errors.Is(err, errAcquireRefused):
		// The token that holds a lock takes it again, so a refused token does not hold it.
		if token == l.pending {
			l.pending = ""
		}
		return refused, opError(op, l.Key, ErrLockAlreadyAcquired)
	case err != nil:
		if f := classify(err); f != failUnknown {
			return unchanged, opError(op, l.Key, classified(withContext(ctx, err), f))
		}
		// Nobody knows the outcome: the lock may now be held under token, or still under the token from
		// before (an attempt by a DBLock that held the lock is refused unless that lease had expired).
		l.pending, l.held, l.fence = token, false, 0
		return lost, opError(op, l.Key, withContext(ctx, err))
	}
	l.token, l.held, l.TTL, l.fence, l.pending, l.since = token, true, ttl, fence, "", sent
	return taken, nil
}

// Extend renews the lease for l.TTL from now on the database's clock. It returns [ErrLockAlreadyReleased]
// when the lock is no longer held under this DBLock's token (released, expired, or taken by another), and
// [ErrLockNotAcquired] on a DBLock that never attempted an acquisition.
func (l *DBLock) Extend(ctx context.Context, exec SQLExecutor) error {
	return l.extend(ctx, exec, "extend", l.TTL)
}

// ExtendTTL renews the lease for ttl from now on the database's clock, and makes ttl the DBLock's TTL. A
// shorter ttl shortens the lease. It returns what [DBLock.Extend] returns, and [ErrInvalidTTL] without
// sending anything for a ttl out of range.
func (l *DBLock) ExtendTTL(ctx context.Context, exec SQLExecutor, ttl time.Duration) error {
	if err := l.extend(ctx, exec, "extend ttl", ttl); err != nil {
		return err
	}
	l.TTL = ttl
	return nil
}

func (l *DBLock) extend(ctx context.Context, exec SQLExecutor, op string, ttl time.Duration) error {
	var start time.Time
	observing := l.manager != nil && l.manager.observing(l.logger)
	if observing {
		start = time.Now()
	}
	err := l.extendCause(ctx, exec, ttl)
	if err != nil {
		err = opError(op, l.Key, err)
	}
	if observing {
		l.manager.emit(ctx, l.logger, Event{Kind: EventExtend, Key: l.Key, Fence: l.fence, Owner: l.Owner, Err: err, Duration: time.Since(start)})
	}
	return err
}

// extendCause runs the extend statement and returns why it failed, unwrapped.
func (l *DBLock) extendCause(ctx context.Context, exec SQLExecutor, ttl time.Duration) error {
	if err := l.checkHeld(ctx, exec); err != nil {
		return err
	}
	if err := validateTTL(ttl); err != nil {
		return err
	}
	m := l.manager
	// After a lost acquire outcome on a DBLock that never held the lock, only that attempt's token can.
	token := cmp.Or(l.token, l.pending)
	var res sql.Result
	var sent time.Time // the start of the attempt that ran: the lease counts from there
	err := retryConflicts(ctx, exec, func() (err error) {
		sent = time.Now()
		res, err = m.stmts.executor(exec).ExecContext(ctx, m.q.extend, m.spec.extendArgs(l.Key, token, ttl.Microseconds())...)
		return err
	})
	if err != nil {
		return classified(withContext(ctx, err), classify(err))
	}
	found, err := m.spec.extended(res)
	if err != nil {
		return err
	}
	if !found {
		return ErrLockAlreadyReleased
	}
	// The token holds the lock, also after a lost acquire outcome.
	if token == l.pending {
		l.token, l.pending = token, ""
	}
	l.held, l.since = true, sent
	return nil
}

// Release frees the lock if this DBLock's token holds it; releasing twice is safe. It returns
// [ErrLockAlreadyReleased] when the lock was not held under the token any more (released before, expired,
// or taken by another), and [ErrLockNotAcquired] on a DBLock that never attempted an acquisition.
func (l *DBLock) Release(ctx context.Context, exec SQLExecutor) error {
	const op = "release"
	if err := l.checkHeld(ctx, exec); err != nil {
		return opError(op, l.Key, err)
	}
	m := l.manager
	if !m.observing(l.logger) {
		return l.releaseHeld(ctx, exec)
	}
	fence, owner := l.fence, l.Owner
	ctx = m.startSpan(ctx, Event{Kind: EventRelease, Key: l.Key, Fence: fence, Owner: owner})
	start := time.Now()
	err := l.releaseHeld(ctx, exec)
	m.emit(ctx, l.logger, Event{Kind: EventRelease, Key: l.Key, Fence: fence, Owner: owner, Err: err, Duration: time.Since(start)})
	return err
}

// releaseHeld is Release once the DBLock is known to have attempted an acquisition.
func (l *DBLock) releaseHeld(ctx context.Context, exec SQLExecutor) error {
	const op = "release"
	err := ErrLockAlreadyReleased
	if l.pending != "" {
		if err = l.releaseToken(ctx, exec, l.pending); errors.Is(err, ErrLockAlreadyReleased) {
			l.pending = ""
		}
	}
	if errors.Is(err, ErrLockAlreadyReleased) && l.token != "" && l.token != l.pending {
		err = l.releaseToken(ctx, exec, l.token)
	}
	if err != nil && !errors.Is(err, ErrLockAlreadyReleased) {
		return opError(op, l.Key, err)
	}
	// Released now, or not held by any of the tokens.
	l.held, l.pending = false, ""
	if err != nil {
		return opError(op, l.Key, err)
	}
	return nil
}

// releaseToken runs the release statement for token.
func (l *DBLock) releaseToken(ctx context.Context, exec SQLExecutor, token string) error {
	m := l.manager
	args := m.spec.releaseArgs(l.Key, token, l.minHold.Microseconds(), autocommit(exec))
	var released bool
	if m.notifier != nil {
		// The same UPDATE, which also publishes the key to the waiters of other processes, if any.
		var queued bool
		err := retryConflicts(ctx, exec, func() error {
			return exec.QueryRowContext(ctx, m.q.releaseNotify, append(args, m.notifier.Channel(), l.announce)...).Scan(new(sql.NullString), &queued)
		})
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return classified(withContext(ctx, err), classify(err))
		default:
			released = true
			if _, inTx := exec.(*sql.Tx); queued && !inTx && m.notifier.Listening() {
				// Its notice is on the way. In a caller's transaction it waits for the commit, if any.
				m.waiters.handOver(l.Key, time.Now().Add(m.backoffMin))
			}
		}
	} else {
		var res sql.Result
		err := retryConflicts(ctx, exec, func() (err error) {
			res, err = m.stmts.executor(exec).ExecContext(ctx, m.q.release, args...)
			return err
		})
		if err != nil {
			return classified(withContext(ctx, err), classify(err))
		}
		if released, err = oneRowAffected(res); err != nil {
			return err
		}
	}
	if !released {
		return ErrLockAlreadyReleased
	}
	m.waiters.wake(l.Key)
	return nil
}

// ReleaseWithToken frees the lock on key if token holds it, as [DBLock.Release] would for the DBLock that
// acquired it: for a process that restarted with a static token, or an operator who read the token with
// [DBManager.Get]. It returns [ErrLockAlreadyReleased] when token does not hold the lock.
func (m *DBManager) ReleaseWithToken(ctx context.Context, exec SQLExecutor, key, token string) error {
	if err := validateKey(key); err != nil {
		return opError("release", key, err)
	}
	if err := validateToken(token); err != nil {
		return opError("release", key, err)
	}
	// An operator's release may end an election's term, whose standbys wait without tickets: publish it.
	lock := DBLock{Key: key, token: token, held: true, manager: m, announce: true}
	return lock.Release(ctx, exec)
}

func (l *DBLock) check(ctx context.Context, exec SQLExecutor) error {
	if l.manager == nil {
		return ErrInvalidLock
	}
	// Key is a field the caller may have changed since NewLock checked it.
	if err := validateKey(l.Key); err != nil {
		return err
	}
	return checkCall(ctx, exec)
}

func (l *DBLock) checkHeld(ctx context.Context, exec SQLExecutor) error {
	if err := l.check(ctx, exec); err != nil {
		return err
	}
	if l.token == "" && l.pending == "" {
		return errNeverAcquired{}
	}
	return nil
}

// errNeverAcquired matches ErrLockNotAcquired and, as go-dbkit answered in that case, ErrLockAlreadyReleased.
type errNeverAcquired struct{}

func (errNeverAcquired) Error() string { return ErrLockNotAcquired.Error() }

func (errNeverAcquired) Is(target error) bool {
	return target == ErrLockNotAcquired || target == ErrLockAlreadyReleased
}

// withContext makes sure a failure caused by the end of ctx matches the context's error too, whatever the
// driver wrapped.
func withContext(ctx context.Context, err error) error {
	if ctxErr := contextError(ctx); ctxErr != nil && !errors.Is(err, ctx.Err()) {
		return errors.Join(err, ctxErr)
	}
	return err
}

// newToken returns a random version 4 UUID, the token format go-dbkit used.
func newToken() string {
	var b [16]byte
	_, _ = crand.Read(b[:]) // never fails: crypto/rand panics rather than return an error
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], b[10:16])
	return string(s[:])
}
