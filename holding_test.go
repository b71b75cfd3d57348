package distrlock

import (
	"context"
	"database/sql"
	"errors"
	"net/url"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/distrlock/distrlock/internal/faultproxy"
)

// proxiedDB opens tdb's database through a fault proxy in front of its server.
func proxiedDB(t *testing.T, tdb *testDB) (*sql.DB, *faultproxy.Proxy) {
	t.Helper()
	var target string
	var dsnVia func(addr string) string
	switch tdb.driver {
	case "pgx":
		u, err := url.Parse(tdb.dsn)
		if err != nil {
			t.Fatal(err)
		}
		target = u.Host
		dsnVia = func(addr string) string { v := *u; v.Host = addr; return v.String() }
	case "mysql":
		cfg, err := mysql.ParseDSN(tdb.dsn)
		if err != nil {
			t.Fatal(err)
		}
		target = cfg.Addr
		dsnVia = func(addr string) string { c := cfg.Clone(); c.Addr = addr; return c.FormatDSN() }
	default:
		t.Fatalf("no network between the client and %s", tdb.name)
	}
	p, err := faultproxy.Start(target)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open(tdb.driver, dsnVia(p.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.SetMode(faultproxy.Forward)
		_ = db.Close()
		_ = p.Close()
	})
	return db, p
}

// networkDBs are the databases a client reaches over TCP; SQLite runs in-process, with no network to cut.
func networkDBs(t *testing.T) []*testDB {
	return []*testDB{openPostgres(t), openMySQL(t, "")}
}

// TestBlackholedHolderStopsBeforeAnotherAcquires: once the holder's network goes silent, its work's context
// ends before a second client, connected directly, can take the lock; and DoExclusively returns within
// TTL + release timeout + 1 s of the cut.
func TestBlackholedHolderStopsBeforeAnotherAcquires(t *testing.T) {
	const (
		ttl            = 3 * time.Second
		interval       = 500 * time.Millisecond
		margin         = 500 * time.Millisecond
		releaseTimeout = time.Second
	)
	for _, tdb := range networkDBs(t) {
		t.Run(tdb.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			m := newTestManager(t, tdb)
			holderDB, proxy := proxiedDB(t, tdb)
			holder, err := m.NewLock(ctx, holderDB, "blackhole")
			if err != nil {
				t.Fatal(err)
			}

			started := make(chan struct{})
			var cancelledAt time.Time
			var cause error
			result := make(chan error, 1)
			go func() {
				result <- holder.DoExclusively(ctx, holderDB, func(ctx context.Context) error {
					close(started)
					<-ctx.Done()
					cancelledAt, cause = time.Now(), context.Cause(ctx)
					return ctx.Err()
				}, WithLockTTL(ttl), WithPeriodicExtendInterval(interval), WithSafetyMargin(margin),
					WithReleaseTimeout(releaseTimeout))
			}()
			<-started
			cutAt := time.Now()
			proxy.SetMode(faultproxy.Blackhole)

			other, err := m.NewLock(ctx, tdb.db, "blackhole")
			if err != nil {
				t.Fatal(err)
			}
			var acquiredAt time.Time
			for attempts := 0; ; attempts++ {
				err := other.Acquire(ctx, tdb.db, ttl)
				if err == nil {
					acquiredAt = time.Now()
					break
				}
				if !errors.Is(err, ErrLockAlreadyAcquired) {
					t.Fatalf("second client: %v", err)
				}
				if time.Since(cutAt) > 3*ttl {
					t.Fatalf("second client never got the lock (%d attempts)", attempts)
				}
				time.Sleep(10 * time.Millisecond)
			}
			err = <-result
			returnedAt := time.Now()

			t.Logf("after the cut: work cancelled at %v, second client acquired at %v, DoExclusively returned at %v",
				cancelledAt.Sub(cutAt).Round(time.Millisecond), acquiredAt.Sub(cutAt).Round(time.Millisecond),
				returnedAt.Sub(cutAt).Round(time.Millisecond))
			if !cancelledAt.Before(acquiredAt) {
				t.Errorf("work cancelled %v after the second client acquired", cancelledAt.Sub(acquiredAt))
			}
			if !errors.Is(cause, ErrLockLost) || !errors.Is(err, ErrLockLost) {
				t.Errorf("cause %v, DoExclusively %v: want ErrLockLost", cause, err)
			}
			if limit := ttl + releaseTimeout + time.Second; returnedAt.Sub(cutAt) > limit {
				t.Errorf("DoExclusively returned %v after the cut, more than %v", returnedAt.Sub(cutAt), limit)
			}
		})
	}
}

