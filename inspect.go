package distrlock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"
)

// LockInfo is the state of one key's lock as the database sees it. Times are read from the database's
// clock: compare them with each other, not with the local clock.
type LockInfo struct {
	// Key is the lock's key.
	Key string
	// Held reports an unexpired lease at ReadAt.
	Held bool
	// Token is the holder's token, or the last holder's once the lock is free.
	Token string
	// Owner and Data are what the last acquisition stored (see DBLock.Owner and DBLock.Data).
	Owner string
	Data  string
	// Fence is the fencing token of the last acquisition; 0 if the key was never acquired by distrlock.
	Fence int64
	// TTL is the lease the holder asked for; 0 if unknown (a lock taken by go-dbkit before the upgrade).
	TTL time.Duration
	// AcquiredAt is when the last acquisition's statement began; zero if unknown.
	AcquiredAt time.Time
	// ExpiresAt is when the lease ends; zero once the lock was released.
	ExpiresAt time.Time
	// Remaining is ExpiresAt less ReadAt while Held, else 0.
	Remaining time.Duration
	// ReadAt is the database's clock when the row was read.
	ReadAt time.Time
	// Queued is the number of [DBLock.AcquireWait] tickets issued for the key and not yet served: the
	// waiters in its queue, counting a waiter that gave up without leaving it until the queue passes it.
	Queued int64
}

// ListOptions selects the locks [DBManager.List] returns.
type ListOptions struct {
	// Prefix keeps the keys that start with it (bytewise); empty keeps every key.
	Prefix string
	// HeldOnly keeps only locks with an unexpired lease.
	HeldOnly bool
	// Limit caps the number of locks returned; 0 means no limit.
	Limit int
}

// Get reads the state of key's lock without taking it, in one statement. A key that was never acquired is
// reported as a free lock with Fence 0.
func (m *DBManager) Get(ctx context.Context, exec SQLExecutor, key string) (LockInfo, error) {
	const op = "get"
	if err := checkCall(ctx, exec); err != nil {
		return LockInfo{}, opError(op, key, err)
	}
	if err := validateKey(key); err != nil {
		return LockInfo{}, opError(op, key, err)
	}
	info, err := scanLockInfo(exec.QueryRowContext(ctx, m.q.get, key))
	if errors.Is(err, sql.ErrNoRows) {
		return LockInfo{Key: key}, nil
	}
	if err != nil {
		return LockInfo{}, opError(op, key, withContext(ctx, err))
	}
	return info, nil
}

// List reads the locks that opts selects, ordered by key, in one statement. Keys that were released stay
// in the table until [DBManager.Prune] deletes them and are listed as free unless opts.HeldOnly is set.
func (m *DBManager) List(ctx context.Context, exec SQLQueryer, opts ListOptions) ([]LockInfo, error) {
	const op = "list"
	if isNilExecutor(exec) {
		return nil, opError(op, opts.Prefix, ErrNilExecutor)
	}
	if err := contextError(ctx); err != nil {
		return nil, opError(op, opts.Prefix, err)
	}
	if opts.Prefix != "" {
		if err := validateKey(opts.Prefix); err != nil {
			return nil, opError(op, opts.Prefix, fmt.Errorf("prefix: %w", err))
		}
	}
	if opts.Limit < 0 {
		return nil, opError(op, opts.Prefix, fmt.Errorf("%w: negative limit %d", ErrInvalidOption, opts.Limit))
	}
	limit := int64(opts.Limit)
	if limit == 0 {
		limit = math.MaxInt64
	}
	rows, err := exec.QueryContext(ctx, m.q.list, m.spec.listArgs(opts.Prefix, opts.HeldOnly, limit)...)
	if err != nil {
		return nil, opError(op, opts.Prefix, withContext(ctx, err))
	}
	defer rows.Close()
	var infos []LockInfo
	for rows.Next() {
		info, err := scanLockInfo(rows)
		if err != nil {
			return nil, opError(op, opts.Prefix, err)
		}
		infos = append(infos, info)
	}
	if err := rows.Err(); err != nil {
		return nil, opError(op, opts.Prefix, withContext(ctx, err))
	}
	return infos, nil
}

// Remaining returns how long the lease of this DBLock's token has left on the database's clock. It
// returns [ErrLockAlreadyReleased] when the token no longer holds the lock.
func (l *DBLock) Remaining(ctx context.Context, exec SQLExecutor) (time.Duration, error) {
	const op = "remaining"
	if err := l.checkHeld(ctx, exec); err != nil {
		return 0, opError(op, l.Key, err)
	}
	info, err := l.manager.Get(ctx, exec, l.Key)
	if err != nil {
		return 0, err
	}
	if !info.Held || info.Token != l.token {
		return 0, opError(op, l.Key, ErrLockAlreadyReleased)
	}
	return info.Remaining, nil
}

type rowScanner interface {
	Scan(dest ...any) error
}

func scanLockInfo(row rowScanner) (LockInfo, error) {
	var (
		info                       LockInfo
		token, owner, data         sql.NullString
		fence                      sql.NullInt64
		ttl, acquired, expire, now sql.NullInt64
		queued                     sql.NullInt64
	)
	if err := row.Scan(&info.Key, &token, &owner, &data, &fence, &ttl, &acquired, &expire, &now, &queued); err != nil {
		return LockInfo{}, err
	}
	info.Queued = queued.Int64
	info.Token, info.Owner, info.Data, info.Fence = token.String, owner.String, data.String, fence.Int64
	info.TTL = time.Duration(ttl.Int64) * time.Microsecond
	info.ReadAt = microsTime(now)
	info.AcquiredAt = microsTime(acquired)
	info.ExpiresAt = microsTime(expire)
	if expire.Valid && expire.Int64 > now.Int64 {
		info.Held = true
		info.Remaining = time.Duration(expire.Int64-now.Int64) * time.Microsecond
	}
	return info, nil
}

func microsTime(us sql.NullInt64) time.Time {
	if !us.Valid {
		return time.Time{}
	}
	return time.UnixMicro(us.Int64).UTC()
}
