package torture

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distrlock/distrlock"
	"github.com/distrlock/distrlock/pgnotify"
)

// Worker modes: the ways of holding a lock the suite exercises, and the broken ones that prove the checker.
const (
	ModeDo    = "do"    // DoExclusively, waiting for the lock
	ModeLease = "lease" // Hold and a Lease, waiting for the lock
	ModeTx    = "tx"    // Acquire inside a transaction kept open a while, then work after the commit
	// ModeIgnoreLoss is DoExclusively whose function ignores its context: a holder that does not stop
	// when its heartbeat fails. Broken on purpose.
	ModeIgnoreLoss = "ignore-loss"
	// ModeOverstay acquires and then works for twice the TTL without extending, trusting its own clock
	// for a lease the database has ended. Broken on purpose.
	ModeOverstay = "overstay"
	// ModeGuarded acquires and then works for twice the TTL without extending, as ModeOverstay does, but
	// writes the resource in the lock's own database with no fence check, each step in a transaction that
	// starts with DBLock.Guard, and stops when the guard refuses: correct without fences.
	ModeGuarded = "guarded"
	// ModeUnguarded is ModeGuarded without the guard. Broken on purpose.
	ModeUnguarded = "unguarded"
	// ModeChecked is ModeGuarded with a plain read of the lease (DBManager.Get: held, same fence) in
	// place of the guard: it checks the expiry but does not share-lock the row, so a competitor can take
	// the lock before the step commits. Broken on purpose: it proves that the share lock is what counts.
	ModeChecked = "checked"
	// ModeElect campaigns in the election on ElectionKey (Campaign and Resign, or Run with callbacks) and
	// works while it leads, under the term's context, with the term as the fence.
	ModeElect = "elect"
	// ModePeriod runs a job on PeriodKey every 100 to 200 ms under DoExclusively with
	// WithLockAtLeastFor(the TTL): across the fleet it runs at most once per TTL.
	ModePeriod = "period"
)

// The keys of the election and of the periodic job, apart from the locks' keys.
const (
	ElectionKey = "election"
	PeriodKey   = "period"
)

// ElectionTTL is the election's lease for locks of lease ttl: half as long again, so that its safety
// margin (a tenth of it, the election's fixed default) is 300 ms for the suite's 2 s.
func ElectionTTL(ttl time.Duration) time.Duration { return ttl + ttl/2 }

// WorkerConfig is one worker process's part.
type WorkerConfig struct {
	ID         string
	Dialect    Dialect
	LockDSN    string // through the fault proxy
	WitnessDSN string // direct
	Table      string // the lock table
	Run        string // the witness's run name
	Keys       []string
	Until      time.Time
	Mode       string
	TTL        time.Duration
	Margin     time.Duration
	// Holders is how many goroutines of the process take locks at once, through one manager and one
	// *sql.DB, so that the heartbeats of their leases share statements.
	Holders int
	// Galera: the lock DSN reaches a node of a MariaDB Galera cluster (the manager is made WithGalera).
	Galera bool
	// Notify (PostgreSQL): the manager is made WithNotifier on a pgnotify Listener of the lock DSN.
	Notify bool
}

// RunWorker takes locks and works under them until c.Until, recording each step with the witness.
// Errors from the faults (connections cut, leases lost) are expected: it counts them and goes on.
func RunWorker(ctx context.Context, c WorkerConfig) (acquired, failed int, err error) {
	ctx, cancel := context.WithDeadline(ctx, c.Until)
	defer cancel()
	db, err := sql.Open(c.Dialect.Driver, c.LockDSN)
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	wdb, err := sql.Open(c.Dialect.Driver, c.WitnessDSN)
	if err != nil {
		return 0, 0, err
	}
	defer wdb.Close()
	var notifier distrlock.Notifier
	if c.Notify {
		l, err := pgnotify.New(c.LockDSN, pgnotify.WithReconnectDelay(50*time.Millisecond, 500*time.Millisecond))
		if err != nil {
			return 0, 0, err
		}
		// The listener lives as long as the holders: it is stopped and waited for before RunWorker returns.
		listenCtx, stopListening := context.WithCancel(ctx)
		listened := make(chan struct{})
		go func() {
			defer close(listened)
			_ = l.Run(listenCtx) // the faults cut it off; it reconnects until the run ends
		}()
		defer func() { stopListening(); <-listened }()
		notifier = l
	}
	m, err := newManager(c.Dialect, c.Table, c.Galera, notifier)
	if err != nil {
		return 0, 0, err
	}
	w := NewWitness(c.Dialect, c.Run)
	var acq, fail atomic.Int64
	errs := make([]error, max(c.Holders, 1))
	var wg sync.WaitGroup
	for g := range errs {
		wg.Go(func() {
			holder := c
			holder.ID = fmt.Sprintf("%sh%d", c.ID, g)
			switch c.Mode {
			case ModeElect:
				errs[g] = runCandidate(ctx, holder, g%2 == 1, db, wdb, m, w, &acq, &fail)
			case ModePeriod:
				errs[g] = runPeriodic(ctx, holder, db, wdb, m, w, &acq, &fail)
			default:
				errs[g] = runHolder(ctx, holder, db, wdb, m, w, &acq, &fail)
			}
		})
	}
	wg.Wait()
	return int(acq.Load()), int(fail.Load()), errors.Join(errs...)
}

