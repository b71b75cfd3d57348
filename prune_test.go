package distrlock

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/go-sql-driver/mysql"
)

// expectPruneBatch expects one batch of Prune after key after: it reads read keys up to last, of which
// deleted are deleted; floor is the largest fence among the prunable ones (nil: none).
func (f *unitFixture) expectPruneBatch(freeFor time.Duration, size int64, after string, read int64, floor any, last string, deleted int64) {
	grace := (2 * DefaultWaitMaxBackoff).Microseconds()
	if f.d == DialectPostgres || f.d == DialectPgx {
		f.mock.ExpectQuery(unitQuery(f.t, f.d, "prune", f.table)).WithArgs(freeFor.Microseconds(), grace, after, size).
			WillReturnRows(sqlmock.NewRows([]string{"read", "last", "deleted"}).AddRow(read, last, deleted))
		return
	}
	f.mock.ExpectQuery(unitQuery(f.t, f.d, "prune_scan", f.table)).WithArgs(freeFor.Microseconds(), grace, after, size).
		WillReturnRows(sqlmock.NewRows([]string{"read", "floor", "last"}).AddRow(read, floor, last))
	if read == 0 || floor == nil {
		return
	}
	floorArgs := []driver.Value{floor}
	if unitIsMySQL(f.d) {
		floorArgs = append(floorArgs, floor)
	}
	f.mock.ExpectExec(unitQuery(f.t, f.d, "prune_floor", f.table)).WithArgs(floorArgs...).
		WillReturnResult(sqlmock.NewResult(0, 1))
	f.mock.ExpectExec(unitQuery(f.t, f.d, "prune_delete", f.table)).
		WithArgs(after, last, floor, freeFor.Microseconds(), grace).WillReturnResult(sqlmock.NewResult(0, deleted))
}

// TestPrune: Prune sends the dialect's statements batch after batch, each reading the keys after the last
// key of the one before, raises the floor before it deletes (except on PostgreSQL, where one statement does
// both) and skips both when nothing read is prunable, stops after a batch that read fewer keys than the
// batch size, and returns the rows deleted.
func TestPrune(t *testing.T) {
	for _, d := range unitDialects {
		t.Run(string(d), func(t *testing.T) {
			f := newUnitFixture(t, d, "app.my_locks")
			freeFor := 24 * time.Hour
			f.expectPruneBatch(freeFor, 2, "", 2, int64(5), "a/2", 2)
			f.expectPruneBatch(freeFor, 2, "a/2", 2, nil, "b/7", 0) // both held, or freed too recently
			f.expectPruneBatch(freeFor, 2, "b/7", 2, int64(9), "c", 1)
			f.expectPruneBatch(freeFor, 2, "c", 1, int64(3), "d", 1)
			deleted, err := f.m.Prune(context.Background(), f.db, freeFor, WithPruneBatchSize(2))
			if err != nil {
				t.Fatal(err)
			}
			if deleted != 4 {
				t.Errorf("deleted %d, want 4", deleted)
			}
		})
	}
}

// TestPruneNothing: a table with nothing to prune costs one read.
func TestPruneNothing(t *testing.T) {
	for _, d := range unitDialects {
		t.Run(string(d), func(t *testing.T) {
			f := newUnitFixture(t, d, "")
			f.expectPruneBatch(time.Minute, DefaultPruneBatchSize, "", 0, nil, "", 0)
			deleted, err := f.m.Prune(context.Background(), f.db, time.Minute)
			if err != nil || deleted != 0 {
				t.Fatalf("Prune = %d, %v; want 0, nil", deleted, err)
			}
		})
	}
}

