package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"cirello.io/pglock"
	"github.com/bsm/redislock"
	"github.com/redis/go-redis/v9"

	"github.com/distrlock/distrlock"
	"github.com/distrlock/distrlock/internal/stmtcount"
)

// parallel is scenario (c): g goroutines, each cycling acquire+release on a key of its own, for d.
func parallel(ctx context.Context, l *locker, g int, d time.Duration) (float64, error) {
	var ops atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for i := range g {
		key := fmt.Sprintf("bench-%d", i)
		wg.Go(func() {
			for time.Since(start) < d {
				release, err := l.acquire(ctx, key)
				if err == nil {
					err = release(ctx)
				}
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				ops.Add(1)
			}
		})
	}
	wg.Wait()
	return float64(ops.Load()) / time.Since(start).Seconds(), firstErr
}

// waiter takes one key with the library's own waiting and returns its release.
type waiter func(ctx context.Context) (release func(context.Context) error, err error)

type handoffResult struct {
	perSec       float64 // hand-overs per second: acquisitions by another goroutine than the last holder
	acquisitions int
	p50, p99     time.Duration // from a release to the next acquisition by another goroutine
	overlaps     int64
}

// handoff is scenario (d): g goroutines contend for one key with the library's own waiting, each holding
// it for 1 ms of work and then trying again at once. It measures hand-overs (the lock taken by another
// goroutine than the one that released it; a releaser that takes it straight back is no hand-over) per
// second and the time from a release to the next hand-over, and checks in process that never two hold the
// key at once.
func handoff(ctx context.Context, w waiter, g int, d time.Duration) (handoffResult, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		holders, overlaps atomic.Int64
		mu                sync.Mutex
		lastRelease       time.Time
		lastHolder        = -1
		gaps              []time.Duration
		n                 int
		firstErr          error
	)
	var wg sync.WaitGroup
	for id := range g {
		wg.Go(func() {
			for ctx.Err() == nil {
				release, err := w(ctx)
				if err != nil {
					if ctx.Err() == nil {
						mu.Lock()
						firstErr = cmpErr(firstErr, err)
						mu.Unlock()
					}
					return
				}
				got := time.Now()
				if holders.Add(1) != 1 {
					overlaps.Add(1)
				}
				mu.Lock()
				if lastHolder >= 0 && lastHolder != id {
					gaps = append(gaps, got.Sub(lastRelease))
				}
				lastHolder = id
				n++
				mu.Unlock()
				time.Sleep(time.Millisecond) // the work
				holders.Add(-1)
				mu.Lock()
				lastRelease = time.Now()
				mu.Unlock()
				if err := release(context.WithoutCancel(ctx)); err != nil {
					mu.Lock()
					firstErr = cmpErr(firstErr, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	r := handoffResult{perSec: float64(len(gaps)) / d.Seconds(), acquisitions: n, overlaps: overlaps.Load()}
	if len(gaps) > 0 {
		slices.Sort(gaps)
		r.p50, r.p99 = gaps[len(gaps)/2], gaps[len(gaps)*99/100]
	}
	return r, firstErr
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// oursWaiter waits with AcquireWait, every goroutine through one manager, as one process's would.
func oursWaiter(ctx context.Context, db *sql.DB, d distrlock.Dialect) (waiter, func(), error) {
	m, err := distrlock.NewDBManager(d, distrlock.WithTableName("bench_distrlock_wait"))
	if err != nil {
		return nil, nil, err
	}
	if err := m.CreateTable(ctx, db); err != nil {
		return nil, nil, err
	}
	return func(ctx context.Context) (func(context.Context) error, error) {
			l, err := m.NewLock(ctx, db, "contended")
			if err != nil {
				return nil, err
			}
			if err := l.AcquireWait(ctx, db, time.Minute, distrlock.WaitForever); err != nil {
				return nil, err
			}
			return func(ctx context.Context) error { return l.Release(ctx, db) }, nil
		}, func() {
			_, _ = db.ExecContext(context.Background(), m.DropTableSQL())
		}, nil
}

// synchPoll is how often the re-enacted synch WaitLock tries again: WaitLock takes the interval from its
// caller; 10 ms is a short one, in synch's favour.
const synchPoll = 10 * time.Millisecond

// synchWaiter is sosnovski/synch's WaitLock, re-enacted: its TryLock (the upsert and the heartbeat UPDATE,
// which finds the row only if the upsert took it) every synchPoll until it succeeds; Close deletes the row.
func synchWaiter(ctx context.Context, db *sql.DB, q synchSQL) (waiter, func(), error) {
	if _, err := db.ExecContext(ctx, q.create); err != nil {
		return nil, nil, err
	}
	var owners atomic.Int64
	return func(ctx context.Context) (func(context.Context) error, error) {
		owner := fmt.Sprintf("waiter-%d", owners.Add(1))
		for {
			if _, err := db.ExecContext(ctx, q.upsert, "contended", owner); err != nil {
				return nil, err
			}
			res, err := db.ExecContext(ctx, q.heartbeat, "contended", owner)
			if err != nil {
				return nil, err
			}
			if n, err := res.RowsAffected(); err != nil {
				return nil, err
			} else if n == 1 {
				return func(ctx context.Context) error {
					_, err := db.ExecContext(ctx, q.delete, "contended", owner)
					return err
				}, nil
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(synchPoll):
			}
		}
	}, func() { _, _ = db.ExecContext(context.Background(), q.drop) }, nil
}

// advisoryWaiter is PostgreSQL's blocking advisory lock, each goroutine on a session of its own: the floor.
func advisoryWaiter(db *sql.DB) waiter {
	return func(ctx context.Context) (func(context.Context) error, error) {
		conn, err := db.Conn(ctx)
		if err != nil {
			return nil, err
		}
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(42)"); err != nil {
			conn.Close()
			return nil, err
		}
		return func(ctx context.Context) error {
			_, err := conn.ExecContext(ctx, "SELECT pg_advisory_unlock(42)")
			conn.Close()
			return err
		}, nil
	}
}

// redisWaiter is redislock with an exponential backoff retry like distrlock's default (2 to 50 ms).
func redisWaiter(client *redis.Client) waiter {
	rl := redislock.New(client)
	return func(ctx context.Context) (func(context.Context) error, error) {
		l, err := rl.Obtain(ctx, "bench:contended", time.Minute, &redislock.Options{
			RetryStrategy: redislock.ExponentialBackoff(2*time.Millisecond, 50*time.Millisecond)})
		if err != nil {
			return nil, err
		}
		return l.Release, nil
	}
}

// heartbeatTTL and heartbeatWindow set scenario (f): leases of 4 s, extended every 2 s (TTL/2), counted
// over five intervals after one to settle.
const (
	heartbeatTTL    = 4 * time.Second
	heartbeatWindow = 5 * heartbeatTTL / 2
)

// heartbeatLoad is what scenario (f) measured for one number of leases.
type heartbeatLoad struct {
	statements, prepares int64 // sent during the window
	lost                 int   // leases that ended before their release
}

// heartbeats is scenario (f): n leases held through one manager on db, taken by 16 goroutines, and what the
// database receives while they are extended during heartbeatWindow.
func heartbeats(ctx context.Context, db *sql.DB, c *stmtcount.Counter, d distrlock.Dialect, n int) (heartbeatLoad, error) {
	m, err := distrlock.NewDBManager(d, distrlock.WithTableName("bench_distrlock_hb"))
	if err != nil {
		return heartbeatLoad{}, err
	}
	if err := m.CreateTable(ctx, db); err != nil {
		return heartbeatLoad{}, err
	}
	defer func() { _, _ = db.ExecContext(context.Background(), m.DropTableSQL()) }()
	leases := make([]*distrlock.Lease, n)
	defer func() {
		var wg sync.WaitGroup
		for g := range 16 {
			wg.Go(func() {
				for i := g; i < n; i += 16 {
					if leases[i] != nil {
						_ = leases[i].Release(context.Background())
					}
				}
			})
		}
		wg.Wait()
	}()
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for g := range 16 {
		wg.Go(func() {
			for i := g; i < n && errs[g] == nil; i += 16 {
				leases[i], errs[g] = m.Hold(ctx, db, fmt.Sprintf("held-%d", i), distrlock.WithLockTTL(heartbeatTTL))
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return heartbeatLoad{}, err
	}
	time.Sleep(heartbeatTTL / 2) // one interval for the extends of the leases taken last to fall in step
	before := c.Counts()
	time.Sleep(heartbeatWindow)
	got := c.Counts().Sub(before)
	r := heartbeatLoad{statements: got.Statements, prepares: got.Prepares}
	for _, l := range leases {
		if l.Lost() != nil {
			r.lost++
		}
	}
	return r, nil
}

// pglockWaiter is pglock's own waiting: after a refusal it sleeps a whole lease (2 s here) before trying again.
func pglockWaiter(db *sql.DB) (waiter, func(), error) {
	c, err := pglock.New(db, pglock.WithCustomTable("bench_pglock_wait"), pglock.WithLeaseDuration(2*time.Second),
		pglock.WithHeartbeatFrequency(0))
	if err != nil {
		return nil, nil, err
	}
	if err := c.TryCreateTable(); err != nil {
		return nil, nil, err
	}
	return func(ctx context.Context) (func(context.Context) error, error) {
		l, err := c.AcquireContext(ctx, "contended")
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) error { return c.ReleaseContext(ctx, l) }, nil
	}, func() { _ = c.DropTable() }, nil
}