// runHolder is one holder of a worker: it takes locks and works under them until ctx ends.
func runHolder(ctx context.Context, c WorkerConfig, db, wdb *sql.DB, m *distrlock.DBManager, w *Witness, acquired, failed *atomic.Int64) error {
	opts := []distrlock.DoOption{
		distrlock.WithLockTTL(c.TTL), distrlock.WithSafetyMargin(c.Margin),
		distrlock.WithPeriodicExtendInterval((c.TTL - c.Margin) / 3),
		distrlock.WithReleaseTimeout(c.TTL), distrlock.WithWait(2 * c.TTL), distrlock.WithOwner(c.ID),
	}
	for ctx.Err() == nil {
		key := c.Keys[rand.N(len(c.Keys))]
		var waitFrom int64 // when a waiting mode begins to acquire
		if c.Mode == ModeDo || c.Mode == ModeLease {
			// Half the time the first key, so that several processes wait for it at once and the wait
			// queue hands it from one to the next.
			if rand.N(2) == 0 {
				key = c.Keys[0]
			}
			waitFrom = time.Now().UnixMicro()
		} else if c.Mode == ModeOverstay || c.Mode == ModeGuarded || c.Mode == ModeUnguarded || c.Mode == ModeChecked {
			waitFrom = time.Now().UnixMicro()
		}
		lock, err := m.NewLock(ctx, db, key)
		if err != nil {
			return err
		}
		// Mostly short holds; one in three spans a few extend intervals, so that the heartbeats run (and
		// those of the worker's holders share statements).
		steps := 2 + rand.N(4)
		if rand.N(3) == 0 {
			steps = 10 + rand.N(15)
		}
		// work does up to n steps while ctx lives (the broken modes pass a context that never ends).
		work := func(ctx context.Context, n int) error {
			acquired.Add(1)
			id := fmt.Sprintf("%s/%s/%d", key, c.ID, lock.Fence())
			for range n {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if err := w.Step(ctx, wdb, key, c.ID, id, lock.Fence(), waitFrom); err != nil {
					return err
				}
				sleep(ctx, 10*time.Millisecond+rand.N(90*time.Millisecond))
			}
			return nil
		}
		switch c.Mode {
		case ModeDo:
			err = lock.DoExclusively(ctx, db, func(ctx context.Context) error { return work(ctx, steps) }, opts...)
		case ModeLease:
			var lease *distrlock.Lease
			if lease, err = lock.Hold(ctx, db, opts...); err == nil {
				_ = work(lease.Context(), steps)
				err = lease.Release(context.WithoutCancel(ctx))
			}
		case ModeTx:
			err = holdInTx(ctx, db, &lock, c, func(ctx context.Context) error { return work(ctx, steps) })
		case ModeIgnoreLoss:
			err = lock.DoExclusively(ctx, db, func(context.Context) error {
				return work(context.WithoutCancel(ctx), int(4*c.TTL/(55*time.Millisecond)))
			}, opts...)
		case ModeOverstay:
			if err = lock.AcquireWait(ctx, db, c.TTL, 2*c.TTL); err == nil {
				_ = work(context.WithoutCancel(ctx), int(2*c.TTL/(55*time.Millisecond)))
				err = lock.Release(context.WithoutCancel(ctx), db)
			}
		case ModeGuarded, ModeUnguarded, ModeChecked:
			if err = lock.AcquireWait(ctx, db, c.TTL, 2*c.TTL); err == nil {
				acquired.Add(1)
				id := fmt.Sprintf("%s/%s/%d", key, c.ID, lock.Fence())
				var check func(context.Context, *sql.Tx) error
				switch c.Mode {
				case ModeGuarded:
					check = func(ctx context.Context, tx *sql.Tx) error { return lock.Guard(ctx, tx) }
				case ModeChecked:
					check = func(ctx context.Context, tx *sql.Tx) error {
						info, err := m.Get(ctx, tx, lock.Key)
						if err == nil && (!info.Held || info.Fence != lock.Fence()) {
							err = distrlock.ErrLockAlreadyReleased
						}
						return err
					}
				}
				err = overstayInData(ctx, db, w, &lock, check, c, id, waitFrom)
				if relErr := lock.Release(context.WithoutCancel(ctx), db); err == nil && !errors.Is(relErr, distrlock.ErrLockAlreadyReleased) {
					err = relErr
				}
			}
		default:
			return fmt.Errorf("unknown mode %q", c.Mode)
		}
		if err != nil && ctx.Err() == nil {
			failed.Add(1)
			sleep(ctx, rand.N(50*time.Millisecond))
		}
	}
	return nil
}

