package distrlock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// DefaultPruneBatchSize is how many keys a batch of [DBManager.Prune] reads (and so deletes at most) unless
// [WithPruneBatchSize] says otherwise.
const DefaultPruneBatchSize = 1000

// MaxPruneBatchSize is the largest batch [WithPruneBatchSize] accepts.
const MaxPruneBatchSize = 100000

// PruneOption configures [DBManager.Prune].
type PruneOption func(*pruneOptions)

type pruneOptions struct {
	batchSize int
}

// WithPruneBatchSize sets how many keys each batch of [DBManager.Prune] reads, in key order, and so deletes
// at most, between 1 and [MaxPruneBatchSize]; the default is [DefaultPruneBatchSize]. A batch locks the rows
// it deletes until it commits, so a smaller batch makes a concurrent acquire of one of them wait less.
func WithPruneBatchSize(n int) PruneOption {
	return func(o *pruneOptions) { o.batchSize = n }
}

// Prune deletes, in batches, the rows of keys whose lock has been free (released, or expired on the
// database's clock) for at least freeFor and that no live waiter is queued for, and returns how many it
// deleted; a key acquired again after its row was pruned gets a fence larger than any it had. Each batch
// commits on its own outside a *sql.Tx, Prune stops after the batch in progress when ctx ends (returning
// what it deleted with the context's error), and it is safe to run concurrently with every other call and
// with itself. It fails with [ErrInvalidOption] for a negative freeFor or a bad option.
func (m *DBManager) Prune(ctx context.Context, exec SQLExecutor, freeFor time.Duration, opts ...PruneOption) (int64, error) {
	const op = "prune"
	if err := checkCall(ctx, exec); err != nil {
		return 0, opError(op, m.table, err)
	}
	o := pruneOptions{batchSize: DefaultPruneBatchSize}
	for _, opt := range opts {
		opt(&o)
	}
	if freeFor < 0 {
		return 0, opError(op, m.table, fmt.Errorf("%w: negative free-for %v", ErrInvalidOption, freeFor))
	}
	if o.batchSize < 1 || o.batchSize > MaxPruneBatchSize {
		return 0, opError(op, m.table, fmt.Errorf("%w: prune batch size %d: need 1 to %d",
			ErrInvalidOption, o.batchSize, MaxPruneBatchSize))
	}
	b := pruneBatch{
		freeForMicros: freeFor.Microseconds(),
		graceMicros:   m.handoverGrace().Microseconds(),
		size:          int64(o.batchSize),
	}
	var total int64
	for {
		if err := contextError(ctx); err != nil {
			return total, opError(op, m.table, err)
		}
		read, deleted, err := m.pruneBatch(ctx, exec, &b)
		// A deadlock with acquires (MySQL's next-key locks) or a busy SQLite file changed nothing: the
		// batch runs again, a few times, after the wait backoff.
		_, inTx := exec.(*sql.Tx) // a failed statement may have ended the caller's transaction
		for try := 1; err != nil && try < pruneTries && classify(err) == failTransient && !inTx; try++ {
			timer := time.NewTimer(m.backoffMin << try)
			select {
			case <-ctx.Done():
				timer.Stop()
				return total, opError(op, m.table, errors.Join(err, ctx.Err()))
			case <-timer.C:
			}
			read, deleted, err = m.pruneBatch(ctx, exec, &b)
		}
		total += deleted
		if err != nil {
			return total, opError(op, m.table, withContext(ctx, err))
		}
		if read < b.size {
			return total, nil
		}
	}
}

// pruneTries is how many times Prune sends a batch that failed without changing anything.
const pruneTries = 4

// pruneBatch is the state of one Prune call between its batches.
type pruneBatch struct {
	freeForMicros, graceMicros, size int64
	// after is the last key of the previous batch: every batch starts after it, in key order, so that a
	// call reads each row once and a batch reads and locks a bounded range of keys, however few are free.
	after string
}

// pruneBatch runs one batch: it reads the next keys after b.after in key order, at most b.size, deletes
// those that are prunable, returns how many keys it read and how many rows it deleted, and moves b.after to
// the last key read.
func (m *DBManager) pruneBatch(ctx context.Context, exec SQLExecutor, b *pruneBatch) (read, deleted int64, err error) {
	var last string
	if m.spec.pruneInOne {
		err := exec.QueryRowContext(ctx, m.q.prune, b.freeForMicros, b.graceMicros, b.after, b.size).Scan(&read, &last, &deleted)
		if err != nil {
			return 0, 0, err
		}
		if read > 0 {
			b.after = last
		}
		return read, deleted, nil
	}
	var floor sql.NullInt64 // the largest fence among the prunable rows; NULL when there are none
	err = exec.QueryRowContext(ctx, m.q.pruneScan, b.freeForMicros, b.graceMicros, b.after, b.size).Scan(&read, &floor, &last)
	if err != nil || read == 0 {
		return 0, 0, err
	}
	if floor.Valid {
		// The floor is raised, and committed, before any row goes: see schema/mysql/queries/acquire.sql.
		if _, err := exec.ExecContext(ctx, m.q.pruneFloor, m.spec.pruneFloorArgs(floor.Int64)...); err != nil {
			return read, 0, err
		}
		res, err := exec.ExecContext(ctx, m.q.pruneDelete, m.spec.pruneDeleteArgs(b.after, last, floor.Int64, b.freeForMicros, b.graceMicros)...)
		if err != nil {
			return read, 0, err
		}
		if deleted, err = res.RowsAffected(); err != nil {
			return read, 0, err
		}
	}
	b.after = last
	return read, deleted, nil
}
