package distrlock

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
)

// TestWithToken: DoExclusively and Hold with WithToken acquire under that token, which takes back the
// lease it holds (the statement is acquire.sql's with the token bound); an invalid token sends nothing.
func TestWithToken(t *testing.T) {
	for _, d := range unitDialects {
		t.Run(string(d), func(t *testing.T) {
			f := newUnitFixture(t, d, "")
			ctx := context.Background()
			f.expectAcquire("restart-token", DefaultLockTTL).granted(4)
			f.expectRelease("restart-token").WillReturnResult(sqlmock.NewResult(0, 1))
			err := f.lock.DoExclusively(ctx, f.db, func(context.Context) error {
				if f.lock.Token() != "restart-token" || f.lock.Fence() != 4 {
					t.Errorf("token %q, fence %d", f.lock.Token(), f.lock.Fence())
				}
				return nil
			}, WithToken("restart-token"))
			if err != nil {
				t.Fatal(err)
			}
			f.expectAcquire("restart-token", time.Minute).granted(5)
			f.expectRelease("restart-token").WillReturnResult(sqlmock.NewResult(0, 1))
			lease, err := f.lock.Hold(ctx, f.db, WithToken("restart-token"))
			if err != nil {
				t.Fatal(err)
			}
			if lease.Token() != "restart-token" || lease.Fence() != 5 {
				t.Errorf("lease token %q, fence %d", lease.Token(), lease.Fence())
			}
			if err := lease.Release(ctx); err != nil {
				t.Fatal(err)
			}
			_, err = f.lock.Hold(ctx, f.db, WithToken(""))
			unitWantErr(t, err, "hold", unitKey, ErrInvalidToken)
		})
	}
}

// TestKeep: a lease acquired in a transaction (TTL 10 s) that committed is kept by Keep, which sends
// nothing itself; its heartbeat extends it every 2 s counted from the acquire, so 5 s later exactly two
// extends were sent, the lease is not lost, and Release frees it.
func TestKeep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newHeartbeatFixture(t)
		defer f.db.Close()
		const ttl = 10 * time.Second
		ctx := context.Background()
		f.mock.ExpectBegin()
		f.expectAcquire()
		f.mock.ExpectCommit()
		tx, err := f.sqlDB.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.lock.Acquire(ctx, tx, ttl); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // the rest of the transaction's work
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		f.expectExtend(ttl).WillReturnResult(sqlmock.NewResult(0, 1))
		f.expectExtend(ttl).WillReturnResult(sqlmock.NewResult(0, 1))
		logger := &countingLogger{}
		lease, err := f.lock.Keep(ctx, f.sqlDB, WithPeriodicExtendInterval(2*time.Second), WithLogger(logger))
		if err != nil {
			t.Fatal(err)
		}
		if lease.Fence() != 7 || lease.Token() != f.lock.Token() {
			t.Errorf("lease fence %d token %q, want 7 %q", lease.Fence(), lease.Token(), f.lock.Token())
		}
		time.Sleep(4 * time.Second) // 5 s after the acquire: extends at 2 and 4 s
		synctest.Wait()
		if err := lease.Lost(); err != nil {
			t.Fatal(err)
		}
		f.expectRelease()
		if err := lease.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if n := logger.n.Load(); n != 0 {
			t.Errorf("%d errors logged", n)
		}
	})
}

// TestKeepRefuses: Keep sends nothing and starts nothing on a DBLock that does not hold its lock, with an
// option that shapes an acquisition or another TTL, and once the lease may have ended.
func TestKeepRefuses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newHeartbeatFixture(t)
		defer f.db.Close()
		ctx := context.Background()
		_, err := f.lock.Keep(ctx, f.sqlDB)
		unitWantErr(t, err, "keep", "job", ErrLockNotAcquired)
		f.expectAcquire()
		if err := f.lock.Acquire(ctx, f.sqlDB, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		for _, opt := range []DoOption{WithLockTTL(time.Minute), WithWait(time.Second), WithToken("t"), WithOwner("o"), WithData("d")} {
			_, err := f.lock.Keep(ctx, f.sqlDB, opt)
			unitWantErr(t, err, "keep", "job", ErrInvalidOption)
		}
		time.Sleep(9 * time.Second) // the default margin is 1 s: the lease is trusted until 9 s
		_, err = f.lock.Keep(ctx, f.sqlDB)
		unitWantErr(t, err, "keep", "job", ErrLockLost)
	})
}
