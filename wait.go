package distrlock

import (
	"cmp"
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

// AcquireWait is [DBLock.Acquire] that waits while another token holds the lock, for at most maxWait or
// until ctx ends ([WaitForever] waits for ctx alone), taking a released lock in the order the waiters
// queued. A wait that ends without the lock returns an error matching [ErrLockAlreadyAcquired] and the
// reason: [ErrWaitTimeout] (and [context.DeadlineExceeded]) when maxWait ran out between statements (one in
// flight finishes under ctx), or ctx's error.
func (l *DBLock) AcquireWait(ctx context.Context, exec SQLExecutor, ttl, maxWait time.Duration) error {
	_, err := l.acquireWait(ctx, exec, "acquire wait", "", ttl, maxWait)
	return err
}

// acquireWait is AcquireWait that also returns when the successful attempt started, where the lease begins;
// static, unless empty, is the token of every attempt (WithToken).
//
// A wait goes: one attempt; if it is refused, a ticket in the key's queue (enqueue.sql, the wait's only write
// unless it fails and is tried again); then reads of the key's row (peek.sql) until the lock is free and it is
// this ticket's turn (the ticket after the queue's head at once, each later one a grace later), an attempt,
// and reads again if another waiter came first. Between reads it sleeps for half as long as the holder has
// held the lock so far (the longer a lock is held, the less likely it is to be released in the next instant),
// times its place in the queue, within [backoffMin, backoffMax], never past the holder's lease; with a
// listening Notifier, until a release notice or the lease's end. A release through this manager ends a sleep
// at once and the waiter attempts without reading first; so does a notice for the next ticket, while a waiter
// with others before it reads after a short pause. A wait without a static token that starts within backoffMin
// of a release through this manager (not in a *sql.Tx, with a listening Notifier) that freed the lock for
// queued tickets first sleeps out that moment, then takes a ticket without an attempt (one that would run out
// by then attempts at once): the next waiter of another process is taking the lock, and an attempt and a
// ticket sent now would only reach the key's row at the same time and slow it.
func (l *DBLock) acquireWait(ctx context.Context, exec SQLExecutor, op, static string, ttl, maxWait time.Duration) (_ time.Time, err error) {
	if maxWait <= 0 {
		return time.Time{}, opError(op, l.Key, fmt.Errorf("%w: maximum wait %v is not positive", ErrInvalidOption, maxWait))
	}
	if err := l.check(ctx, exec); err != nil {
		return time.Time{}, opError(op, l.Key, err)
	}
	if _, inTx := exec.(*sql.Tx); inTx {
		// A refused attempt may keep the key's row locked until the transaction ends, so the holder could
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
	var notices <-chan struct{}
	if m.notifier != nil {
		var stop func()
		notices, stop = m.notifier.Subscribe(l.Key)
		defer stop()
	}
	w := waitState{lock: l, exec: exec, grace: m.handoverGrace()}
	observing := m.observing(l.logger)
	var began time.Time // the first attempt's start, when observing
	attempts := 0       // acquire statements, when observing
	waiting := false    // EventWaitStarted was reported
	if observing {
		began = time.Now()
		// Deferred before the dequeue, so it runs after it: the dequeue is part of the wait's scope.
		defer func() {
			if waiting {
				e := Event{Kind: EventWaitEnded, Key: l.Key, Err: err, Duration: time.Since(began), Attempts: attempts}
				if err == nil {
					e.Fence, e.Owner = l.fence, l.Owner
				}
				m.emit(ctx, l.logger, e)
			}
		}()
	}
	defer func() {
		if err != nil && w.ticket > 0 {
			w.dequeue(ctx)
		}
	}()
	attempt := func() (outcome, error) {
		if observing {
			attempts++
		}
		return l.acquireTicket(ctx, exec, op, cmp.Or(static, l.retryToken()), ttl, w.ticket, w.grace)
	}
	// A release of this manager has just freed the lock for waiters queued in other processes: let the next
	// one take it, then queue without an attempt (see above). Not with a static token, which would take back
	// the lock it released (acquire.sql), nor when the wait would run out first: it attempts now.
	stepAside := false
	if d := m.waiters.stepAside(l.Key, time.Now()); d > 0 && static == "" {
		if deadline, ok := waitCtx.Deadline(); !ok || deadline.After(time.Now().Add(d)) {
			t := time.NewTimer(d)
			select {
			case <-t.C:
				stepAside = true
			case <-ctx.Done():
				t.Stop()
				return time.Time{}, waitCancelled(op, l.Key, ctx)
			}
		}
	}
	contended := false  // an attempt was refused: the wait is for another holder
	woken := false      // a release ended the last sleep: attempt without reading first
	var transient error // the last step's error that proved it changed nothing
	failures := 0       // transient failures in a row
	for {
		wake, leave := m.waiters.enter(l.Key, w.ticket)
		// The statements run under ctx, not under the wait's deadline: a statement cut short by our own
		// timer would leave an outcome nobody knows. One that is in flight when the wait ends finishes.
		start := time.Now()
		var out outcome
		var err error
		sleep := time.Duration(0)
		if contended && !woken {
			var view peekView
			view, err = l.peek(ctx, exec)
			switch {
			case err != nil:
				f := classify(err)
				out = notSent
				if f == failTransient && ctx.Err() == nil {
					out = unchanged // retried below, like an attempt that failed the same way
				}
				err = opError(op, l.Key, classified(withContext(ctx, err), f))
			default:
				if sleep = w.sleepFor(view, m.notifier); sleep <= 0 {
					out, err = attempt()
				} else {
					out = refused
				}
			}
		} else if !contended && (stepAside || m.waiters.queued(l.Key)) {
			// Others of this manager wait for the key with tickets, or this manager just freed it for
			// others': an attempt without one would be refused, so queue at once.
			out = refused
		} else {
			out, err = attempt()
		}
		switch {
		case out == refused, out == unchanged && isDeadlock(err) && ctx.Err() == nil:
			// A deadlock or a Galera certification conflict: another client wrote the key's row at the
			// same moment, which is contention too.
			if observing && !waiting {
				waiting = true
				e := Event{Kind: EventWaitStarted, Key: l.Key, Attempts: attempts}
				// The wait's later statements, its ticket's included, and its end run in the observer's
				// scope (the deferred EventWaitEnded reads ctx).
				ctx = m.startSpan(ctx, e)
				m.emit(ctx, l.logger, e)
			}
			if waitCtx.Err() == nil && (!contended || (w.ticket == 0 || w.passed) && w.enqueueDue()) {
				// A wait that has run out takes no ticket: it would only have to give it back. A ticket
				// that the queue's head passed when it emptied the queue (a caller without one took the
				// lock) is renewed, or the releaser's attempts would take the lock before this waiter's
				// turn. A wait whose ticket failed takes one at a later refusal (see enqueue).
				w.passed = false
				w.enqueue(ctx)
			}
			contended = true
			transient, failures = nil, 0
		case out == unchanged && classify(err) == failTransient && ctx.Err() == nil:
			// A deadlock, a lock wait timeout, a busy database, a connection that could not be made:
			// nothing changed, so try again. A read-only or unmigrated database, a moved session clock or
			// a pooler's lost prepared statement would fail the same way again: those end the wait.
			transient = err
			failures++
		default:
			// Taken, or failed: a wake that came during the attempt goes on to the next waiter unless
			// the lock was taken.
			leave(err == nil)
			if err != nil && contended && ctx.Err() != nil {
				// ctx ended after the lock had been refused: still contention and cancellation to the
				// caller, and the attempt's own error if it was sent (its outcome is then unknown).
				if out != lost {
					return time.Time{}, waitCancelled(op, l.Key, ctx)
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
		if sleep <= 0 {
			// Refused by a race with another waiter, or a transient failure: read again shortly, and
			// after failures in a row twice as late each time, up to the backoff's maximum, so that an
			// unreachable database is not sent a connection attempt every millisecond.
			d := m.backoffMin
			for range min(failures-1, 16) {
				d = min(2*d, m.backoffMax)
			}
			sleep = d/2 + rand.N(d/2+1)
		}
		timer := time.NewTimer(sleep)
		woken = false
		select {
		case <-wake:
			woken = true
		case <-notices:
			if w.ahead == 0 {
				woken = true
				break
			}
			// Others are before this waiter: let the next one take the lock before reading where the
			// queue stands, rather than add a statement to the hand-over.
			timer.Reset(m.backoffMin)
			select {
			case <-timer.C:
			case <-waitCtx.Done():
			}
		case <-timer.C:
		case <-waitCtx.Done():
		}
		timer.Stop()
		if waitCtx.Err() != nil {
			leave(false)
			return time.Time{}, l.waitEnded(op, waitCtx, contended, transient)
		}
		leave(true) // it tries again at once
	}
}

// waitState is what one AcquireWait knows of its place in the key's queue.
type waitState struct {
	lock          *DBLock
	exec          SQLExecutor
	grace         time.Duration
	ticket        int64 // 0 until enqueued
	enqueueErrors int   // failed attempts to take a ticket in a row
	enqueueSkip   int   // refusals to let pass before the next attempt to take a ticket
	ahead         int64 // tickets before this one at the last read
	passed        bool  // the last read found the queue emptied past this ticket by another caller
}

// enqueue takes the wait's ticket. Without one the wait goes on as a caller that has none, behind the
// queue, and tries again at a later refusal: a caller without a ticket lets every queued ticket go first,
// so a fleet that keeps queueing would keep it waiting.
func (w *waitState) enqueue(ctx context.Context) {
	m := w.lock.manager
	var ticket int64
	err := retryConflicts(ctx, w.exec, func() (err error) {
		ticket, err = m.spec.enqueue(ctx, m.stmts.executor(w.exec), m.q.enqueue, w.lock.Key)
		return err
	})
	if err != nil {
		// sql.ErrNoRows: the key's first acquires all failed (on MariaDB a deadlock between first
		// inserts, which counts as contention), so there is no queue yet; the next attempt creates the
		// row if nobody else's does, and the ticket is tried again at the next refusal. Other errors: at
		// the next refusal, then 2, 4, … 1024 later, so that a statement that keeps failing costs a few
		// statements, not one per read. A failed renewal of a passed ticket counts only the reads that
		// find it passed again.
		if !errors.Is(err, sql.ErrNoRows) {
			w.enqueueSkip = 1<<min(w.enqueueErrors, 10) - 1
			w.enqueueErrors++
		}
		return
	}
	w.ticket, w.enqueueErrors, w.enqueueSkip = ticket, 0, 0
}

// enqueueDue reports whether a wait that needs a ticket takes one at this refusal (see enqueue).
func (w *waitState) enqueueDue() bool {
	if w.enqueueSkip > 0 {
		w.enqueueSkip--
		return false
	}
	return true
}

// dequeueTimeout bounds the statement by which a waiter that gives up leaves the queue.
const dequeueTimeout = time.Second

// dequeue leaves the key's queue after a wait that ended without the lock, where the queue allows (see
// dequeue.sql), even when ctx has ended; a failure only leaves the ticket to cost the next ones a grace.
func (w *waitState) dequeue(ctx context.Context) {
	m := w.lock.manager
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dequeueTimeout)
	defer cancel()
	_, _ = w.exec.ExecContext(ctx, m.q.dequeue, m.spec.dequeueArgs(w.lock.Key, w.ticket)...)
}

// sleepFor returns how long to sleep before the next read, or 0 to attempt now.
func (w *waitState) sleepFor(v peekView, n Notifier) time.Duration {
	w.ahead = 0
	if w.ticket > 0 {
		w.ahead = max(w.ticket-v.head-1, 0)
		// Passed, with nobody queued after it: no release publishes, and a caller without a ticket needs
		// no grace. A passed ticket with others queued still goes first (acquire.sql), so it is kept.
		w.passed = v.head >= w.ticket && v.tail <= v.head
	}
	if v.free {
		ahead := w.ahead // queued tickets this caller lets go first
		if w.ticket == 0 {
			ahead = min(max(v.tail-v.head, 0), 4)
		}
		turn := time.Duration(ahead)*w.grace - v.freeFor
		if turn <= 0 {
			return 0
		}
		// The waiters before this one are likely to take it sooner: look again after a short poll.
		return min(turn, w.poll(0, ahead+1))
	}
	if n != nil && n.Listening() && w.ticket > v.head {
		// A release that tickets wait for publishes a notice; an expiry does not, so wake at the lease's
		// end at the latest. A waiter without a ticket in the queue (its enqueue failed, or a later
		// ticket was served first) would get no notice, so it polls.
		return min(v.left, notifierPollCap)
	}
	return max(min(w.poll(v.heldFor, w.ahead+1), v.left), 1)
}

// poll is the sleep between reads of a waiter at place in the queue (1: next) while the lock has been
// held for heldFor: half that, at least backoffMin, times the place, at most backoffMax, with jitter.
func (w *waitState) poll(heldFor time.Duration, place int64) time.Duration {
	m := w.lock.manager
	place = min(max(place, 1), 64)
	d := min(max(heldFor/2, m.backoffMin)*time.Duration(place), m.backoffMax)
	return d/2 + rand.N(d/2+1)
}

// notifierPollCap bounds a waiter's sleep while a Notifier listens, in case a notice is lost.
const notifierPollCap = time.Second

// peekView is a waiter's read of the key's row.
type peekView struct {
	free       bool          // no row, released, expired, or held under the token of this lock's lost attempt
	left       time.Duration // the lease left, when held
	freeFor    time.Duration // how long it has been free, when free
	heldFor    time.Duration // how long it has been held, when held
	head, tail int64         // the queue: the last ticket served, and the last issued
}

// peek reads the key's row: whether the lock looks free to this DBLock, for how long, and the queue.
func (l *DBLock) peek(ctx context.Context, exec SQLExecutor) (peekView, error) {
	var token sql.NullString
	var left, freeFor, heldFor sql.NullInt64
	var v peekView
	err := l.manager.stmts.executor(exec).QueryRowContext(ctx, l.manager.q.peek, l.Key).Scan(&token, &left, &freeFor, &heldFor, &v.head, &v.tail)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return peekView{free: true, freeFor: math.MaxInt64}, nil
	case err != nil:
		return peekView{}, err
	case l.pending != "" && token.String == l.pending:
		// Held under the token of this lock's own lost attempt: its turn is now, whatever the queue says.
		v.free, v.freeFor = true, time.Duration(math.MaxInt64)
		return v, nil
	case !left.Valid || left.Int64 <= 0:
		v.free = true
		v.freeFor = time.Duration(math.MaxInt64)
		if freeFor.Valid && freeFor.Int64 < math.MaxInt64/1000 {
			v.freeFor = time.Duration(freeFor.Int64) * time.Microsecond
		}
		return v, nil
	}
	v.left = time.Duration(left.Int64) * time.Microsecond
	if heldFor.Valid {
		v.heldFor = time.Duration(max(heldFor.Int64, 0)) * time.Microsecond
	}
	return v, nil
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
		return waitCancelled(op, l.Key, waitCtx)
	}
}

// waitCancelled is the error of a wait for a lock held by another that ended with ctx: contention and
// ctx's error (or its cause).
func waitCancelled(op, key string, ctx context.Context) error {
	return opError(op, key, fmt.Errorf("%w: %w", ErrLockAlreadyAcquired, contextError(ctx)))
}

// waitRoom lets the waiters of a manager sleep until a release through the same manager wakes them. A
// release wakes one waiter, the one that entered first, so that the hand-over is one attempt and not a stampede
// of every waiter on the key's row; a waiter that stops waiting without trying after its wake passes the
// wake on.
type waitRoom struct {
	mu   sync.Mutex
	keys map[string][]*waiter // per key, in the order they entered

	// handed holds, per key, until when a new wait of this manager lets the queued waiters of other
	// processes take the lock its release just freed for them; sweepAt is the size that next sweeps it.
	handed  map[string]time.Time
	sweepAt int
}

type waiter struct {
	ch     chan struct{} // closed by wake
	woken  bool
	ticket int64 // its place in the key's queue, 0 before it has one
}

// enter registers a waiter for key, before its acquire attempt so that no release between the attempt and
// the sleep is missed. leave must be called once the waiter stops waiting: with tried true if it has made,
// or is about to make, an attempt since it was woken, false if it gives up.
func (r *waitRoom) enter(key string, ticket int64) (wake <-chan struct{}, leave func(tried bool)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keys == nil {
		r.keys = make(map[string][]*waiter)
	}
	w := &waiter{ch: make(chan struct{}), ticket: ticket}
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

// wake wakes the waiter for key that is next in the queue (see wakeLocked) and has not been woken yet.
func (r *waitRoom) wake(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.wakeLocked(key)
}

func (r *waitRoom) wakeLocked(key string) {
	// The queue's order: the smallest ticket first, then those without one in the order they entered.
	var next *waiter
	for _, w := range r.keys[key] {
		if !w.woken && (next == nil || w.ticket > 0 && (next.ticket == 0 || w.ticket < next.ticket)) {
			next = w
		}
	}
	if next != nil {
		next.woken = true
		close(next.ch)
	}
}

// queued reports whether a waiter of this manager holds a ticket for key.
func (r *waitRoom) queued(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.keys[key] {
		if w.ticket > 0 {
			return true
		}
	}
	return false
}

// handOver records that a release freed key for waiters queued in other processes, so that a wait of this
// manager that starts before until steps aside (see stepAside).
func (r *waitRoom) handOver(key string, until time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.handed == nil {
		r.handed = make(map[string]time.Time)
	}
	if len(r.handed) >= r.sweepAt {
		// Entries live for a moment: sweeping when the map has doubled keeps it to the keys handed over
		// in the last moment, at a constant cost per entry.
		now := time.Now()
		for k, t := range r.handed {
			if !now.Before(t) {
				delete(r.handed, k)
			}
		}
		r.sweepAt = max(2*len(r.handed), 16)
	}
	r.handed[key] = until
}

// stepAside returns how long a wait for key that starts now should let other processes' waiters take the
// lock first: until the instant handOver recorded, or 0 when none is pending.
func (r *waitRoom) stepAside(key string, now time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	until, ok := r.handed[key]
	if !ok {
		return 0
	}
	if d := until.Sub(now); d > 0 {
		return d
	}
	delete(r.handed, key)
	return 0
}
