package distrlock

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"
)

// Lease is a lock held in the background: its lease is extended automatically until [Lease.Release], and
// [Lease.Context] ends as soon as the lease may have ended on the server. Use it where the protected work
// is not one function call: a leader's term, a long-lived worker. Its methods are safe for concurrent use.
type Lease struct {
	lock   DBLock // a copy, read-only after Hold
	db     *sql.DB
	opts   doOptions
	ctx    context.Context
	cancel context.CancelCauseFunc
	hb     *heartbeat

	once       sync.Once
	releaseErr error
}

// Hold acquires the lock (once, or waiting with [WithWait]) and keeps extending its lease in the background
// on db, with the heartbeat and options of [DBLock.DoExclusively], until [Lease.Release]. ctx bounds the
// acquisition only: the lease and its context outlive it, and keep its values.
func (l *DBLock) Hold(ctx context.Context, db *sql.DB, options ...DoOption) (*Lease, error) {
	o, err := newDoOptions(options)
	if err != nil {
		return nil, opError("hold", l.Key, err)
	}
	leaseCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	hb, err := l.acquireAndBeat(ctx, "hold", db, o, cancel)
	if err != nil {
		cancel(err)
		return nil, err
	}
	held := *l
	if o.ownerSet {
		held.Owner = o.owner // the acquisition's, for the release's event
	}
	return &Lease{lock: held, db: db, opts: o, ctx: leaseCtx, cancel: cancel, hb: hb}, nil
}

// Keep starts extending, on db and in the background as [DBLock.Hold] does, the lease this DBLock holds,
// such as one acquired inside a transaction that has since committed; it sends no statement itself and
// trusts the lease from the DBLock's last acquire or extend. It returns [ErrLockNotAcquired] when the
// DBLock does not hold its lock, an error matching [ErrLockLost] when the lease may already have ended, and
// [ErrInvalidOption] for options that shape an acquisition or a [WithLockTTL] other than the DBLock's TTL.
// If the transaction rolled back, the first extend fails and the lease's context ends with ErrLockLost.
func (l *DBLock) Keep(ctx context.Context, db *sql.DB, options ...DoOption) (*Lease, error) {
	const op = "keep"
	if err := l.check(ctx, db); err != nil {
		return nil, opError(op, l.Key, err)
	}
	if !l.held {
		return nil, opError(op, l.Key, ErrLockNotAcquired)
	}
	o, err := newDoOptions(append([]DoOption{WithLockTTL(l.TTL)}, options...))
	if err != nil {
		return nil, opError(op, l.Key, err)
	}
	switch {
	case o.lockTTL != l.TTL:
		return nil, opError(op, l.Key, fmt.Errorf("%w: TTL %v differs from the lease's %v", ErrInvalidOption, o.lockTTL, l.TTL))
	case o.maxWait > 0 || o.tokenSet || o.ownerSet || o.dataSet:
		return nil, opError(op, l.Key, fmt.Errorf("%w: Keep acquires nothing, so it takes no WithWait, WithToken, WithOwner or WithData", ErrInvalidOption))
	}
	if safe := l.since.Add(o.lockTTL - o.safetyMargin); !time.Now().Before(safe) {
		return nil, opError(op, l.Key, fmt.Errorf("%w: the lease was trusted until %v after its last acquire or extend", ErrLockLost, o.lockTTL-o.safetyMargin))
	}
	if o.intervalTooLong {
		logError(ctx, o.logger, l, "extend interval %v is not shorter than TTL %v less safety margin %v: "+
			"the lease will be lost before it is extended", o.periodicExtendInterval, o.lockTTL, o.safetyMargin)
	}
	leaseCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	hb := startHeartbeat(ctx, *l, db, o, cancel, l.since)
	return &Lease{lock: *l, db: db, opts: o, ctx: leaseCtx, cancel: cancel, hb: hb}, nil
}

// Hold is [DBLock.Hold] on a new lock for key.
func (m *DBManager) Hold(ctx context.Context, db *sql.DB, key string, options ...DoOption) (*Lease, error) {
	lock, err := m.NewLock(ctx, db, key)
	if err != nil {
		return nil, err
	}
	return lock.Hold(ctx, db, options...)
}

// Context returns a context that ends when the lease may have ended (its [context.Cause] then matches
// [ErrLockLost]) or when the lease is released. Do the protected work under it.
func (s *Lease) Context() context.Context { return s.ctx }

// Key returns the lock's key.
func (s *Lease) Key() string { return s.lock.Key }

// Token returns the token that holds the lock.
func (s *Lease) Token() string { return s.lock.token }

// Fence returns the fencing token of the acquisition; see [DBLock.Fence].
func (s *Lease) Fence() int64 { return s.lock.fence }

// Lost returns an error matching [ErrLockLost] once the lease may have ended, else nil.
func (s *Lease) Lost() error { return s.hb.lostErr() }

// Release stops the heartbeat, ends the lease's context and frees the lock, on [context.WithoutCancel] of ctx
// bounded by the release timeout; later calls return the first call's result. It returns an error matching
// [ErrLockLost] when the lease had been lost, and the release's error otherwise.
func (s *Lease) Release(ctx context.Context) error {
	s.once.Do(func() {
		lost := s.hb.stop()
		// The work under Context must stop before the lock is free for another holder.
		s.cancel(context.Canceled)
		relCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.releaseTimeout)
		defer cancel()
		lock := s.lock
		lock.minHold, lock.logger, lock.announce = s.opts.atLeast, s.opts.logger, s.opts.announce
		err := lock.Release(relCtx, s.db)
		switch {
		case lost != nil:
			s.releaseErr = opError("release", s.lock.Key, lost)
		case err != nil:
			s.releaseErr = err
		}
	})
	return s.releaseErr
}

// lose records that the lease is lost for reason, as a failed extend does: its context ends with a cause
// matching [ErrLockLost], and Lost and Release report it.
func (s *Lease) lose(reason error) { s.hb.markLost(reason) }

// abandon stops the heartbeat and ends the lease's context without freeing the lock, which stays held until
// its lease runs out (an [Election] run without [WithReleaseOnCancel]). Release after it does nothing.
func (s *Lease) abandon() {
	s.once.Do(func() {
		if lost := s.hb.stop(); lost != nil {
			s.releaseErr = opError("release", s.lock.Key, lost)
		}
		s.cancel(context.Canceled)
	})
}
