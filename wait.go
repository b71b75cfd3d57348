package distrlock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
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
// After a refused attempt it reads the key's lease, which locks and writes nothing, until the lock looks
// free, and only then sends the acquire again; between reads it sleeps with jittered exponential backoff
// (see [WithWaitBackoff]), never longer than the holder's lease has left. A release through
// the same [DBManager] wakes one of its sleeping waiters for the key at once (the one that entered its
// current sleep first), so goroutines of one process hand the lock over without polling delay and without
// all of them hitting the key's row together. The order is not a queue: an acquire that does not wait, or
// the releaser's next attempt, can come first. Waiters are told apart by key only: with one manager used
// on two databases, a release may wake a waiter of the other database, and the waiter of this one then
// takes the lock after its backoff. A wait that ends without the lock returns an error matching
// [ErrLockAlreadyAcquired] and the reason: [ErrWaitTimeout] (and [context.DeadlineExceeded]) when maxWait
// ran out, or ctx's error.
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
	contended := false  // an attempt was refused: the wait is for another holder
	woken := false      // a release through this manager ended the last sleep
	var transient error // the last step's error that proved it changed nothing
	for {
		wake, leave := m.waiters.enter(l.Key)
		// The statements run under ctx, not under the wait's deadline: a statement cut short by our own
		// timer would leave an outcome nobody knows. One that is in flight when the wait ends finishes.
		start := time.Now()
		var out outcome
		var err error
		nap := time.Duration(math.MaxInt64) // how long the lease that refused us has left, if known
		if contended && !woken {
			// A waiter reads until the lock looks free, then tries: a refused acquire locks the key's row
			// and commits a write, so only the first attempt of a wait may be refused in vain.
			var free bool
			free, nap, err = l.peek(ctx, exec)
			switch {
			case err != nil && classify(err) == failTransient && ctx.Err() == nil:
				out = unchanged
			case err != nil:
				out = notSent
				err = opError(op, l.Key, classified(withContext(ctx, err), classify(err)))
			case free:
				out, err = l.acquire(ctx, exec, op, l.retryToken(), ttl)
			default:
				out = refused
			}
		} else {
			out, err = l.acquire(ctx, exec, op, l.retryToken(), ttl)
		}
		switch {
		case out == refused:
			contended, transient = true, nil
		case out == unchanged && !errors.Is(err, ErrReadOnly) && ctx.Err() == nil:
			// A deadlock, a lock wait timeout, a busy database: nothing changed, so try again.
			transient = err
		default:
			// Taken, or failed: a wake that came during the attempt goes on to the next waiter unless
			// the lock was taken.
			leave(err == nil)
			if err != nil && contended && ctx.Err() != nil {
				// ctx ended after the lock had been refused: still contention and cancellation to the
				// caller, and the attempt's own error if it was sent (its outcome is then unknown).
				if out != lost {
					return time.Time{}, opError(op, l.Key, fmt.Errorf("%w: %w", ErrLockAlreadyAcquired, contextError(ctx)))
				}
				return time.Time{}, opError(op, l.Key, fmt.Errorf("%w: %w (the last attempt's outcome is unknown: %w)",
					ErrLockAlreadyAcquired, contextError(ctx), errors.Unwrap(err)))
			}
			return start, err
		}
		if waitCtx.Err() != nil {
			leave(false)
			return time.Time{}, l.waitEnded(op, waitCtx, contended, transient)
		}
		// Equal jitter: at least half the delay, so waiters spread out without hammering the database; and
		// no longer than the lease that refused us has left.
		timer := time.NewTimer(min(delay/2+rand.N(delay/2+1), max(nap, 0)))
		woken = false
		select {
		case <-wake:
			woken = true
		case <-timer.C:
		case <-waitCtx.Done():
			timer.Stop()
			leave(false)
			return time.Time{}, l.waitEnded(op, waitCtx, contended, transient)
		}
		timer.Stop()
		leave(true) // it tries again at once
		delay = min(2*delay, m.backoffMax)
	}
}

// peek reads whether the lock looks free to this DBLock: no row, released, expired, or held under the
// token of its own lost attempt. When it is held by another, left is how long its lease has to run.
func (l *DBLock) peek(ctx context.Context, exec SQLExecutor) (free bool, left time.Duration, err error) {
	var token sql.NullString
	var leftMicros sql.NullInt64
	err = exec.QueryRowContext(ctx, l.manager.q.peek, l.Key).Scan(&token, &leftMicros)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return true, 0, nil
	case err != nil:
		return false, 0, err
	case !leftMicros.Valid || leftMicros.Int64 <= 0, l.pending != "" && token.String == l.pending:
		return true, 0, nil
	}
	return false, time.Duration(leftMicros.Int64) * time.Microsecond, nil
}

// waitEnded is the error of a wait that ran out: contention if an attempt was refused, and the last
// attempt's error if it failed without changing anything.
func (l *DBLock) waitEnded(op string, waitCtx context.Context, contended bool, transient error) error {
	cause := contextError(waitCtx)
	switch {
	case transient != nil && contended:
		return opError(op, l.Key, fmt.Errorf("%w: %w (the last attempt failed: %w)", ErrLockAlreadyAcquired, cause, errors.Unwrap(transient)))
	case transient != nil:
		return opError(op, l.Key, fmt.Errorf("%w (the last attempt failed: %w)", cause, errors.Unwrap(transient)))
	default:
		return opError(op, l.Key, fmt.Errorf("%w: %w", ErrLockAlreadyAcquired, cause))
	}
}

// waitRoom lets the waiters of a manager sleep until a release through the same manager wakes them. A
// release wakes one waiter, the one that entered first, so that the hand-over is one attempt and not a stampede
// of every waiter on the key's row; a waiter that stops waiting without trying after its wake passes the
// wake on.
type waitRoom struct {
	mu   sync.Mutex
	keys map[string][]*waiter // per key, in the order they entered
}

type waiter struct {
	ch    chan struct{} // closed by wake
	woken bool
}

// enter registers a waiter for key, before its acquire attempt so that no release between the attempt and
// the sleep is missed. leave must be called once the waiter stops waiting: with tried true if it has made,
// or is about to make, an attempt since it was woken, false if it gives up.
func (r *waitRoom) enter(key string) (wake <-chan struct{}, leave func(tried bool)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keys == nil {
		r.keys = make(map[string][]*waiter)
	}
	w := &waiter{ch: make(chan struct{})}
	r.keys[key] = append(r.keys[key], w)
	return w.ch, func(tried bool) {
		r.mu.Lock()
		defer r.mu.Unlock()
		ws := r.keys[key]
		if i := slices.Index(ws, w); i >= 0 {
			ws = slices.Delete(ws, i, i+1)
		}
		if len(ws) == 0 {
			delete(r.keys, key)
		} else {
			r.keys[key] = ws
		}
		if w.woken && !tried {
			r.wakeLocked(key)
		}
	}
}

// wake wakes the longest-waiting waiter for key that has not been woken yet.
func (r *waitRoom) wake(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.wakeLocked(key)
}

func (r *waitRoom) wakeLocked(key string) {
	for _, w := range r.keys[key] {
		if !w.woken {
			w.woken = true
			close(w.ch)
			return
		}
	}
}
