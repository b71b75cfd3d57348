package distrlock

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"
)

// DBLock is a lock on one key, made by [DBManager.NewLock]. Each of its operations is one SQL statement run
// on the [SQLExecutor] passed to it, so it works in autocommit mode and inside the caller's transaction.
//
// The lease is measured on the database's clock: a lock is held from the acquiring statement until TTL
// later, unless it is extended or released first. A holder must stop the work the lock protects before its
// lease can end; [DBLock.DoExclusively] does that for you.
//
// A DBLock is a small value that remembers its token and fence. It is not safe for concurrent use: give
// each goroutine its own, or serialize the calls.
type DBLock struct {
	// Key identifies the lock.
	Key string
	// TTL is the lease duration of the last acquisition that took the lock or whose outcome was lost (a
	// refused attempt leaves it alone); Extend renews the lease for TTL.
	TTL time.Duration
	// Owner, if set before an acquire, is stored with the lock for others to read with [DBManager.Get]:
	// a host name or a process identity (at most [MaxOwnerLength] bytes of UTF-8 without NUL).
	Owner string
	// Data, if set before an acquire, is stored with the lock for others to read (at most [MaxDataLength]
	// bytes, which need not be text): what the holder works on, or a leader's address. It is a string so
	// that a DBLock stays comparable, as go-dbkit's is.
	Data string

	token   string
	fence   int64
	manager *DBManager
	// prevToken may still hold the lock after an acquire whose outcome was lost: the token from before
	// that attempt. Release falls back to it.
	prevToken string
}

// Token returns the token of the last acquisition that took the lock or whose outcome was lost (a refused
// attempt leaves it alone): the lock is held under this token after a successful acquire, and may be after
// an acquire whose outcome was lost (see [DBLock.Acquire]).
func (l *DBLock) Token() string { return l.token }

// Fence returns the fencing token of the last successful acquisition, or 0 if there was none (or its
// outcome was lost). Fences of one key only grow: each successful acquisition, including a re-acquisition
// under the same static token, gets a fence larger than every earlier one of that key, so a service that
// remembers the largest fence it has accepted for the key can refuse work from any older holder:
//
//	UPDATE accounts SET balance = $1, fence = $2 WHERE id = $3 AND fence <= $2
//
// Fences continue across release and expiry because the key's row is never deleted; deleting rows from the
// table by hand restarts that key's fences at 1. Inside a transaction a fence counts once the transaction
// commits: a rolled-back acquisition's fence is handed out again to the next holder.
func (l *DBLock) Fence() int64 { return l.fence }

// Acquire takes the lock for ttl under a new random token, with one statement that also creates the key's
// row on first use. Inside a transaction the statement locks the key's row until the transaction ends,
// even when it is refused, and so delays the holder's Extend and Release: keep such transactions short,
// and never retry a refused acquire inside one. It returns [ErrLockAlreadyAcquired] when another token holds an unexpired lease, and
// also when this DBLock holds one (each Acquire uses a new token).
//
// When the statement may have run but its result was lost (the context ended while it was in flight, the
// connection broke), Acquire returns that error and keeps the new token, so [DBLock.Release] frees the lock
// if it was taken; Fence then returns 0. When Acquire fails before sending anything (invalid input, nil
// executor, context already ended), the DBLock is unchanged.
func (l *DBLock) Acquire(ctx context.Context, exec SQLExecutor, ttl time.Duration) error {
	return l.acquire(ctx, exec, "acquire", newToken(), ttl)
}

// AcquireWithStaticToken is [DBLock.Acquire] with a token of the caller's choice (1 to [MaxTokenLength]
// bytes of UTF-8 without NUL). Acquiring with the token that holds the lock succeeds and renews the lease,
// with a new fence. Use it to let several processes share one lock, or to let a process that restarts take
// back its own lock; use Acquire otherwise.
func (l *DBLock) AcquireWithStaticToken(ctx context.Context, exec SQLExecutor, token string, ttl time.Duration) error {
	const op = "acquire with static token"
	if err := validateToken(token); err != nil {
		return opError(op, l.Key, err)
	}
	return l.acquire(ctx, exec, op, token, ttl)
}

