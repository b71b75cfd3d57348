package compat

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/distrlock/distrlock"
	sqlmigrate "github.com/rubenv/sql-migrate"
)

// dbkitSQL holds the statements go-dbkit's distrlock sends, restated from its source for one dialect, with
// %s for the table: NewLock's insert, the acquire (expiry from the session's clock: PostgreSQL NOW() +
// interval into a timestamp column, that is in the session's time zone; MySQL in units of 100 µs since the
// epoch), and the release.
type dbkitSQL struct {
	insert, acquire, release string
	// ttl is the acquire's interval argument for a duration.
	ttl func(time.Duration) any
}

var (
	dbkitPostgres = dbkitSQL{
		insert:  `INSERT INTO %s (lock_key) VALUES ($1) ON CONFLICT (lock_key) DO NOTHING`,
		acquire: `UPDATE %s SET expire_at = NOW() + $1::interval, token = $2 WHERE lock_key = $3 AND ((expire_at IS NULL OR expire_at < NOW()) OR token = $4)`,
		release: `UPDATE %s SET expire_at = NULL WHERE lock_key = $1 AND token = $2 AND expire_at >= NOW()`,
		ttl:     func(d time.Duration) any { return strconv.FormatInt(d.Microseconds(), 10) + " microseconds" },
	}
	// go-dbkit computes the time with CURTIME(4); NOW(4) is the same instant without CURTIME's wrap at
	// midnight, which would make this test fail a few seconds a day.
	dbkitMySQL = dbkitSQL{
		insert:  "INSERT IGNORE %s (lock_key) VALUES (?)",
		acquire: "UPDATE %s SET expire_at = UNIX_TIMESTAMP(DATE_ADD(NOW(4), INTERVAL ? MICROSECOND))*10000, token = ? WHERE lock_key = ? AND ((expire_at IS NULL OR expire_at < UNIX_TIMESTAMP(NOW(4))*10000) OR token = ?)",
		release: "UPDATE %s SET expire_at = NULL WHERE lock_key = ? AND token = ? AND expire_at >= UNIX_TIMESTAMP(NOW(4))*10000",
		ttl:     func(d time.Duration) any { return d.Microseconds() },
	}
)

