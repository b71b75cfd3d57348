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
	db         *sql.DB
	opts       doOptions
	cancelWork context.CancelCauseFunc

	mu   sync.Mutex
	lost error
}

func newHeartbeat(lock DBLock, db *sql.DB, o doOptions, cancelWork context.CancelCauseFunc) *heartbeat {
	return &heartbeat{lock: lock, db: db, opts: o, cancelWork: cancelWork}
}

func (h *heartbeat) lostErr() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lost
}

// markLost records why the lease is lost and cancels the work, once.
func (h *heartbeat) markLost(reason error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lost != nil {
		return
	}
	h.lost = fmt.Errorf("%w: %w", ErrLockLost, reason)
	h.cancelWork(h.lost)
}

// run extends the lease every interval until ctx ends; it returns once the lease is lost.
func (h *heartbeat) run(ctx context.Context, acquiredAt time.Time) {
	safeFor := h.opts.lockTTL - h.opts.safetyMargin
	deadline := acquiredAt.Add(safeFor)
	// The watchdog fires on its own timer, so a hung extend cannot delay the cancellation.
	watchdog := time.AfterFunc(time.Until(deadline), func() {
		h.markLost(fmt.Errorf("no extension succeeded within %v of the last successful one", safeFor))
	})
	defer watchdog.Stop()

	wait := h.opts.periodicExtendInterval
	for {
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		if h.lostErr() != nil {
			return
		}
		start := time.Now()
		extCtx, cancel := context.WithDeadline(ctx, deadline)
		err := h.lock.Extend(extCtx, h.db)
		cancel()
		switch {
		case err == nil:
			deadline = start.Add(safeFor)
			if !watchdog.Stop() {
				return // fired while the extend ran: the work is already cancelled
			}
			watchdog.Reset(time.Until(deadline))
			wait = h.opts.periodicExtendInterval
		case errors.Is(err, ErrLockAlreadyReleased):
			h.markLost(err)
			return
		case ctx.Err() != nil:
			return
		default:
			logError(h.opts.logger, &h.lock, "extend failed, retrying while the lease is safe: %v", err)
			wait = retryDelay(h.opts.periodicExtendInterval, time.Until(deadline))
		}
	}
}

// retryDelay spaces retries of a failed extend so that several fit in what is left of the lease.
func retryDelay(interval, left time.Duration) time.Duration {
	d := min(interval, left/4, time.Second)
	return max(d, time.Millisecond)
}