// TestAcquireWaitHandoff measures how soon a waiter gets a lock after its holder starts releasing it: a
// waiter sharing the holder's manager is woken by the release; one with its own manager (as in another
// process) polls with the default backoff. Both medians must be within 50 ms.
func TestAcquireWaitHandoff(t *testing.T) {
	const trials = 15
	for _, tdb := range []*testDB{openPostgres(t), openMySQL(t, "interpolateParams=true"), openSQLite(t)} {
		t.Run(tdb.name, func(t *testing.T) {
			ctx := context.Background()
			m := newTestManager(t, tdb)
			other, err := NewDBManager(tdb.dialect, WithTableName(m.TableName()))
			if err != nil {
				t.Fatal(err)
			}
			for _, waiterMgr := range []struct {
				name string
				m    *DBManager
			}{{"same manager", m}, {"other manager", other}} {
				var lat []time.Duration
				for range trials {
					holder, _ := m.NewLock(ctx, tdb.db, "handoff")
					waiter, _ := waiterMgr.m.NewLock(ctx, tdb.db, "handoff")
					if err := holder.Acquire(ctx, tdb.db, 10*time.Second); err != nil {
						t.Fatal(err)
					}
					got := make(chan time.Time, 1)
					go func() {
						if err := waiter.AcquireWait(ctx, tdb.db, 10*time.Second, 5*time.Second); err != nil {
							t.Error(err)
						}
						got <- time.Now()
					}()
					time.Sleep(100 * time.Millisecond) // the waiter is in its backoff by now
					releaseStart := time.Now()
					if err := holder.Release(ctx, tdb.db); err != nil {
						t.Fatal(err)
					}
					lat = append(lat, (<-got).Sub(releaseStart))
					if err := waiter.Release(ctx, tdb.db); err != nil {
						t.Fatal(err)
					}
				}
				slices.Sort(lat)
				median := lat[len(lat)/2]
				t.Logf("%s: release-to-acquire median %v, max %v over %d handoffs",
					waiterMgr.name, median.Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond), trials)
				// A waiter of another manager reads at most every backoff maximum (50 ms); a broken wake
				// would take a second or the TTL. The bound leaves room for slow statements (-race, SQLite
				// on a loaded machine): speed itself is measured by bench/, not here.
				if limit := 2 * DefaultWaitMaxBackoff; median > limit {
					t.Errorf("%s: median handoff %v, want <= %v", waiterMgr.name, median, limit)
				}
			}
		})
	}
}

// TestAcquireWaitEnds: a wait shorter than the TTL ends with contention and timeout; a cancelled wait ends
// with contention and cancellation, and the two are told apart.
func TestAcquireWaitEnds(t *testing.T) {
	for _, tdb := range []*testDB{openPostgres(t), openMySQL(t, ""), openSQLite(t)} {
		t.Run(tdb.name, func(t *testing.T) {
			ctx := context.Background()
			m := newTestManager(t, tdb)
			holder, _ := m.NewLock(ctx, tdb.db, "busy")
			if err := holder.Acquire(ctx, tdb.db, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			waiter, _ := m.NewLock(ctx, tdb.db, "busy")

			start := time.Now()
			err := waiter.AcquireWait(ctx, tdb.db, 10*time.Second, 300*time.Millisecond)
			took := time.Since(start)
			if !errors.Is(err, ErrLockAlreadyAcquired) || !errors.Is(err, ErrWaitTimeout) ||
				!errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				t.Errorf("timed-out wait: %v", err)
			}
			if took < 300*time.Millisecond || took > 2*time.Second {
				t.Errorf("timed-out wait took %v, want about 300ms", took)
			}

			cctx, cancel := context.WithCancel(ctx)
			time.AfterFunc(200*time.Millisecond, cancel)
			err = waiter.AcquireWait(cctx, tdb.db, 10*time.Second, WaitForever)
			if !errors.Is(err, ErrLockAlreadyAcquired) || !errors.Is(err, context.Canceled) || errors.Is(err, ErrWaitTimeout) {
				t.Errorf("cancelled wait: %v", err)
			}
			if waiter.Fence() != 0 {
				t.Errorf("waiter has fence %d after failing", waiter.Fence())
			}
		})
	}
}