// runCandidate is one candidate in the election on ElectionKey until ctx ends: it campaigns, works while
// it leads, and resigns (or loses the term to a fault), then campaigns again; with run, through
// Election.Run and its callbacks instead of Campaign and Resign.
func runCandidate(ctx context.Context, c WorkerConfig, run bool, db, wdb *sql.DB, m *distrlock.DBManager, w *Witness, terms, failed *atomic.Int64) error {
	// A manager of its own: a release through a shared one would wake the process's other candidate at
	// once, ahead of the other processes' polls, and the term would seldom leave the process.
	m, err := distrlock.NewDBManager(m.Dialect(), distrlock.WithTableName(m.TableName()))
	if err != nil {
		return err
	}
	e, err := m.NewElection(db, ElectionKey, distrlock.WithElectionTTL(ElectionTTL(c.TTL)),
		distrlock.WithElectionPollInterval(c.TTL/10), distrlock.WithIdentity(c.ID))
	if err != nil {
		return err
	}
	// lead does the leader's work in term, under its context termCtx: up to n steps, each recorded only
	// while termCtx lives, so the last one recorded, the term's end, is too.
	lead := func(termCtx context.Context, term int64) {
		if term == 0 {
			return // lost already
		}
		terms.Add(1)
		id := fmt.Sprintf("%s/%s/%d", ElectionKey, c.ID, term)
		// Mostly short terms; one in four outlasts an extend of the term's lease.
		n := 3 + rand.N(6)
		if rand.N(4) == 0 {
			n = 20 + rand.N(10)
		}
		for range n {
			if termCtx.Err() != nil {
				return
			}
			if err := w.Step(termCtx, wdb, ElectionKey, c.ID, id, term, 0); err != nil {
				failed.Add(1)
				return
			}
			sleep(termCtx, 20*time.Millisecond+rand.N(80*time.Millisecond))
		}
	}
	if run {
		err := e.Run(ctx, c.ID, distrlock.Callbacks{
			OnStartedLeading: func(termCtx context.Context) { lead(termCtx, e.Term()) },
		})
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	for ctx.Err() == nil {
		if err := e.Campaign(ctx, c.ID); err != nil {
			if ctx.Err() == nil {
				failed.Add(1)
				sleep(ctx, rand.N(50*time.Millisecond))
			}
			continue
		}
		// The context before the term: Term is 0 once the term has ended, and the context then has too.
		termCtx := e.Context()
		lead(termCtx, e.Term())
		// An error here is a lost lease (the work above stopped with its context) or a failed release,
		// which the lease's expiry ends.
		_ = e.Resign(context.WithoutCancel(ctx))
		// A pause, so that the other candidates win too.
		sleep(ctx, rand.N(c.TTL/5))
	}
	return nil
}

// runPeriodic runs a job on PeriodKey every 100 to 200 ms until ctx ends, under DoExclusively with
// WithLockAtLeastFor(c.TTL) and no wait: the lock taken for the job stays taken until a TTL after its
// acquisition, so the job runs at most once per TTL across the fleet. The period is the TTL because a
// lease lost, a release cut by a fault or a process killed leaves the lock taken until its lease ends,
// no sooner than a TTL after the acquisition: the job is once per period under every fault.
func runPeriodic(ctx context.Context, c WorkerConfig, db, wdb *sql.DB, m *distrlock.DBManager, w *Witness, runs, failed *atomic.Int64) error {
	opts := []distrlock.DoOption{
		distrlock.WithLockTTL(c.TTL), distrlock.WithSafetyMargin(c.Margin),
		distrlock.WithPeriodicExtendInterval((c.TTL - c.Margin) / 3),
		distrlock.WithReleaseTimeout(c.TTL), distrlock.WithOwner(c.ID), distrlock.WithLockAtLeastFor(c.TTL),
	}
	for ctx.Err() == nil {
		lock, err := m.NewLock(ctx, db, PeriodKey)
		if err != nil {
			return err
		}
		err = lock.DoExclusively(ctx, db, func(ctx context.Context) error {
			runs.Add(1)
			id := fmt.Sprintf("%s/%s/%d", PeriodKey, c.ID, lock.Fence())
			for range 1 + rand.N(3) {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if err := w.Step(ctx, wdb, PeriodKey, c.ID, id, lock.Fence(), 0); err != nil {
					return err
				}
				sleep(ctx, 10*time.Millisecond+rand.N(40*time.Millisecond))
			}
			return nil
		}, opts...)
		if err != nil && !errors.Is(err, distrlock.ErrLockAlreadyAcquired) && ctx.Err() == nil {
			failed.Add(1)
		}
		sleep(ctx, 100*time.Millisecond+rand.N(100*time.Millisecond))
	}
	return nil
}

// holdInTx acquires inside a transaction that then stays open for a while (a long transaction that holds
// the key's row), commits, works until the lease may end, and releases.
func holdInTx(ctx context.Context, db *sql.DB, lock *distrlock.DBLock, c WorkerConfig, work func(context.Context) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	// The transaction is older than a lease by the time it acquires: a lease counted from the
	// transaction's start (PostgreSQL's now()) instead of the statement's would have ended already.
	sleep(ctx, c.TTL+rand.N(c.TTL/2))
	start := time.Now() // before the statement: the lease starts no earlier
	if err := lock.Acquire(ctx, tx, c.TTL); err != nil {
		_ = tx.Rollback()
		if errors.Is(err, distrlock.ErrLockAlreadyAcquired) {
			sleep(ctx, rand.N(100*time.Millisecond))
			return nil
		}
		return err
	}
	sleep(ctx, rand.N(300*time.Millisecond)) // others block on the row meanwhile
	if err := tx.Commit(); err != nil {
		return err // no work: the lock was not taken, or (outcome unknown) expires untouched
	}
	workCtx, cancel := context.WithDeadline(ctx, start.Add(c.TTL-c.Margin))
	defer cancel()
	_ = work(workCtx)
	return lock.Release(context.WithoutCancel(ctx), db)
}

// overstayInData works for twice the TTL without extending the lease, each step a transaction on the lock's
// database db that writes the resource with no fence check; with check (Guard, or a broken stand-in) the
// transaction starts with it and the work stops when it refuses. Between the check and the write a pause
// of up to 50 ms, and one step in four up to half the TTL, lets the lease end inside the transaction.
func overstayInData(ctx context.Context, db *sql.DB, w *Witness, lock *distrlock.DBLock, check func(context.Context, *sql.Tx) error, c WorkerConfig, id string, waitFrom int64) error {
	ctx = context.WithoutCancel(ctx)
	for range int(2 * c.TTL / (55 * time.Millisecond)) {
		err := func() error {
			stepCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			tx, err := db.BeginTx(stepCtx, nil)
			if err != nil {
				return err
			}
			defer func() { _ = tx.Rollback() }()
			if check != nil {
				if err := check(stepCtx, tx); err != nil {
					return err
				}
			}
			pause := rand.N(50 * time.Millisecond)
			if rand.N(4) == 0 {
				pause = rand.N(c.TTL / 2)
			}
			sleep(stepCtx, pause)
			if err := w.Record(stepCtx, tx, false, lock.Key, c.ID, id, lock.Fence(), waitFrom); err != nil {
				return err
			}
			return tx.Commit()
		}()
		if errors.Is(err, distrlock.ErrLockAlreadyReleased) {
			return nil // the guard refused: the lease has ended
		}
		if err != nil {
			return err
		}
		sleep(ctx, 10*time.Millisecond+rand.N(90*time.Millisecond))
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
