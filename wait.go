package distrlock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// WaitForever, as the maximum wait of [DBLock.AcquireWait] or [WithWait], waits until the context ends.
const WaitForever time.Duration = math.MaxInt64

// Defaults of [WithWaitBackoff].
const (
	DefaultWaitMinBackoff = 2 * time.Millisecond
	DefaultWaitMaxBackoff = 50 * time.Millisecond
)

// AcquireWait is [DBLock.Acquire] that waits for the lock while another token holds it, for at most
// maxWait (independent of the lease's ttl) or until ctx ends; [WaitForever] waits for ctx alone.
//
// Between attempts it sleeps with jittered exponential backoff (see [WithWaitBackoff]); a release through
// the same [DBManager] wakes its waiters at once, so goroutines of one process hand the lock over without
// polling delay. A wait that ends without the lock returns an error matching [ErrLockAlreadyAcquired] and
// the reason: [ErrWaitTimeout] (and [context.DeadlineExceeded]) when maxWait ran out, or ctx's error.
//
// If ctx ends while an attempt is in flight after the lock was refused, the error matches
// ErrLockAlreadyAcquired, ctx's error and the attempt's error; that attempt's outcome is unknown, and, as
// with [DBLock.Acquire], its token is kept so that [DBLock.Release] frees the lock if it was taken.
func (l *DBLock) AcquireWait(ctx context.Context, exec SQLExecutor, ttl, maxWait time.Duration) error {
	_, err := l.acquireWait(ctx, exec, "acquire wait", ttl, maxWait)
	return err
}

// acquireWait is AcquireWait that also returns when the successful attempt started, where the lease begins.
func (l *DBLock) acquireWait(ctx context.Context, exec SQLExecutor, op string, ttl, maxWait time.Duration) (time.Time, error) {
	if maxWait <= 0 {
		return time.Time{}, opError(op, l.Key, fmt.Errorf("%w: maximum wait %v is not positive", ErrInvalidOption, maxWait))
	}
	if err := l.check(ctx, exec); err != nil {
		return time.Time{}, opError(op, l.Key, err)
	}
	if _, inTx := exec.(*sql.Tx); inTx {
		// A refused attempt keeps the key's row locked until the transaction ends, so the holder could
		// neither extend nor release: the wait would last until the holder's lease ran out.
		return time.Time{}, opError(op, l.Key, fmt.Errorf("%w: waiting inside a transaction would block the holder; wait on a *sql.DB or *sql.Conn", ErrInvalidOption))
	}
	waitCtx := ctx
	if maxWait != WaitForever {
		var cancel context.CancelFunc
		waitCtx, cancel = context.WithTimeoutCause(ctx, maxWait, ErrWaitTimeout)
		defer cancel()
	}
	m := l.manager
	delay := m.backoffMin
	for refused := false; ; refused = true {
		wake, leave := m.waiters.enter(l.Key)
		// The statement runs under ctx, not under the wait's deadline: a statement cut short by our own
		// timer would leave an outcome nobody knows. One that is in flight when the wait ends finishes.
		start, tokenBefore := time.Now(), l.token
		err := l.acquire(ctx, exec, op, newToken(), ttl)
		if !errors.Is(err, ErrLockAlreadyAcquired) {
			leave()
			if err != nil && refused && ctx.Err() != nil {
				// ctx ended after the lock had been refused: still contention and cancellation to the
				// caller, and the attempt's own error if it was sent (its outcome is then unknown).
				if l.token == tokenBefore { // nothing was sent
					return time.Time{}, opError(op, l.Key, fmt.Errorf("%w: %w", ErrLockAlreadyAcquired, contextError(ctx)))
				}
				return time.Time{}, opError(op, l.Key, fmt.Errorf("%w: %w (the last attempt's outcome is unknown: %w)",
					ErrLockAlreadyAcquired, contextError(ctx), errors.Unwrap(err)))
			}
			return start, err
		}
		if waitCtx.Err() != nil {
			leave()
			return time.Time{}, opError(op, l.Key, fmt.Errorf("%w: %w", ErrLockAlreadyAcquired, contextError(waitCtx)))
		}
		// Equal jitter: at least half the delay, so waiters spread out without hammering the database.
		timer := time.NewTimer(delay/2 + rand.N(delay/2+1))
		select {
		case <-wake:
		case <-timer.C:
		case <-waitCtx.Done():
			timer.Stop()
			leave()
			return time.Time{}, opError(op, l.Key, fmt.Errorf("%w: %w", ErrLockAlreadyAcquired, contextError(waitCtx)))
		}
		timer.Stop()
		leave()
		delay = min(2*delay, m.backoffMax)
	}
}

// waitRoom lets the waiters of a manager sleep until a release through the same manager wakes them.
type waitRoom struct {
	mu   sync.Mutex
	keys map[string]*keyWaiters
}

type keyWaiters struct {
	ch chan struct{} // closed by wake
	n  int
}

// enter registers a waiter for key, before its acquire attempt so that no release between the attempt and
// the sleep is missed. leave must be called once the waiter stops waiting.
func (r *waitRoom) enter(key string) (wake <-chan struct{}, leave func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keys == nil {
		r.keys = make(map[string]*keyWaiters)
	}
	w := r.keys[key]
	if w == nil {
		w = &keyWaiters{ch: make(chan struct{})}
		r.keys[key] = w
	}
	w.n++
	return w.ch, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		w.n--
		if w.n == 0 && r.keys[key] == w {
			delete(r.keys, key)
		}
	}
}

// wake wakes every waiter for key.
func (r *waitRoom) wake(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if w := r.keys[key]; w != nil {
		close(w.ch)
		delete(r.keys, key)
	}
}
