package distrlock

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
)

// Guard confirms, in one statement inside the caller's transaction tx, that this DBLock's token holds an
// unexpired lease on the database's clock, and keeps the lock's row share-locked until tx ends, so that no
// other token can take the lock before tx's writes commit (see docs/guard.md for the isolation levels, and
// for SQLite, where tx must be a write transaction). It returns [ErrLockAlreadyReleased] when the lease has
// ended or another token holds the lock, and tx must then be rolled back; [ErrNotInTransaction] for a *sql.DB.
func (l *DBLock) Guard(ctx context.Context, tx SQLExecutor) error {
	const op = "guard"
	if err := l.checkHeld(ctx, tx); err != nil {
		return opError(op, l.Key, err)
	}
	if _, ok := tx.(*sql.DB); ok {
		return opError(op, l.Key, ErrNotInTransaction)
	}
	// After a lost acquire outcome on a DBLock that never held the lock, only that attempt's token can.
	token := cmp.Or(l.token, l.pending)
	var fence int64
	err := tx.QueryRowContext(ctx, l.manager.q.guard, l.Key, token).Scan(&fence)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return opError(op, l.Key, ErrLockAlreadyReleased)
	case err != nil:
		return opError(op, l.Key, classified(withContext(ctx, err), classify(err)))
	}
	return nil
}

// Guard is [DBLock.Guard] for the lease's lock.
func (s *Lease) Guard(ctx context.Context, tx SQLExecutor) error {
	return s.lock.Guard(ctx, tx)
}