// TestPruneErrors: invalid arguments send nothing; a driver error in a later batch is returned wrapped,
// with the rows deleted before it; an ended context stops before the next batch.
func TestPruneErrors(t *testing.T) {
	errDriver := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	for _, d := range unitDialects {
		t.Run(string(d), func(t *testing.T) {
			f := newUnitFixture(t, d, "my_locks")
			ctx := context.Background()
			for _, c := range []struct {
				freeFor time.Duration
				opts    []PruneOption
			}{
				{-time.Second, nil},
				{time.Hour, []PruneOption{WithPruneBatchSize(0)}},
				{time.Hour, []PruneOption{WithPruneBatchSize(MaxPruneBatchSize + 1)}},
			} {
				_, err := f.m.Prune(ctx, f.db, c.freeFor, c.opts...)
				unitWantErr(t, err, "prune", "my_locks", ErrInvalidOption)
			}
			if _, err := f.m.Prune(ctx, nil, time.Hour); !errors.Is(err, ErrNilExecutor) {
				t.Errorf("nil executor: %v", err)
			}

			f.expectPruneBatch(time.Hour, 1, "", 1, int64(4), "k", 1)
			grace := (2 * DefaultWaitMaxBackoff).Microseconds()
			if d == DialectPostgres || d == DialectPgx {
				f.mock.ExpectQuery(unitQuery(t, d, "prune", "my_locks")).WithArgs(time.Hour.Microseconds(), grace, "k", int64(1)).WillReturnError(errDriver)
			} else {
				f.mock.ExpectQuery(unitQuery(t, d, "prune_scan", "my_locks")).WithArgs(time.Hour.Microseconds(), grace, "k", int64(1)).WillReturnError(errDriver)
			}
			deleted, err := f.m.Prune(ctx, f.db, time.Hour, WithPruneBatchSize(1))
			unitWantErr(t, err, "prune", "my_locks", errDriver)
			if deleted != 1 {
				t.Errorf("deleted %d before the error, want 1", deleted)
			}

			cctx, cancel := context.WithCancel(ctx)
			f.expectPruneBatch(time.Hour, 1, "", 1, int64(4), "k", 1)
			exec := &pruneCanceller{SQLExecutor: f.db, cancel: cancel}
			deleted, err = f.m.Prune(cctx, exec, time.Hour, WithPruneBatchSize(1))
			unitWantErr(t, err, "prune", "my_locks", context.Canceled)
			if deleted != 1 {
				t.Errorf("deleted %d before the context ended, want 1", deleted)
			}
		})
	}
}

// pruneCanceller ends the context after the last statement of a batch (the only one on PostgreSQL),
// which itself runs on a context that does not end.
type pruneCanceller struct {
	SQLExecutor
	cancel context.CancelFunc
}

func (p *pruneCanceller) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	defer p.cancel()
	return p.SQLExecutor.ExecContext(context.WithoutCancel(ctx), query, args...)
}

func (p *pruneCanceller) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if !strings.Contains(query, "doomed AS") { // prune_scan.sql
		return p.SQLExecutor.QueryRowContext(ctx, query, args...)
	}
	defer p.cancel()
	return p.SQLExecutor.QueryRowContext(context.WithoutCancel(ctx), query, args...)
}

// TestPruneRetriesTransient: a batch that failed without changing anything (a MySQL deadlock) is sent
// again; inside a transaction it is not.
func TestPruneRetriesTransient(t *testing.T) {
	deadlock := &mysql.MySQLError{Number: 1213, Message: "Deadlock found when trying to get lock"}
	f := newUnitFixture(t, DialectMariaDB, "")
	grace := (2 * DefaultWaitMaxBackoff).Microseconds()
	f.mock.ExpectQuery(unitQuery(t, f.d, "prune_scan", "")).WithArgs(int64(0), grace, "", int64(DefaultPruneBatchSize)).WillReturnError(deadlock)
	f.expectPruneBatch(0, DefaultPruneBatchSize, "", 0, nil, "", 0)
	if deleted, err := f.m.Prune(context.Background(), f.db, 0); err != nil || deleted != 0 {
		t.Fatalf("Prune = %d, %v; want 0, nil after one retry", deleted, err)
	}

	f.mock.ExpectBegin()
	f.mock.ExpectQuery(unitQuery(t, f.d, "prune_scan", "")).WithArgs(int64(0), grace, "", int64(DefaultPruneBatchSize)).WillReturnError(deadlock)
	f.mock.ExpectRollback()
	tx, err := f.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.m.Prune(context.Background(), tx, 0)
	unitWantErr(t, err, "prune", DefaultTableName, deadlock)
	_ = tx.Rollback()
}