// TestInspection covers Get, List, Remaining, ExtendTTL, Owner and Data, and CreateTable, per dialect.
func TestInspection(t *testing.T) {
	for _, tdb := range []*testDB{openPostgres(t), openMySQL(t, ""), openSQLite(t)} {
		t.Run(tdb.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			m := newTestManager(t, tdb)
			if err := m.CreateTable(ctx, tdb.db); err != nil {
				t.Fatalf("CreateTable on an existing table: %v", err)
			}

			info, err := m.Get(ctx, tdb.db, "never")
			if err != nil || info.Held || info.Fence != 0 || info.Key != "never" {
				t.Fatalf("Get of a key never acquired: %+v, %v", info, err)
			}

			lock, _ := m.NewLock(ctx, tdb.db, "inspect")
			lock.Owner = "host-1 ü"
			lock.Data = "\x00\x01\x02\xff"
			if err := lock.Acquire(ctx, tdb.db, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			info, err = m.Get(ctx, tdb.db, "inspect")
			if err != nil {
				t.Fatal(err)
			}
			if !info.Held || info.Token != lock.Token() || info.Owner != lock.Owner ||
				info.Data != lock.Data || info.Fence != lock.Fence() || info.TTL != 10*time.Second {
				t.Errorf("Get: %+v", info)
			}
			if d := info.ExpiresAt.Sub(info.AcquiredAt); d != 10*time.Second {
				t.Errorf("ExpiresAt - AcquiredAt = %v, want 10s", d)
			}
			if info.Remaining <= 9*time.Second || info.Remaining > 10*time.Second || info.ReadAt.Before(info.AcquiredAt) {
				t.Errorf("Remaining %v, ReadAt %v, AcquiredAt %v", info.Remaining, info.ReadAt, info.AcquiredAt)
			}
			if rem, err := lock.Remaining(ctx, tdb.db); err != nil || rem <= 9*time.Second || rem > 10*time.Second {
				t.Errorf("Remaining = %v, %v", rem, err)
			}
			if err := lock.ExtendTTL(ctx, tdb.db, 30*time.Second); err != nil || lock.TTL != 30*time.Second {
				t.Fatalf("ExtendTTL(30s) = %v, TTL %v", err, lock.TTL)
			}
			if rem, _ := lock.Remaining(ctx, tdb.db); rem <= 29*time.Second || rem > 30*time.Second {
				t.Errorf("after ExtendTTL(30s): remaining %v", rem)
			}
			if err := lock.ExtendTTL(ctx, tdb.db, 2*time.Second); err != nil {
				t.Fatal(err)
			}
			if info, _ := m.Get(ctx, tdb.db, "inspect"); info.Remaining > 2*time.Second || info.TTL != 2*time.Second {
				t.Errorf("after ExtendTTL(2s): %+v", info)
			}
			if err := lock.ExtendTTL(ctx, tdb.db, 0); !errors.Is(err, ErrInvalidTTL) {
				t.Errorf("ExtendTTL(0) = %v", err)
			}
			stranger, _ := m.NewLock(ctx, tdb.db, "inspect")
			if err := stranger.Acquire(ctx, tdb.db, time.Second); !errors.Is(err, ErrLockAlreadyAcquired) {
				t.Fatalf("stranger acquire: %v", err)
			}
			if _, err := stranger.Remaining(ctx, tdb.db); !errors.Is(err, ErrLockAlreadyReleased) {
				t.Errorf("Remaining under another's token: %v", err)
			}

			for _, k := range []string{"p/a", "p/b", "ü/x", "q/c"} {
				l, _ := m.NewLock(ctx, tdb.db, k)
				if err := l.Acquire(ctx, tdb.db, 10*time.Second); err != nil {
					t.Fatal(err)
				}
				if k == "p/b" {
					if err := l.Release(ctx, tdb.db); err != nil {
						t.Fatal(err)
					}
				}
			}
			keys := func(opts ListOptions) []string {
				infos, err := m.List(ctx, tdb.db, opts)
				if err != nil {
					t.Fatalf("List(%+v): %v", opts, err)
				}
				var ks []string
				for _, i := range infos {
					ks = append(ks, i.Key)
				}
				return ks
			}
			if got := keys(ListOptions{Prefix: "p/"}); !slices.Equal(got, []string{"p/a", "p/b"}) {
				t.Errorf("prefix p/: %v", got)
			}
			if got := keys(ListOptions{Prefix: "p/", HeldOnly: true}); !slices.Equal(got, []string{"p/a"}) {
				t.Errorf("prefix p/, held only: %v", got)
			}
			if got := keys(ListOptions{Prefix: "ü/"}); !slices.Equal(got, []string{"ü/x"}) {
				t.Errorf("prefix ü/: %v", got)
			}
			if got := keys(ListOptions{Limit: 2}); len(got) != 2 {
				t.Errorf("limit 2: %v", got)
			}
			all := keys(ListOptions{})
			if !sort.StringsAreSorted(all) || len(all) != 5 {
				t.Errorf("all: %v", all)
			}
		})
	}
}

