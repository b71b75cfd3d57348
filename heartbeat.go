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

	cancel context.CancelFunc // stops run
	done   chan struct{}      // closed when run has returned

	mu   sync.Mutex
	lost error
}

// startHeartbeat starts extending lock, acquired by a statement sent at acquiredAt, until stop.
func startHeartbeat(lock DBLock, db *sql.DB, o doOptions, cancelWork context.CancelCauseFunc, acquiredAt time.Time) *heartbeat {
	ctx, cancel := context.WithCancel(context.Background())
	h := &heartbeat{lock: lock, db: db, opts: o, cancelWork: cancelWork, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		h.run(ctx, acquiredAt)
	}()
	return h
}

// stop ends the heartbeat, waits for its goroutines and reports whether the lease was lost.
func (h *heartbeat) stop() error {
	h.cancel()
	<-h.done
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
	defer h.mu.Unlock()
	if h.lost != nil {
		return
	}
	h.lost = fmt.Errorf("%w: %w", ErrLockLost, reason)
	h.cancelWork(h.lost)
}

type extendResult struct {
	start time.Time
	err   error
}

// run extends the lease every interval until ctx ends or the lease is lost. Each extend runs in a goroutine
// of its own so that the watchdog fires on time even when an extend hangs; run waits for that goroutine
// before it returns.
func (h *heartbeat) run(ctx context.Context, acquiredAt time.Time) {
	safeFor := h.opts.lockTTL - h.opts.safetyMargin
	deadline := acquiredAt.Add(safeFor)
	watchdog := time.NewTimer(time.Until(deadline))
	defer watchdog.Stop()
	// Extends are spaced from the start of the last successful statement, as the lease is: a slow acquire
	// or extend does not push the next extend towards the deadline.
	tick := time.NewTimer(untilNext(acquiredAt, h.opts.periodicExtendInterval))
	defer tick.Stop()

	done := make(chan extendResult, 1)
	var cancelExtend context.CancelFunc
	defer func() {
		if cancelExtend != nil { // an extend is in flight: stop it and wait for it
			cancelExtend()
			<-done
		}
	}()

	for {
		select {
		case <-ctx.Done():
			return
		case <-watchdog.C:
			h.markLost(fmt.Errorf("no extension succeeded within %v of the start of the last successful one", safeFor))
			return
		case <-tick.C:
			start := time.Now()
			extCtx, cancel := context.WithDeadline(ctx, attemptDeadline(start, deadline, h.opts.periodicExtendInterval))
			cancelExtend = cancel
			go func() {
				done <- extendResult{start: start, err: h.lock.extendCause(extCtx, h.db, h.lock.TTL)}
			}()
		case r := <-done:
			cancelExtend()
			cancelExtend = nil
			switch {
			case r.err == nil:
				deadline = r.start.Add(safeFor)
				watchdog.Reset(time.Until(deadline))
				tick.Reset(untilNext(r.start, h.opts.periodicExtendInterval))
			case errors.Is(r.err, ErrLockAlreadyReleased):
				h.markLost(fmt.Errorf("extend: %w", r.err))
				return
			case ctx.Err() != nil:
				return
			case !time.Now().Before(deadline):
				h.markLost(fmt.Errorf("no extension succeeded within %v of the start of the last successful one: %w", safeFor, r.err))
				return
			default:
				logError(h.opts.logger, &h.lock, "extend failed, retrying while the lease is safe: %v", r.err)
				// A retry that would start after the deadline is pointless: the watchdog fires first.
				tick.Reset(retryDelay(h.opts.periodicExtendInterval))
			}
		}
	}
}

// untilNext is the time from now until one interval after from, or 0 if that has passed.
func untilNext(from time.Time, interval time.Duration) time.Duration {
	return max(0, interval-time.Since(from))
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
