package distrlock

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"testing"

	"github.com/DATA-DOG/go-sqlmock"
)

// expectGuard expects guard.sql for the fixture's key and token.
func (f *unitFixture) expectGuard(token string) *sqlmock.ExpectedQuery {
	return f.mock.ExpectQuery(unitQuery(f.t, f.d, "guard", f.table)).WithArgs(unitKey, token)
}

// TestGuard: inside a transaction Guard sends guard.sql once, with the key and the token; a row means the
// lease holds, no row is ErrLockAlreadyReleased, a driver error is returned wrapped, and the DBLock is left
// as it was.
func TestGuard(t *testing.T) {
	errDriver := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	for _, d := range unitDialects {
		for _, c := range []struct {
			name string
			set  func(q *sqlmock.ExpectedQuery)
			want error
		}{
			{"held", func(q *sqlmock.ExpectedQuery) {
				q.WillReturnRows(sqlmock.NewRows([]string{"fence"}).AddRow(unitHeldFence))
			}, nil},
			{"not held", func(q *sqlmock.ExpectedQuery) { q.WillReturnRows(sqlmock.NewRows([]string{"fence"})) }, ErrLockAlreadyReleased},
			{"driver error", func(q *sqlmock.ExpectedQuery) { q.WillReturnError(errDriver) }, errDriver},
		} {
			t.Run(string(d)+"/"+c.name, func(t *testing.T) {
				f := newUnitFixture(t, d, "app.my_locks")
				f.hold()
				f.mock.ExpectBegin()
				c.set(f.expectGuard(unitHeldToken))
				f.mock.ExpectRollback()
				ctx := context.Background()
				tx, err := f.db.BeginTx(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				err = f.lock.Guard(ctx, tx)
				if c.want == nil && err != nil {
					t.Fatal(err)
				}
				if c.want != nil {
					unitWantErr(t, err, "guard", unitKey, c.want)
				}
				if err := tx.Rollback(); err != nil {
					t.Fatal(err)
				}
				f.wantState(unitHeldToken, unitHeldFence, unitHeldTTL)
			})
		}
	}
}

// TestGuardSendsNothing: Guard on a *sql.DB (autocommit: nothing to guard), on a DBLock that never
// acquired, and with an ended context fails without sending a statement.
func TestGuardSendsNothing(t *testing.T) {
	for _, d := range unitDialects {
		t.Run(string(d), func(t *testing.T) {
			f := newUnitFixture(t, d, "")
			ctx := context.Background()
			unitWantErr(t, f.lock.Guard(ctx, f.db), "guard", unitKey, ErrLockNotAcquired)
			f.hold()
			unitWantErr(t, f.lock.Guard(ctx, f.db), "guard", unitKey, ErrNotInTransaction)
			ended, cancel := context.WithCancel(ctx)
			cancel()
			conn, err := f.db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			unitWantErr(t, f.lock.Guard(ended, conn), "guard", unitKey, context.Canceled)
			unitWantErr(t, f.lock.Guard(ctx, (*sql.Tx)(nil)), "guard", unitKey, ErrNilExecutor)
		})
	}
}

// TestLeaseGuard: Lease.Guard sends guard.sql with the lease's token.
func TestLeaseGuard(t *testing.T) {
	for _, d := range unitDialects {
		t.Run(string(d), func(t *testing.T) {
			f := newUnitFixture(t, d, "")
			ctx := context.Background()
			f.expectAcquire("lease-token", DefaultLockTTL).granted(9)
			lease, err := f.lock.Hold(ctx, f.db, WithToken("lease-token"))
			if err != nil {
				t.Fatal(err)
			}
			f.mock.ExpectBegin()
			f.expectGuard("lease-token").WillReturnRows(sqlmock.NewRows([]string{"fence"}).AddRow(int64(9)))
			f.mock.ExpectCommit()
			tx, err := f.db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := lease.Guard(ctx, tx); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			f.expectRelease("lease-token").WillReturnResult(sqlmock.NewResult(0, 1))
			if err := lease.Release(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}