// TestLease: a held lease outlives the acquire's context and its TTL while the heartbeat runs, Release is
// idempotent and ends the lease's context; a lease whose row is taken away underneath is reported lost.
func TestLease(t *testing.T) {
	for _, tdb := range []*testDB{openPostgres(t), openMySQL(t, ""), openSQLite(t)} {
		t.Run(tdb.name, func(t *testing.T) {
			t.Parallel()
			m := newTestManager(t, tdb)
			acqCtx, cancelAcq := context.WithCancel(context.Background())
			lease, err := m.Hold(acqCtx, tdb.db, "leader", WithLockTTL(time.Second),
				WithPeriodicExtendInterval(200*time.Millisecond), WithOwner("node-1"))
			cancelAcq()
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(2500 * time.Millisecond) // more than twice the TTL
			ctx := context.Background()
			if err := lease.Context().Err(); err != nil || lease.Lost() != nil {
				t.Fatalf("lease ended: %v, %v", err, lease.Lost())
			}
			info, err := m.Get(ctx, tdb.db, "leader")
			if err != nil || !info.Held || info.Token != lease.Token() || info.Owner != "node-1" || info.Fence != lease.Fence() {
				t.Fatalf("Get while held: %+v, %v", info, err)
			}
			if err := lease.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if err := lease.Release(ctx); err != nil {
				t.Fatalf("second Release: %v", err)
			}
			if lease.Context().Err() == nil {
				t.Fatal("lease context alive after Release")
			}
			next, _ := m.NewLock(ctx, tdb.db, "leader")
			if err := next.Acquire(ctx, tdb.db, time.Second); err != nil || next.Fence() <= lease.Fence() {
				t.Fatalf("acquire after Release: %v, fence %d after %d", err, next.Fence(), lease.Fence())
			}

			// A lease whose lock is taken over (here: released by its token from elsewhere, then acquired).
			lost, err := m.Hold(ctx, tdb.db, "taken", WithLockTTL(time.Second), WithPeriodicExtendInterval(100*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			thief, _ := m.NewLock(ctx, tdb.db, "taken")
			if err := thief.AcquireWithStaticToken(ctx, tdb.db, lost.Token(), time.Second); err != nil {
				t.Fatal(err)
			}
			if err := thief.Release(ctx, tdb.db); err != nil {
				t.Fatal(err)
			}
			select {
			case <-lost.Context().Done():
			case <-time.After(2 * time.Second):
				t.Fatal("lease not cancelled after its lock was released underneath")
			}
			if !errors.Is(context.Cause(lost.Context()), ErrLockLost) || !errors.Is(lost.Release(ctx), ErrLockLost) {
				t.Errorf("cause %v, Release %v: want ErrLockLost", context.Cause(lost.Context()), lost.Release(ctx))
			}
		})
	}
}

// TestWaitLongerThanLease: DoExclusively and Hold with WithWait count the lease from the attempt that took
// the lock, not from the start of the wait: a wait longer than the TTL less the margin does not make the
// new holder's lease count as lost at once.
func TestWaitLongerThanLease(t *testing.T) {
	for _, tdb := range []*testDB{openPostgres(t), openMySQL(t, ""), openSQLite(t)} {
		t.Run(tdb.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			m := newTestManager(t, tdb)
			const ttl = time.Second // margin 100 ms: a wait over 900 ms used to cost the whole lease
			hold := func() {
				t.Helper()
				holder, _ := m.NewLock(ctx, tdb.db, "long-wait")
				if err := holder.Acquire(ctx, tdb.db, 1500*time.Millisecond); err != nil {
					t.Fatal(err)
				}
			}

			hold()
			waiter, _ := m.NewLock(ctx, tdb.db, "long-wait")
			start := time.Now()
			var waited time.Duration
			err := waiter.DoExclusively(ctx, tdb.db, func(ctx context.Context) error {
				waited = time.Since(start)
				time.Sleep(ttl / 2)
				return context.Cause(ctx)
			}, WithLockTTL(ttl), WithWait(10*time.Second))
			if err != nil {
				t.Fatalf("DoExclusively after a wait of %v: %v", waited, err)
			}
			if waited < 900*time.Millisecond {
				t.Fatalf("got the lock after %v: the holder's lease did not make it wait", waited)
			}

			hold()
			lease, err := m.Hold(ctx, tdb.db, "long-wait", WithLockTTL(ttl), WithWait(10*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(ttl / 2)
			if err := lease.Lost(); err != nil {
				t.Errorf("lease lost %v after a wait: %v", ttl/2, err)
			}
			if err := lease.Release(ctx); err != nil {
				t.Errorf("release: %v", err)
			}
		})
	}
}

// TestDoOwnerOptionsLeaveLockAlone: WithOwner and WithData apply to one acquisition; the DBLock keeps its own.
func TestDoOwnerOptionsLeaveLockAlone(t *testing.T) {
	tdb := openSQLite(t)
	ctx := context.Background()
	m := newTestManager(t, tdb)
	lock, _ := m.NewLock(ctx, tdb.db, "owned")
	lock.Owner, lock.Data = "mine", "my data"
	err := lock.DoExclusively(ctx, tdb.db, func(ctx context.Context) error {
		info, err := m.Get(ctx, tdb.db, "owned")
		if err != nil {
			return err
		}
		if info.Owner != "" || info.Data != "per call" {
			t.Errorf("stored owner %q and data %q, want none and %q", info.Owner, info.Data, "per call")
		}
		return nil
	}, WithOwner(""), WithData("per call"))
	if err != nil {
		t.Fatal(err)
	}
	if lock.Owner != "mine" || lock.Data != "my data" {
		t.Errorf("the DBLock's Owner and Data became %q and %q", lock.Owner, lock.Data)
	}
}

// TestIntegrationInspectQueue: while one waiter of AcquireWait is queued for a held lock, Get and List
// report Queued 1.
func TestIntegrationInspectQueue(t *testing.T) {
	integEach(t, allDBs(t), func(t *testing.T, tdb *testDB) {
		ctx := t.Context()
		m := newTestManager(t, tdb)
		holder, waiter := integLock(t, m, tdb.db, "q"), integLock(t, m, tdb.db, "q")
		integAcquire(ctx, t, holder, tdb.db, time.Minute)
		if info, err := m.Get(ctx, tdb.db, "q"); err != nil || info.Queued != 0 {
			t.Fatalf("Get before the wait: queued %d, %v; want 0", info.Queued, err)
		}
		waitCtx, cancel := context.WithCancel(ctx)
		waited := make(chan error, 1)
		go func() { waited <- waiter.AcquireWait(waitCtx, tdb.db, time.Minute, WaitForever) }()
		defer func() { cancel(); <-waited }()
		var info LockInfo
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			var err error
			if info, err = m.Get(ctx, tdb.db, "q"); err != nil {
				t.Fatal(err)
			}
			if info.Queued > 0 {
				break
			}
		}
		list, err := m.List(ctx, tdb.db, ListOptions{Prefix: "q"})
		if err != nil {
			t.Fatal(err)
		}
		if info.Queued != 1 || len(list) != 1 || list[0].Queued != 1 {
			t.Fatalf("Get: queued %d; List: %+v; want 1 queued in both", info.Queued, list)
		}
	})
}