func (l *DBLock) acquire(ctx context.Context, exec SQLExecutor, op, token string, ttl time.Duration) error {
	if err := l.check(ctx, exec); err != nil {
		return opError(op, l.Key, err)
	}
	if err := validateTTL(ttl); err != nil {
		return opError(op, l.Key, err)
	}
	if err := validateOwnerData(l.Owner, l.Data); err != nil {
		return opError(op, l.Key, err)
	}
	args := acquireArgs{key: l.Key, token: token, ttlMicros: ttl.Microseconds()}
	if l.Owner != "" {
		args.owner = l.Owner
	}
	if l.Data != "" {
		args.data = []byte(l.Data) // bytes, for PostgreSQL's bytea and MySQL's blob
	}
	m := l.manager
	fence, err := m.spec.acquire(ctx, exec, m.q.acquire, args)
	if errors.Is(err, errAcquireRefused) {
		return opError(op, l.Key, ErrLockAlreadyAcquired)
	}
	if err != nil {
		// Nobody knows the outcome: the lock may now be held under token, or still under the token from
		// before (an attempt by a DBLock that held the lock is refused unless that lease had expired).
		l.prevToken = cmp.Or(l.token, l.prevToken)
		l.token, l.TTL, l.fence = token, ttl, 0
		return opError(op, l.Key, withContext(ctx, err))
	}
	l.token, l.TTL, l.fence, l.prevToken = token, ttl, fence, ""
	return nil
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
	if err := l.extendCause(ctx, exec, ttl); err != nil {
		return opError(op, l.Key, err)
	}
	return nil
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
	res, err := exec.ExecContext(ctx, m.q.extend, m.spec.extendArgs(l.Key, l.token, ttl.Microseconds())...)
	if err != nil {
		return withContext(ctx, err)
	}
	found, err := m.spec.extended(res)
	if err != nil {
		return err
	}
	if !found {
		return ErrLockAlreadyReleased
	}
	return nil
}

// Release frees the lock if this DBLock's token holds it. It returns [ErrLockAlreadyReleased] when the lock
// was not held under the token any more (released before, expired, or taken by another), and
// [ErrLockNotAcquired] on a DBLock that never attempted an acquisition. Releasing twice is safe: the second
// call changes nothing and returns ErrLockAlreadyReleased.
//
// After an acquire whose outcome was lost on a DBLock that already held the lock, the lock is held under
// one of two tokens; Release then tries the newer and, if it does not hold the lock, the older, which
// takes a second statement.
func (l *DBLock) Release(ctx context.Context, exec SQLExecutor) error {
	const op = "release"
	if err := l.checkHeld(ctx, exec); err != nil {
		return opError(op, l.Key, err)
	}
	err := l.releaseToken(ctx, exec, l.token)
	if errors.Is(err, ErrLockAlreadyReleased) && l.prevToken != "" {
		err = l.releaseToken(ctx, exec, l.prevToken)
	}
	if err != nil {
		return opError(op, l.Key, err)
	}
	l.prevToken = ""
	return nil
}

// releaseToken runs the release statement for token.
func (l *DBLock) releaseToken(ctx context.Context, exec SQLExecutor, token string) error {
	m := l.manager
	res, err := exec.ExecContext(ctx, m.q.release, m.spec.releaseArgs(l.Key, token)...)
	if err != nil {
		return withContext(ctx, err)
	}
	released, err := oneRowAffected(res)
	if err != nil {
		return err
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
	lock := DBLock{Key: key, token: token, manager: m}
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
	if l.token == "" {
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
	_, _ = rand.Read(b[:]) // never fails: crypto/rand panics rather than return an error
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
