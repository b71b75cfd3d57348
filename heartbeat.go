package distrlock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"
)

// heartbeat extends a lease until it is stopped, and cancels the work it protects once the lease may have
// ended: the lease is trusted until the start of the last successful acquire or extend plus TTL less the
// safety margin, because the server started counting the TTL no earlier than that.
type heartbeat struct {
	lock       DBLock // a copy: the caller may read its own DBLock while the heartbeat runs
	batcher    *extendBatcher
	opts       doOptions
	cancelWork context.CancelCauseFunc
	logCtx     context.Context // the caller's values, for the events and logs

	cancel context.CancelFunc // stops run
	start  *time.Timer        // starts run when the first extend is to be requested
	done   chan struct{}      // closed when run has returned

	once sync.Once // leaves the batcher

	mu   sync.Mutex
	lost error
}

// startHeartbeat starts extending lock, acquired by a statement sent at acquiredAt, until stop. Until the
// first extend is requested (half an interval before it is due) the heartbeat is only a timer: nothing can
// go wrong before then, since the lease is trusted for longer than an interval, and work shorter than that
// costs no goroutine.
func startHeartbeat(callCtx context.Context, lock DBLock, db *sql.DB, o doOptions, cancelWork context.CancelCauseFunc, acquiredAt time.Time) *heartbeat {
	ctx, cancel := context.WithCancel(context.Background())
	h := &heartbeat{
		lock: lock, batcher: lock.manager.batchers.join(lock.manager, db), opts: o,
		cancelWork: cancelWork, logCtx: context.WithoutCancel(callCtx), cancel: cancel, done: make(chan struct{}),
	}
	// The watchdog must run by the time the lease stops being trusted, even when an interval that is too
	// long puts the first extend after it.
	interval := o.periodicExtendInterval
	first := min(interval-interval/2, o.lockTTL-o.safetyMargin)
	h.start = time.AfterFunc(time.Until(acquiredAt.Add(first)), func() {
		defer close(h.done)
		h.run(ctx, acquiredAt)
	})
	return h
}

// stop ends the heartbeat, waits for its goroutine (and, if no other heartbeat uses the batcher, for the
// batcher's) and reports whether the lease was lost.
func (h *heartbeat) stop() error {
	h.cancel()
	if !h.start.Stop() { // run has started: wait for it
		<-h.done
	}
	h.once.Do(func() { h.lock.manager.batchers.leave(h.batcher) })
	return h.lostErr()
}

func (h *heartbeat) lostErr() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lost
}

// markLost records why the lease is lost and cancels the work, once.
func (h *heartbeat) markLost(reason error) {
	h.mu.Lock()
	if h.lost != nil {
		h.mu.Unlock()
		return
	}
	h.lost = fmt.Errorf("%w: %w", ErrLockLost, reason)
	h.cancelWork(h.lost)
	lost := h.lost
	h.mu.Unlock()
	// Outside the lock: an observer may ask the Lease whether it is lost.
	if m := h.lock.manager; m.observing(h.opts.logger) {
		m.emit(h.logCtx, h.opts.logger, Event{Kind: EventLeaseLost, Key: h.lock.Key, Fence: h.lock.fence, Owner: h.lock.Owner, Err: lost})
	}
}

type extendResult struct {
	start  time.Time // when the statement was sent
	err    error
	shared bool // the statement extended other locks too
}

// run extends the lease every interval until ctx ends or the lease is lost. The extends go through the
// manager's batcher for db, which may send one earlier, in the statement of another lock's extend; the
// watchdog fires on time even when an extend hangs.
func (h *heartbeat) run(ctx context.Context, acquiredAt time.Time) {
	// A request not yet sent when run returns is dropped by the batcher.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	interval := h.opts.periodicExtendInterval
	safeFor := h.opts.lockTTL - h.opts.safetyMargin
	deadline := acquiredAt.Add(safeFor)
	watchdog := time.NewTimer(time.Until(deadline))
	defer watchdog.Stop()
	// Extends are due one interval after the start of the last successful statement, as the lease is
	// counted from there, so a slow acquire or extend does not push the next extend towards the deadline.
	// The request goes to the batcher half an interval early, so that it can share an earlier statement.
	due := acquiredAt.Add(interval)
	tick := time.NewTimer(time.Until(due) - interval/2)
	defer tick.Stop()

	var results chan extendResult // the request in the batcher or in flight, if any
	retry := false                // the last extend failed: the next goes alone
	var failed error              // why the last extend failed, for the loss's cause
	for {
		select {
		case <-ctx.Done():
			return
		case <-watchdog.C:
			if failed != nil {
				h.markLost(fmt.Errorf("no extension succeeded within %v of the start of the last successful one: %w", safeFor, failed))
			} else {
				h.markLost(fmt.Errorf("no extension succeeded within %v of the start of the last successful one", safeFor))
			}
			return
		case <-tick.C:
			r := &extendRequest{
				lock: &h.lock, ttl: h.lock.TTL, latest: due, safeUntil: deadline, interval: interval, alone: retry,
				gone: ctx.Done(), result: make(chan extendResult, 1),
			}
			if !h.batcher.enqueue(ctx, r) {
				return
			}
			results = r.result
		case r := <-results:
			results = nil
			if m := h.lock.manager; m.observing(h.opts.logger) && (r.err == nil || ctx.Err() == nil) {
				var err error
				if r.err != nil {
					err = opError("extend", h.lock.Key, r.err)
				}
				m.emit(h.logCtx, h.opts.logger, Event{
					Kind: EventExtend, Key: h.lock.Key, Fence: h.lock.fence, Owner: h.lock.Owner,
					Err: err, Duration: time.Since(r.start), Shared: r.shared,
				})
			}
			switch {
			case r.err == nil:
				retry, failed = false, nil
				deadline = r.start.Add(safeFor)
				watchdog.Reset(time.Until(deadline))
				due = r.start.Add(interval)
				tick.Reset(time.Until(due) - interval/2)
			case errors.Is(r.err, ErrLockAlreadyReleased):
				h.markLost(fmt.Errorf("extend: %w", r.err))
				return
			case ctx.Err() != nil:
				return
			case !time.Now().Before(deadline):
				h.markLost(fmt.Errorf("no extension succeeded within %v of the start of the last successful one: %w", safeFor, r.err))
				return
			default:
				logLegacyError(h.logCtx, h.opts.logger, &h.lock, "extend failed, retrying while the lease is safe: %v", r.err)
				// Due after a pause, alone: a batch that failed may have failed for one of its locks, and
				// must not fail again for it. A retry that would start after the deadline is pointless: the
				// watchdog fires first.
				retry, failed = true, r.err
				due = time.Now().Add(retryDelay(interval))
				tick.Reset(0)
			}
		}
	}
}

// attemptDeadline bounds an extend attempt that starts at start while the lease is trusted until deadline.
// An attempt gets at most one interval and at most half of the time left, so that a hung connection leaves
// time for retries (on another connection of the pool); only when half would be shorter than the pause
// between retries does the attempt get all that is left. None outlives the deadline, after which its
// success would prove nothing.
func attemptDeadline(start, deadline time.Time, interval time.Duration) time.Time {
	left := deadline.Sub(start)
	d := min(interval, left/2)
	if d < retryDelay(interval) {
		d = left
	}
	return start.Add(d)
}

// retryDelay spaces the retries of a failed extend: a quarter of the interval, at least 10 ms and at most
// 1 s, so that several retries fit in what is left of the lease without flooding a struggling server.
func retryDelay(interval time.Duration) time.Duration {
	return min(max(interval/4, 10*time.Millisecond), time.Second)
}