// TestUpgradeFromDBkit: a table that go-dbkit's migration created, with a lock go-dbkit holds and one it
// released, written from a session in another time zone, is upgraded by the remaining migrations through
// go-dbkit's route (sql-migrate, skipping the migration go-dbkit recorded). distrlock then cannot take the
// held lock until go-dbkit's lease ends, takes it right after, takes the released one at once, and its
// fences are positive and grow.
func TestUpgradeFromDBkit(t *testing.T) {
	const heldFor = 3 * time.Second
	for _, tg := range targets(t, "upgrade_locks")[:2] {
		t.Run(tg.name, func(t *testing.T) {
			ctx := context.Background()
			// Services and migration in Tokyo time: go-dbkit's PostgreSQL timestamps are in session time.
			tokyo := tg
			if tg.dialect == distrlock.DialectMySQL {
				tokyo.dsn += "&time_zone=%27%2B09%3A00%27"
			} else {
				tokyo.dsn += "&timezone=Asia/Tokyo"
			}
			db := tokyo.open(t)
			db.SetMaxOpenConns(1) // one session, whose time zone is checked
			zoneQuery, wantZone := "SHOW TimeZone", "Asia/Tokyo"
			if tg.dialect == distrlock.DialectMySQL {
				zoneQuery, wantZone = "SELECT @@session.time_zone", "+09:00"
			}
			var zone string
			if err := db.QueryRowContext(ctx, zoneQuery).Scan(&zone); err != nil || zone != wantZone {
				t.Fatalf("session time zone %q (%v), want %q", zone, err, wantZone)
			}
			versions := tg.table + "_versions"
			tg.dropAfter(t, tg.open(t), tg.quoteIdent(versions))
			m := tg.manager(t)
			set := sqlmigrate.MigrationSet{TableName: versions}
			all := sqlMigrateSource(m.Migrations())

			// What go-dbkit did: its one migration, then locks.
			first := &sqlmigrate.MemoryMigrationSource{Migrations: all.Migrations[:1]}
			if n, err := set.Exec(db, tg.sqlMigrateDialect, first, sqlmigrate.Up); err != nil || n != 1 {
				t.Fatalf("go-dbkit's migration: %d, %v", n, err)
			}
			q, table := dbkitPostgres, tg.quoteIdent(tg.table)
			if tg.dialect == distrlock.DialectMySQL {
				q = dbkitMySQL
			}
			exec := func(stmt string, args ...any) {
				t.Helper()
				if _, err := db.ExecContext(ctx, strings.Replace(stmt, "%s", table, 1), args...); err != nil {
					t.Fatalf("%s: %v", stmt, err)
				}
			}
			const heldToken, freeToken = "0b1e3c52-3a4f-4c5e-9d7a-000000000001", "0b1e3c52-3a4f-4c5e-9d7a-000000000002"
			for _, key := range []string{"held", "released"} {
				exec(q.insert, key)
			}
			exec(q.acquire, q.ttl(time.Minute), freeToken, "released", freeToken)
			exec(q.release, "released", freeToken)
			heldAt := time.Now()
			exec(q.acquire, q.ttl(heldFor), heldToken, "held", heldToken)

			// The upgrade, as go-dbkit's runner does it: every migration, of which the first is recorded.
			if n, err := set.Exec(db, tg.sqlMigrateDialect, all, sqlmigrate.Up); err != nil || n != len(all.Migrations)-1 {
				t.Fatalf("upgrade: %d applied (want %d), %v", n, len(all.Migrations)-1, err)
			}

			info, err := m.Get(ctx, db, "held")
			if err != nil {
				t.Fatal(err)
			}
			if left := heldFor - time.Since(heldAt); !info.Held || info.Token != heldToken || info.Remaining > heldFor || info.Remaining < left-time.Second {
				t.Fatalf("go-dbkit's held lock after the upgrade: %+v, want held by its token with about %v left", info, left)
			}

			released := lockOn(t, m, db, "released")
			if err := released.Acquire(ctx, db, time.Minute); err != nil {
				t.Fatalf("the lock go-dbkit released: %v", err)
			}
			first1 := released.Fence()
			if err := released.Release(ctx, db); err != nil {
				t.Fatal(err)
			}
			if err := released.Acquire(ctx, db, time.Minute); err != nil || first1 < 1 || released.Fence() <= first1 {
				t.Fatalf("fences %d then %d (%v), want positive and growing", first1, released.Fence(), err)
			}

			held := lockOn(t, m, db, "held")
			for {
				err := held.Acquire(ctx, db, time.Minute)
				if err == nil {
					break
				}
				if !errors.Is(err, distrlock.ErrLockAlreadyAcquired) {
					t.Fatal(err)
				}
				if time.Since(heldAt) > heldFor+5*time.Second {
					t.Fatalf("go-dbkit's lock of %v still held %v after it was taken", heldFor, time.Since(heldAt))
				}
				time.Sleep(25 * time.Millisecond)
			}
			took := time.Since(heldAt)
			t.Logf("%s: go-dbkit's lease of %v, taken over by distrlock %v after go-dbkit took it, fence %d",
				tg.name, heldFor, took.Round(time.Millisecond), held.Fence())
			if took < heldFor-100*time.Millisecond || held.Fence() < 1 {
				t.Fatalf("took go-dbkit's lock %v after it was taken for %v, fence %d", took, heldFor, held.Fence())
			}
		})
	}
}

func lockOn(t *testing.T, m *distrlock.DBManager, db *sql.DB, key string) distrlock.DBLock {
	t.Helper()
	l, err := m.NewLock(context.Background(), db, key)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
