package syssqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/distrlock/distrlock"
	_ "modernc.org/sqlite" // "sqlite", a recent SQLite
)

// TestModerncSQLite runs the checks on modernc.org/sqlite, whose SQLite is recent.
func TestModerncSQLite(t *testing.T) {
	db := openDB(t, "sqlite")
	t.Logf("modernc.org/sqlite %s", sqliteVersion(t, db))
	runChecks(t, db)
}

// openDB opens a new database file with driver, on one connection (SQLite has one writer anyway).
func openDB(t *testing.T, driver string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driver, "file:"+filepath.Join(t.TempDir(), "locks.db"))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	return db
}

func sqliteVersion(t *testing.T, db *sql.DB) string {
	t.Helper()
	var v string
	if err := db.QueryRow("SELECT sqlite_version()").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// olderThan reports whether version (major.minor.patch) is older than major.minor.
func olderThan(version string, major, minor int) bool {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return ma < major || ma == major && mi < minor
}

// clockSQL is the statements' clock, microseconds since the epoch, with 'now' as a placeholder.
const clockSQL = "CAST(round((julianday(%s) - 2440587.5) * 86400000) AS INTEGER) * 1000"

func runChecks(t *testing.T, db *sql.DB) {
	ctx := context.Background()
	m, err := distrlock.NewDBManager(distrlock.DialectSQLite)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CreateTable(ctx, db); err != nil {
		t.Fatal(err)
	}
	newLock := func(t *testing.T, key string) distrlock.DBLock {
		t.Helper()
		l, err := m.NewLock(ctx, db, key)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}

	t.Run("Clock", func(t *testing.T) {
		// The statements' clock is the host's, to the millisecond.
		before := time.Now().UnixMicro()
		var now sql.NullInt64
		if err := db.QueryRow("SELECT " + fmt.Sprintf(clockSQL, "'now'")).Scan(&now); err != nil {
			t.Fatal(err)
		}
		after := time.Now().UnixMicro()
		if !now.Valid || now.Int64 < before-1000 || now.Int64 > after+1000 || now.Int64%1000 != 0 {
			t.Fatalf("clock = %v, want whole milliseconds in [%d, %d]", now, before, after)
		}
		// The conversion gives back SQLite's integer milliseconds exactly, from 1970 to 9999.
		rng := rand.New(rand.NewPCG(1, 2))
		ms := []int64{0, 1, 999, 1000, 946684800000, 2147483647999, 4102444800000, 253402300799999}
		for range 20_000 {
			ms = append(ms, rng.Int64N(253402300800000))
		}
		for base := time.Now().UnixMilli(); len(ms) < 30_000; base++ {
			ms = append(ms, base)
		}
		list, err := json.Marshal(ms)
		if err != nil {
			t.Fatal(err)
		}
		var n, bad int
		var first sql.NullInt64
		q := "SELECT count(*), sum(got != value * 1000), min(CASE WHEN got != value * 1000 THEN value END) FROM " +
			"(SELECT value, " + fmt.Sprintf(clockSQL, "value / 1000.0, 'unixepoch'") + " AS got FROM json_each(?1))"
		if err := db.QueryRow(q, string(list)).Scan(&n, &bad, &first); err != nil {
			t.Fatal(err)
		}
		if n != len(ms) || bad != 0 {
			t.Fatalf("%d of %d milliseconds converted wrongly (first %v)", bad, n, first)
		}
	})

	t.Run("MutualExclusion", func(t *testing.T) {
		a, b := newLock(t, "exclusion"), newLock(t, "exclusion")
		if err := a.Acquire(ctx, db, time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := b.Acquire(ctx, db, time.Minute); !errors.Is(err, distrlock.ErrLockAlreadyAcquired) {
			t.Fatalf("second Acquire = %v, want ErrLockAlreadyAcquired", err)
		}
		info, err := m.Get(ctx, db, "exclusion")
		if err != nil {
			t.Fatal(err)
		}
		if !info.Held || info.Token != a.Token() || info.Remaining <= 50*time.Second || info.Remaining > time.Minute {
			t.Fatalf("Get = %+v, want held by %q for about a minute", info, a.Token())
		}
		held, err := m.List(ctx, db, distrlock.ListOptions{Prefix: "exclusion", HeldOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(held) != 1 || held[0].Token != a.Token() {
			t.Fatalf("List(HeldOnly) = %+v, want the one lock", held)
		}
	})

	t.Run("Expiry", func(t *testing.T) {
		const ttl = 300 * time.Millisecond
		a, b := newLock(t, "expiry"), newLock(t, "expiry")
		if err := a.Acquire(ctx, db, ttl); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := b.Acquire(ctx, db, ttl); !errors.Is(err, distrlock.ErrLockAlreadyAcquired) {
			t.Fatalf("Acquire during the lease = %v, want ErrLockAlreadyAcquired", err)
		}
		for {
			err := b.Acquire(ctx, db, time.Minute)
			if err == nil {
				break
			}
			if !errors.Is(err, distrlock.ErrLockAlreadyAcquired) {
				t.Fatal(err)
			}
			if time.Since(start) > 10*time.Second {
				t.Fatal("the lock was never free after its lease")
			}
			time.Sleep(20 * time.Millisecond)
		}
		// The clock has millisecond resolution: allow 2 ms.
		if waited := time.Since(start); waited < ttl-2*time.Millisecond {
			t.Fatalf("taken %v after a lease of %v", waited, ttl)
		}
		if err := a.Extend(ctx, db); !errors.Is(err, distrlock.ErrLockAlreadyReleased) {
			t.Fatalf("Extend after expiry = %v, want ErrLockAlreadyReleased", err)
		}
		if b.Fence() != a.Fence()+1 {
			t.Fatalf("fence after expiry %d, want %d", b.Fence(), a.Fence()+1)
		}
	})

	t.Run("ExtendRelease", func(t *testing.T) {
		a, b := newLock(t, "extend"), newLock(t, "extend")
		if err := a.Acquire(ctx, db, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := a.ExtendTTL(ctx, db, time.Hour); err != nil {
			t.Fatal(err)
		}
		info, err := m.Get(ctx, db, "extend")
		if err != nil {
			t.Fatal(err)
		}
		if info.Remaining < 59*time.Minute || info.TTL != time.Hour {
			t.Fatalf("after ExtendTTL(1h): %+v", info)
		}
		if err := b.Acquire(ctx, db, time.Minute); !errors.Is(err, distrlock.ErrLockAlreadyAcquired) {
			t.Fatalf("Acquire of an extended lock = %v, want ErrLockAlreadyAcquired", err)
		}
		if err := a.Release(ctx, db); err != nil {
			t.Fatal(err)
		}
		if err := a.Release(ctx, db); !errors.Is(err, distrlock.ErrLockAlreadyReleased) {
			t.Fatalf("second Release = %v, want ErrLockAlreadyReleased", err)
		}
		if err := a.Extend(ctx, db); !errors.Is(err, distrlock.ErrLockAlreadyReleased) {
			t.Fatalf("Extend after Release = %v, want ErrLockAlreadyReleased", err)
		}
		if err := b.Acquire(ctx, db, time.Minute); err != nil {
			t.Fatalf("Acquire after Release: %v", err)
		}
	})

	t.Run("Fence", func(t *testing.T) {
		a, b := newLock(t, "fence"), newLock(t, "fence")
		var fences []int64
		for i := range 3 {
			l := &a
			if i%2 == 1 {
				l = &b
			}
			if err := l.Acquire(ctx, db, time.Minute); err != nil {
				t.Fatal(err)
			}
			fences = append(fences, l.Fence())
			if err := l.Release(ctx, db); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.AcquireWithStaticToken(ctx, db, "static", time.Minute); err != nil {
			t.Fatal(err)
		}
		fences = append(fences, a.Fence())
		if err := a.AcquireWithStaticToken(ctx, db, "static", time.Minute); err != nil {
			t.Fatal(err)
		}
		fences = append(fences, a.Fence())
		for i, f := range fences {
			if f != int64(i+1) {
				t.Fatalf("fences %v, want 1, 2, 3, 4, 5", fences)
			}
		}
	})

	t.Run("Heartbeat", func(t *testing.T) {
		// The heartbeats of several leases on one *sql.DB extend them together, through the batched
		// statement (one lease alone would take Extend's); each outlives its TTL several times over and
		// stays exclusive.
		const ttl = 200 * time.Millisecond
		keys := []string{"heartbeat-a", "heartbeat-b", "heartbeat-c"}
		var leases []*distrlock.Lease
		var firstEnd []time.Time
		for _, key := range keys {
			lease, err := m.Hold(ctx, db, key, distrlock.WithLockTTL(ttl), distrlock.WithPeriodicExtendInterval(50*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			leases = append(leases, lease)
			info, err := m.Get(ctx, db, key)
			if err != nil {
				t.Fatal(err)
			}
			firstEnd = append(firstEnd, info.ExpiresAt)
		}
		others := make([]distrlock.DBLock, len(keys))
		for i, key := range keys {
			others[i] = newLock(t, key)
		}
		for deadline := time.Now().Add(4 * ttl); time.Now().Before(deadline); time.Sleep(25 * time.Millisecond) {
			for i := range others {
				if err := others[i].Acquire(ctx, db, time.Minute); !errors.Is(err, distrlock.ErrLockAlreadyAcquired) {
					t.Fatalf("Acquire of %s while held = %v, want ErrLockAlreadyAcquired", keys[i], err)
				}
			}
		}
		for i, key := range keys {
			info, err := m.Get(ctx, db, key)
			if err != nil {
				t.Fatal(err)
			}
			if !info.ExpiresAt.After(firstEnd[i].Add(2 * ttl)) {
				t.Fatalf("%s: lease ends at %v, acquired to end at %v: the heartbeat did not extend it", key, info.ExpiresAt, firstEnd[i])
			}
			if err := leases[i].Release(ctx); err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			if err := others[i].Acquire(ctx, db, time.Minute); err != nil {
				t.Fatalf("Acquire of %s after the lease's Release: %v", key, err)
			}
		}
	})

	t.Run("NullClock", func(t *testing.T) {
		// A clock that reads NULL fails the acquire instead of writing a NULL expiry, which would read as
		// released: on a new, a released and a held key alike.
		b, err := os.ReadFile(filepath.Join("..", "..", "schema", "sqlite", "queries", "acquire.sql"))
		if err != nil {
			t.Fatal(err)
		}
		acquire := string(b)
		if strings.Count(acquire, "julianday('now')") < 3 {
			t.Fatalf("acquire.sql reads the clock as julianday('now') fewer than 3 times:\n%s", acquire)
		}
		nullClock := strings.ReplaceAll(acquire, "julianday('now')", "julianday(NULL)")
		try := func(key, token string) error {
			var fence int64
			// The waiter's ticket (none) and the hand-over grace (100 ms) follow the lock's values.
			return db.QueryRow(nullClock, key, token, int64(time.Minute/time.Microsecond), "", "", int64(0), int64(100000)).Scan(&fence)
		}
		released := newLock(t, "nullclock-released")
		if err := released.Acquire(ctx, db, time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := released.Release(ctx, db); err != nil {
			t.Fatal(err)
		}
		held := newLock(t, "nullclock-held")
		if err := held.Acquire(ctx, db, time.Minute); err != nil {
			t.Fatal(err)
		}
		want := map[string]distrlock.LockInfo{
			"nullclock-new":      {Fence: 0},
			"nullclock-released": {Fence: 1, Held: false},
			"nullclock-held":     {Fence: 1, Held: true, Token: held.Token()},
		}
		for key, w := range want {
			if err := try(key, "null-clock"); err == nil || !strings.Contains(err.Error(), "NOT NULL") {
				t.Fatalf("acquire of %s on a NULL clock: %v, want a NOT NULL constraint failure", key, err)
			}
			info, err := m.Get(ctx, db, key)
			if err != nil {
				t.Fatal(err)
			}
			if info.Fence != w.Fence || info.Held != w.Held || info.Token == "null-clock" || w.Held && info.Token != w.Token {
				t.Fatalf("%s after the NULL-clock acquire: %+v, want fence %d, held %v", key, info, w.Fence, w.Held)
			}
		}
	})
}
