package distrlock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// The integration tests of this file check that a MySQL/MariaDB session whose clock was moved (SET
// timestamp, as replication appliers and tests do) or whose time_zone differs neither takes a live lock
// nor writes a lease on its own clock: the lease follows the server's real clock, or the statement fails
// with error 1690 naming session_clock_moved.

// mysqlClockDBs are the MariaDB handles these tests run on: prepared statements and interpolateParams.
func mysqlClockDBs(t *testing.T) []*testDB {
	return []*testDB{openMySQL(t, ""), openMySQL(t, "interpolateParams=true")}
}

// mysqlSession returns one connection of tdb's pool after running the SET statements on it, so that the
// settings apply to every statement sent through it; they are reset before it goes back to the pool.
func mysqlSession(ctx context.Context, t *testing.T, tdb *testDB, set ...string) *sql.Conn {
	t.Helper()
	conn, err := tdb.db.Conn(ctx)
	if err != nil {
		t.Fatalf("conn: %v", err)
	}
	t.Cleanup(func() {
		if _, err := conn.ExecContext(context.Background(), "SET timestamp = DEFAULT, time_zone = DEFAULT"); err != nil {
			t.Errorf("reset session: %v", err)
		}
		_ = conn.Close()
	})
	for _, s := range set {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	return conn
}

// mysqlClockMoved reports whether err is the statement's refusal to run on a moved session clock, which
// the package's calls report as ErrSessionClock (the batch statement's own error is classified so).
func mysqlClockMoved(err error) bool {
	return (errors.Is(err, ErrSessionClock) || classify(err) == failSessionClock) && strings.Contains(err.Error(), "1690") && strings.Contains(err.Error(), "session_clock_moved")
}

// mysqlHeldBy checks, from a session with the server's own clock, that key is held under token with
// between lo and hi of its lease left.
func mysqlHeldBy(ctx context.Context, t *testing.T, tdb *testDB, m *DBManager, key, token string, lo, hi time.Duration) {
	t.Helper()
	row, ok := integReadRow(ctx, t, tdb, m, key)
	if !ok || row.token.String != token || !row.expireIn.Valid {
		t.Fatalf("%q: row %+v (found %v), want held by %s", key, row, ok, token)
	}
	if r := row.remaining(); r < lo || r > hi {
		t.Fatalf("%q: %v of the lease left on the server's clock, want between %v and %v", key, r, lo, hi)
	}
}

// TestMySQLSessionClockAheadCannotTake: a session whose clock is an hour or a day ahead cannot take a
// live lock (nor re-take it with the holder's token), and writes no lease for a new key either: its
// Acquire is refused or fails, and the holder keeps the lock with its fence.
func TestMySQLSessionClockAheadCannotTake(t *testing.T) {
	t.Parallel()
	integEach(t, mysqlClockDBs(t), func(t *testing.T, tdb *testDB) {
		for _, ahead := range []int{3600, 86400} {
			t.Run(fmt.Sprintf("+%ds", ahead), func(t *testing.T) {
				ctx := t.Context()
				m := newTestManager(t, tdb)
				holder := integLock(t, m, tdb.db, "held")
				integAcquire(ctx, t, holder, tdb.db, time.Minute)
				moved := mysqlSession(ctx, t, tdb, fmt.Sprintf("SET timestamp = UNIX_TIMESTAMP() + %d", ahead))

				thief := integLock(t, m, moved, "held")
				err := thief.Acquire(ctx, moved, time.Minute)
				if err == nil {
					t.Fatalf("a session %d s ahead took the live lock (fence %d)", ahead, thief.Fence())
				}
				if !errors.Is(err, ErrLockAlreadyAcquired) && !mysqlClockMoved(err) {
					t.Errorf("acquire from a moved session: %v, want ErrLockAlreadyAcquired or the clock error", err)
				}
				t.Logf("acquire of a live lock from a session %d s ahead: %v", ahead, err)
				same := integLock(t, m, moved, "held")
				if err := same.AcquireWithStaticToken(ctx, moved, holder.Token(), time.Minute); err == nil {
					t.Errorf("a session %d s ahead re-took the lock with the holder's token", ahead)
				}
				mysqlHeldBy(ctx, t, tdb, m, "held", holder.Token(), 55*time.Second, time.Minute)
				if row, _ := integReadRow(ctx, t, tdb, m, "held"); row.fence != holder.Fence() {
					t.Errorf("fence %d, want the holder's %d", row.fence, holder.Fence())
				}

				fresh := integLock(t, m, moved, "fresh")
				if err := fresh.Acquire(ctx, moved, time.Minute); err == nil {
					row, _ := integReadRow(ctx, t, tdb, m, "fresh")
					if r := row.remaining(); r > time.Minute {
						t.Errorf("a session %d s ahead created a lease of %v on its own clock, want at most 1m", ahead, r)
					}
				} else if !mysqlClockMoved(err) {
					t.Errorf("acquire of a new key from a moved session: %v, want the clock error", err)
				}
			})
		}
	})
}

// TestMySQLSessionClockBehindExtend: a holder extending from a session whose clock is an hour or a day
// behind does not end up with an expiry in the past: the extend fails (or counts from the real time), and
// a session on the server's clock still cannot take the lock. From a session a few seconds behind, within
// what the statements accept, acquire and the single and batched extends count from the real time.
func TestMySQLSessionClockBehindExtend(t *testing.T) {
	t.Parallel()
	integEach(t, mysqlClockDBs(t), func(t *testing.T, tdb *testDB) {
		for _, behind := range []int{3600, 86400} {
			t.Run(fmt.Sprintf("-%ds", behind), func(t *testing.T) {
				ctx := t.Context()
				m := newTestManager(t, tdb)
				holder := integLock(t, m, tdb.db, "held")
				integAcquire(ctx, t, holder, tdb.db, 20*time.Second)
				moved := mysqlSession(ctx, t, tdb, fmt.Sprintf("SET timestamp = UNIX_TIMESTAMP() - %d", behind))

				err := holder.Extend(ctx, moved)
				t.Logf("extend from a session %d s behind: %v", behind, err)
				if err != nil && !mysqlClockMoved(err) {
					t.Errorf("extend from a moved session: %v, want success or the clock error", err)
				}
				mysqlHeldBy(ctx, t, tdb, m, "held", holder.Token(), 15*time.Second, 20*time.Second)
				other := integLock(t, m, tdb.db, "held")
				if err := other.Acquire(ctx, tdb.db, time.Second); !errors.Is(err, ErrLockAlreadyAcquired) {
					t.Fatalf("a session on the server's clock, after the extend: %v, want ErrLockAlreadyAcquired", err)
				}
				if err := holder.Extend(ctx, tdb.db); err != nil {
					t.Fatalf("the holder extends again from an unmoved session: %v", err)
				}
				mysqlHeldBy(ctx, t, tdb, m, "held", holder.Token(), 19*time.Second, 20*time.Second)
			})
		}
		t.Run("batch", func(t *testing.T) {
			ctx := t.Context()
			m := newTestManager(t, tdb)
			a, b := integLock(t, m, tdb.db, "a"), integLock(t, m, tdb.db, "b")
			integAcquire(ctx, t, a, tdb.db, 20*time.Second)
			integAcquire(ctx, t, b, tdb.db, 20*time.Second)
			// The third pair holds nothing, so that the extend falls short and extend_batch_held.sql runs too.
			pairs := []lockPair{{"a", a.Token()}, {"b", b.Token()}, {"c", "no-such-token"}}
			far := mysqlSession(ctx, t, tdb, "SET timestamp = UNIX_TIMESTAMP() - 3600")
			held, err := m.spec.extendBatch(ctx, far, &m.q, (40 * time.Second).Microseconds(), pairs)
			t.Logf("batched extend from a session 3600 s behind: %v, %v", held, err)
			if err != nil && !mysqlClockMoved(err) {
				t.Errorf("batched extend from a moved session: %v, want success or the clock error", err)
			}
			for _, l := range []*DBLock{a, b} {
				lo := 15 * time.Second
				if held[lockPair{l.Key, l.Token()}] {
					lo = 39 * time.Second
				}
				mysqlHeldBy(ctx, t, tdb, m, l.Key, l.Token(), lo, 40*time.Second)
			}
			near := mysqlSession(ctx, t, tdb, "SET timestamp = UNIX_TIMESTAMP(SYSDATE(6)) - 5")
			held, err = m.spec.extendBatch(ctx, near, &m.q, (40 * time.Second).Microseconds(), pairs)
			if err != nil || len(held) != 2 || !held[pairs[0]] || !held[pairs[1]] {
				t.Fatalf("batched extend from a session 5 s behind: %v, %v, want a and b", held, err)
			}
			mysqlHeldBy(ctx, t, tdb, m, "a", a.Token(), 39*time.Second, 40*time.Second)
			mysqlHeldBy(ctx, t, tdb, m, "b", b.Token(), 39*time.Second, 40*time.Second)
		})
		t.Run("-5s", func(t *testing.T) {
			ctx := t.Context()
			m := newTestManager(t, tdb)
			moved := mysqlSession(ctx, t, tdb, "SET timestamp = UNIX_TIMESTAMP(SYSDATE(6)) - 5")
			l := integLock(t, m, moved, "near")
			if err := l.Acquire(ctx, moved, 20*time.Second); err != nil {
				t.Fatalf("acquire from a session 5 s behind: %v", err)
			}
			mysqlHeldBy(ctx, t, tdb, m, "near", l.Token(), 19*time.Second, 20*time.Second)
			if err := l.ExtendTTL(ctx, moved, 30*time.Second); err != nil {
				t.Fatalf("extend from a session 5 s behind: %v", err)
			}
			mysqlHeldBy(ctx, t, tdb, m, "near", l.Token(), 29*time.Second, 30*time.Second)
			if err := l.Release(ctx, moved); err != nil {
				t.Fatalf("release from a session 5 s behind: %v", err)
			}
		})
	})
}

// TestMySQLSessionClockReadAndRelease: Get and List from a session whose clock is an hour ahead or behind
// report the remaining time on the server's clock or fail with the clock error, never the moved one; and
// such a session still releases the lock it holds, as freeing it is safe on any clock.
func TestMySQLSessionClockReadAndRelease(t *testing.T) {
	t.Parallel()
	integEach(t, mysqlClockDBs(t), func(t *testing.T, tdb *testDB) {
		for _, shift := range []int{3600, -3600} {
			t.Run(fmt.Sprintf("%+ds", shift), func(t *testing.T) {
				ctx := t.Context()
				m := newTestManager(t, tdb)
				holder := integLock(t, m, tdb.db, "held")
				integAcquire(ctx, t, holder, tdb.db, 30*time.Second)
				moved := mysqlSession(ctx, t, tdb, fmt.Sprintf("SET timestamp = UNIX_TIMESTAMP() + %d", shift))

				info, err := m.Get(ctx, moved, "held")
				switch {
				case err != nil && !mysqlClockMoved(err):
					t.Errorf("get from a moved session: %v, want success or the clock error", err)
				case err == nil && (!info.Held || info.Remaining < 25*time.Second || info.Remaining > 30*time.Second):
					t.Errorf("get from a session %+d s off: held %v, %v left, want held with 25s to 30s", shift, info.Held, info.Remaining)
				}
				infos, err := m.List(ctx, moved, ListOptions{HeldOnly: true})
				switch {
				case err != nil && !mysqlClockMoved(err):
					t.Errorf("list from a moved session: %v, want success or the clock error", err)
				case err == nil && (len(infos) != 1 || infos[0].Remaining < 25*time.Second || infos[0].Remaining > 30*time.Second):
					t.Errorf("list from a session %+d s off: %+v, want the held lock with 25s to 30s left", shift, infos)
				}

				if err := holder.Release(ctx, moved); err != nil {
					t.Fatalf("release from a session %+d s off: %v", shift, err)
				}
				other := integLock(t, m, tdb.db, "held")
				integAcquire(ctx, t, other, tdb.db, time.Second)
			})
		}
	})
}

// TestMySQLSessionTimeZones: sessions in +05:00, and in a named zone when the server has its time zone
// tables, acquire, read, extend and release on the server's UTC clock, exactly as a UTC session does.
func TestMySQLSessionTimeZones(t *testing.T) {
	t.Parallel()
	integEach(t, mysqlClockDBs(t), func(t *testing.T, tdb *testDB) {
		zones := []string{"+05:00", "-07:30"}
		var named sql.NullString
		if err := tdb.db.QueryRowContext(t.Context(),
			"SELECT CONVERT_TZ('2020-01-01 00:00:00', '+00:00', 'Europe/Berlin')").Scan(&named); err != nil {
			t.Fatal(err)
		}
		if named.Valid {
			zones = append(zones, "Europe/Berlin", "America/New_York")
		} else {
			t.Log("the server has no time zone tables: named zones not checked")
		}
		for _, zone := range zones {
			t.Run(zone, func(t *testing.T) {
				ctx := t.Context()
				m := newTestManager(t, tdb)
				s := mysqlSession(ctx, t, tdb, "SET time_zone = '"+zone+"'")
				l := integLock(t, m, s, "zoned")
				integAcquire(ctx, t, l, s, 20*time.Second)
				mysqlHeldBy(ctx, t, tdb, m, "zoned", l.Token(), 19*time.Second, 20*time.Second)
				if other := integLock(t, m, tdb.db, "zoned"); !errors.Is(other.Acquire(ctx, tdb.db, time.Second), ErrLockAlreadyAcquired) {
					t.Fatal("a UTC session took the lock held from another zone")
				}
				info, err := m.Get(ctx, s, "zoned")
				if err != nil || !info.Held || info.Remaining < 19*time.Second || info.Remaining > 20*time.Second {
					t.Fatalf("get from %s: %+v, %v", zone, info, err)
				}
				if d := info.ExpiresAt.Sub(info.AcquiredAt); d != 20*time.Second {
					t.Errorf("ExpiresAt - AcquiredAt = %v, want 20s", d)
				}
				if infos, err := m.List(ctx, s, ListOptions{HeldOnly: true}); err != nil || len(infos) != 1 || infos[0].Remaining < 19*time.Second {
					t.Fatalf("list from %s: %+v, %v", zone, infos, err)
				}
				if err := l.ExtendTTL(ctx, s, 40*time.Second); err != nil {
					t.Fatalf("extend from %s: %v", zone, err)
				}
				mysqlHeldBy(ctx, t, tdb, m, "zoned", l.Token(), 39*time.Second, 40*time.Second)
				if err := l.Release(ctx, s); err != nil {
					t.Fatalf("release from %s: %v", zone, err)
				}
				integAcquire(ctx, t, integLock(t, m, tdb.db, "zoned"), tdb.db, time.Second)
			})
		}
	})
}
