package distrlock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// After a release notice, observers read this often for at most observeBurstFor, since the next leader
// takes the lock milliseconds after the release.
const (
	observeBurstEvery = 20 * time.Millisecond
	observeBurstFor   = time.Second
)

// LeaderInfo is an elected leader as the database sees it. Times are read from the database's clock.
type LeaderInfo struct {
	// Term is the fencing token of the leader's acquisition (see [DBLock.Fence]): each term is larger
	// than every earlier one; [Election.Proclaim] keeps it. 0 means no leader ([Election.Observe] only).
	Term int64
	// Value is what the leader campaigned with or proclaimed last.
	Value string
	// Identity is the leader's identity (see [WithIdentity]).
	Identity string
	// Since is when the term began.
	Since time.Time
	// ExpiresAt is when the leader's lease ends unless it is extended.
	ExpiresAt time.Time
}

func leaderInfo(info LockInfo) LeaderInfo {
	if !info.Held {
		return LeaderInfo{}
	}
	return LeaderInfo{Term: info.Fence, Value: info.Data, Identity: info.Owner, Since: info.AcquiredAt, ExpiresAt: info.ExpiresAt}
}

// Election is a candidate in the leader election on one key: [Election.Campaign] waits until it leads, the
// leader holds the key's lock as a [Lease], and its term is the lock's fence. [Election.Leader] and
// [Election.Observe] work for any process. Its methods are safe for concurrent use; campaigns of one
// Election (including [Election.Run]) take turns.
type Election struct {
	m    *DBManager
	db   *sql.DB
	read SQLExecutor // the standbys' and observers' reads: db, or a recorder in tests
	name string
	o    electionOptions

	campaign chan struct{} // a token: holding it is running a campaign

	proclaiming sync.Mutex // held by a Proclaim

	mu      sync.Mutex
	lease   *Lease   // this candidate's term, nil when it does not lead
	term    *runTerm // the term Run leads, while OnStartedLeading may run
	running bool     // a Run has not returned
	value   string   // the term's value
	// valueUnsure: a proclaim failed after it may have changed the value in the database.
	valueUnsure bool
}

// NewElection returns a candidate for the election on key name, whose leaders hold the lock on name in the
// manager's table on db. It sends nothing. It returns [ErrInvalidKey] for a bad name and [ErrInvalidOption]
// (also matching [ErrInvalidTTL] for a bad TTL) for a bad option.
func (m *DBManager) NewElection(db *sql.DB, name string, options ...ElectionOption) (*Election, error) {
	const op = "new election"
	if db == nil {
		return nil, opError(op, name, ErrNilExecutor)
	}
	if err := validateKey(name); err != nil {
		return nil, opError(op, name, err)
	}
	o := electionOptions{ttl: DefaultElectionTTL, poll: DefaultElectionPollInterval, releaseOnCancel: true}
	for _, opt := range options {
		opt(&o)
	}
	if !o.identitySet {
		host, _ := os.Hostname() // "" if unknown: the pid still tells processes of one host apart
		o.identity = host + "/" + strconv.Itoa(os.Getpid())
		if len(o.identity) > MaxOwnerLength {
			o.identity = o.identity[len(o.identity)-MaxOwnerLength:]
		}
	}
	if err := validateTTL(o.ttl); err != nil {
		return nil, opError(op, name, fmt.Errorf("%w: election TTL: %w", ErrInvalidOption, err))
	}
	if o.poll <= 0 {
		return nil, opError(op, name, fmt.Errorf("%w: poll interval %v must be positive", ErrInvalidOption, o.poll))
	}
	if err := validateOwnerData(o.identity, ""); err != nil {
		return nil, opError(op, name, fmt.Errorf("identity: %w", err))
	}
	return &Election{m: m, db: db, read: db, name: name, o: o, campaign: make(chan struct{}, 1)}, nil
}

// Name returns the election's key.
func (e *Election) Name() string { return e.name }

// Campaign returns once this candidate leads with value (proclaiming value if it leads already); when ctx
// ends, with an error matching [ErrLockAlreadyAcquired] and ctx's error once it found another leader, else
// ctx's error and that of the statement it cut short; or with the error of a read or attempt that failed.
// While it waits it only reads: once per poll interval, or with a listening [Notifier] on each notice, when
// the leader's lease ends and at least every half TTL.
// ctx bounds the campaign only: the term lasts until [Election.Resign] or the loss of its lease (see
// [Election.Context]).
func (e *Election) Campaign(ctx context.Context, value string) error {
	return e.campaignWith(ctx, value, nil)
}

// campaignWith is Campaign; with reads, Run's observer reads the key for it, and it reads only after an
// attempt that was refused.
func (e *Election) campaignWith(ctx context.Context, value string, reads *leaderReads) error {
	const op = "campaign"
	if err := validateOwnerData("", value); err != nil {
		return opError(op, e.name, err)
	}
	if ctx.Err() != nil {
		return opError(op, e.name, contextError(ctx))
	}
	select {
	case e.campaign <- struct{}{}:
		defer func() { <-e.campaign }()
	case <-ctx.Done():
		return waitCancelled(op, e.name, ctx)
	}
	if e.leading() {
		return e.Proclaim(ctx, value)
	}
	e.mu.Lock()
	ended := e.lease
	if e.runTermLocked() != nil {
		ended = nil // Run's term, resigned or lost: Run frees it once its callback has returned
	} else {
		e.lease = nil
	}
	e.mu.Unlock()
	if ended != nil {
		// A term that ended without Resign (its lease was lost): stop its heartbeat before the next one.
		e.stopped(ctx, ended, ended.Release(ctx))
	}
	var notices <-chan struct{}
	if n := e.m.notifier; n != nil && reads == nil {
		var stop func()
		notices, stop = n.Subscribe(e.name)
		defer stop()
	}
	var seen uint64    // the observer's last read used
	ownRead := false   // read the key itself: after a refused attempt, or a release through this manager
	contended := false // a read found a leader, or an attempt was refused
	var readErr error  // the observer's last read, when it failed
	cancelled := func() error {
		if contended || readErr == nil {
			return waitCancelled(op, e.name, ctx)
		}
		// Nothing showed another leader: the database could not be read.
		return opError(op, e.name, fmt.Errorf("%w (the last read failed: %w)", contextError(ctx), errors.Unwrap(readErr)))
	}
	for {
		var info LockInfo
		var err error
		if reads != nil && !ownRead {
			// In the room while it waits for the observer, so that a release through this manager wakes
			// it at once, until a read finds the lock free; the observer logs its failed reads and reads
			// again when the lease may end, on a notice or after a poll.
			wake, leave := e.m.waiters.enter(e.name, 0)
			woken := false
			for {
				info, seen, woken, err = reads.after(ctx, seen, wake)
				woken = woken || closed(wake) // a read that came with a wake may predate the release
				switch {
				case err != nil && ctx.Err() == nil:
					readErr = err
				case err == nil && !woken:
					readErr, contended = nil, contended || info.Held
				}
				if woken || ctx.Err() != nil || err == nil && !info.Held {
					break
				}
			}
			leave(woken && ctx.Err() == nil)
			switch {
			case ctx.Err() != nil:
				return cancelled()
			case woken:
				ownRead = true
				continue
			}
		}
		// In the room before the read, so that a release through this manager after it is not missed.
		wake, leave := e.m.waiters.enter(e.name, 0)
		if reads == nil || ownRead {
			if info, err = e.m.Get(ctx, e.read, e.name); err != nil {
				leave(false)
				if ctx.Err() != nil {
					readErr = err
					return cancelled()
				}
				return err
			}
			contended = contended || info.Held
		}
		if ownRead && reads != nil && info.Held {
			if closed(wake) { // a release during the read: read again
				leave(true)
				continue
			}
			// Back to the observer's reads, from the next one: those before this read are older.
			seen, ownRead = reads.latest(), false
			leave(false)
			continue
		}
		ownRead = false // set again below only when the attempt is refused
		if !info.Held {
			leave(true)
			lease, err := e.m.Hold(ctx, e.db, e.name, WithLockTTL(e.o.ttl), WithOwner(e.o.identity), WithData(value), WithLogger(e.o.logger), announceRelease())
			switch {
			case err == nil:
				e.mu.Lock()
				e.lease, e.value, e.valueUnsure = lease, value, false
				e.mu.Unlock()
				e.emit(ctx, Event{Kind: EventStartedLeading, Key: e.name, Fence: lease.Fence(), Owner: e.o.identity})
				return nil
			case errors.Is(err, ErrLockAlreadyAcquired) && ctx.Err() == nil:
				// Another candidate took it between the read and the attempt, or waiters of AcquireWait
				// queued on the key go first: read again after a hand-over grace, not at once.
				wake, leave = e.m.waiters.enter(e.name, 0)
				info.Remaining, ownRead, contended = e.m.handoverGrace(), true, true
			case ctx.Err() != nil:
				if !errors.Is(err, ErrLockAlreadyAcquired) {
					return err // its own error, which carries ctx's
				}
				contended = true
				return cancelled()
			default:
				return err
			}
		}
		// Held: sleep until the lease may have run out, a poll interval, or a release notice. The lease's
		// end is read on the database's clock and counted here from after the read, so waking finds it over.
		sleep := e.sleepWhileHeld(info.Remaining, e.listening(notices))
		if ownRead { // refused while the lock looked free: a grace, then a read of its own
			sleep = info.Remaining + time.Millisecond
		}
		timer := time.NewTimer(sleep)
		woken := false
		select {
		case <-wake:
			woken = true
		case <-notices:
		case <-timer.C:
		case <-ctx.Done():
		}
		timer.Stop()
		leave(woken && ctx.Err() == nil) // a wake it did not use goes on to the next waiter of this manager
		if ctx.Err() != nil {
			return cancelled()
		}
	}
}

// closed reports whether ch is closed, without waiting.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// listening reports whether the manager's Notifier listens now, for a candidate that subscribed notices.
func (e *Election) listening(notices <-chan struct{}) bool {
	return notices != nil && e.m.notifier.Listening()
}

// sleepWhileHeld is how long a standby or an observer sleeps after a read that found a leader whose lease
// has left to run: until the lease may end, at most a poll interval; with push (a listening Notifier: a
// release then publishes a notice, and an expiry is the lease's end), at most half the TTL, the leader's
// extend interval (or a poll interval if longer), for the releases that publish nothing (a manager without
// the notifier).
func (e *Election) sleepWhileHeld(left time.Duration, push bool) time.Duration {
	if push {
		return min(left+time.Millisecond, max(e.o.poll, e.o.ttl/2))
	}
	return min(e.o.poll, left+time.Millisecond)
}

// proclaimNotice is the key a proclaim publishes for name: observers subscribe it, standbys do not. A lock
// whose key happens to be a name with this suffix costs those observers a read per release.
func proclaimNotice(name string) string { return name + "\x1fproclaimed" }

// leading reports whether this candidate holds a term whose lease is not known to be lost.
func (e *Election) leading() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.currentLocked() != nil
}

// currentLocked returns the lease of the term this candidate leads: not resigned, not known to be lost; or
// nil. e.mu must be held.
func (e *Election) currentLocked() *Lease {
	if e.lease == nil || e.lease.Context().Err() != nil || e.runTermLocked() != nil && e.term.resigned {
		return nil
	}
	return e.lease
}

// runTermLocked returns the term Run leads, if it is the current one. e.mu must be held.
func (e *Election) runTermLocked() *runTerm {
	if e.term != nil && e.lease != nil && e.term.lease == e.lease {
		return e.term
	}
	return nil
}

// IsLeader reports whether this candidate leads: it won a campaign, has not resigned, and its lease is
// not known to be lost.
func (e *Election) IsLeader() bool { return e.leading() }

// Term returns the term this candidate leads, or 0 when it does not lead.
func (e *Election) Term() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if l := e.currentLocked(); l != nil {
		return l.Fence()
	}
	return 0
}

// Context returns the context of this candidate's current term: it ends when the term ends, by
// [Election.Resign] or when the lease may have been lost ([context.Cause] then matches [ErrLockLost]). Do
// the leader's work under it. When the candidate does not lead, it returns a context that has ended.
func (e *Election) Context() context.Context {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t := e.runTermLocked(); t != nil {
		return t.ctx
	}
	if e.lease == nil {
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(ErrNotLeader)
		return ctx
	}
	return e.lease.Context()
}

// Proclaim makes value the leader's value without a new term, in one statement. It returns an error
// matching [ErrNotLeader] when this candidate does not lead (nothing is sent) or when the statement finds
// that its lease has ended, which also ends the term.
func (e *Election) Proclaim(ctx context.Context, value string) error {
	const op = "proclaim"
	if err := checkCall(ctx, e.db); err != nil {
		return opError(op, e.name, err)
	}
	if err := validateOwnerData("", value); err != nil {
		return opError(op, e.name, err)
	}
	// Proclaims take turns, so that the value kept is the one the database has; the term's other methods do
	// not wait for one.
	e.proclaiming.Lock()
	defer e.proclaiming.Unlock()
	e.mu.Lock()
	lease, changed := e.currentLocked(), e.value != value || e.valueUnsure
	e.mu.Unlock()
	if lease == nil {
		return opError(op, e.name, ErrNotLeader)
	}
	var data any // "" stores NULL, as an acquire does
	if value != "" {
		data = []byte(value)
	}
	found, err := e.proclaim(ctx, data, lease.Token(), changed)
	if err != nil {
		// The statement may have committed: the next proclaim publishes whatever it sets.
		e.mu.Lock()
		e.valueUnsure = true
		e.mu.Unlock()
		return opError(op, e.name, classified(withContext(ctx, err), classify(err)))
	}
	if !found {
		// The lease has ended on the server: the work under the term's context must stop, and the term
		// ends as lost (another candidate may lead already). Unless the term was resigned meanwhile: a
		// resigned term's lease is forgotten before its release is sent.
		e.mu.Lock()
		if e.lease == lease {
			lease.lose(fmt.Errorf("proclaim found the lease ended: %w", ErrNotLeader))
		}
		e.mu.Unlock()
		return opError(op, e.name, ErrNotLeader)
	}
	e.mu.Lock()
	if e.lease == lease {
		e.value, e.valueUnsure = value, false
	}
	e.mu.Unlock()
	return nil
}

// proclaim runs the proclaim statement (with a Notifier, the one that also publishes the value when it
// changed) and reports whether it found the term's lease.
func (e *Election) proclaim(ctx context.Context, data any, token string, changed bool) (bool, error) {
	if e.m.notifier != nil {
		err := e.db.QueryRowContext(ctx, e.m.q.proclaimNotify, data, e.name, token, e.m.notifier.Channel(),
			proclaimNotice(e.name), changed).Scan(new(sql.NullString))
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil
		}
		return err == nil, err
	}
	res, err := e.db.ExecContext(ctx, e.m.q.proclaim, data, e.name, token)
	if err != nil {
		return false, err
	}
	return e.m.spec.extended(res)
}

// Resign ends this candidate's term, cancelling [Election.Context] and freeing the lock at once so that a
// standby takes over; the release runs on [context.WithoutCancel] of ctx, bounded by [DefaultReleaseTimeout].
// A term that [Election.Run] leads ends with OnStartedLeading's context, and Run frees its lock once the
// callback has returned. It returns nil when the candidate does not lead, and an error matching
// [ErrLockLost] when the term's lease had been lost.
func (e *Election) Resign(ctx context.Context) error {
	e.mu.Lock()
	lease, t := e.lease, e.runTermLocked()
	if t != nil {
		t.resigned = true // Run releases the lock even if its ctx ends before the callback returns
		e.mu.Unlock()
		// The callback works under the term until it returns, so the lock must not be free before; and
		// Resign may be called from the callback, so it does not wait for it.
		t.end(context.Canceled)
		if lost := lease.Lost(); lost != nil {
			return opError("resign", e.name, lost)
		}
		return nil
	}
	e.lease = nil
	e.mu.Unlock()
	if lease == nil {
		return nil
	}
	err := lease.Release(ctx)
	e.stopped(ctx, lease, err)
	if errors.Is(err, ErrLockAlreadyReleased) {
		return nil // the lease ran out without being lost: nobody else could have led meanwhile
	}
	return err
}

// runTerm is a term that Run leads.
type runTerm struct {
	lease    *Lease
	ctx      context.Context         // OnStartedLeading's
	end      context.CancelCauseFunc // ends ctx
	resigned bool                    // Resign ended it; under the election's mu
}

// Leader reads the current leader in one statement. It returns an error matching [ErrNoLeader] when no
// candidate leads.
func (e *Election) Leader(ctx context.Context) (LeaderInfo, error) {
	info, err := e.m.Get(ctx, e.read, e.name)
	if err != nil {
		return LeaderInfo{}, err
	}
	if !info.Held {
		return LeaderInfo{}, opError("leader", e.name, ErrNoLeader)
	}
	return leaderInfo(info), nil
}

// Observe returns a channel that receives the current leader, then each change seen by reads once per poll
// interval (with a listening [Notifier]: on each notice, at the lease's end and at least every half TTL):
// a new term, a new value in the term, or no leader (a zero [LeaderInfo]). Terms never go back, a receiver
// that is not ready gets only the latest state, and the channel closes when ctx ends.
func (e *Election) Observe(ctx context.Context) <-chan LeaderInfo {
	ch := make(chan LeaderInfo)
	go e.observe(ctx, ch, nil)
	return ch
}

// observe reads the leader until ctx ends, sends changes on ch without waiting for the receiver (a change
// that waits is replaced by the next), and passes every read to reads when it is not nil.
func (e *Election) observe(ctx context.Context, ch chan<- LeaderInfo, reads *leaderReads) {
	defer close(ch)
	var notices, proclaims <-chan struct{}
	if n := e.m.notifier; n != nil {
		var stop, stopProclaims func()
		notices, stop = n.Subscribe(e.name)
		defer stop()
		proclaims, stopProclaims = n.Subscribe(proclaimNotice(e.name))
		defer stopProclaims()
	}
	var last, pending LeaderInfo // the value the receiver has, and the one it is offered
	sent, offering := false, false
	var top int64             // the largest term seen: an older one is never sent
	var burstUntil time.Time  // after a release notice: read often until then, or until a leader is seen
	timer := time.NewTimer(0) // the first read at once
	defer timer.Stop()
	for {
		var out chan<- LeaderInfo
		if offering {
			out = ch
		}
		select {
		case out <- pending:
			last, sent, offering = pending, true, false
			e.emit(ctx, Event{Kind: EventNewLeader, Key: e.name, Fence: last.Term, Owner: last.Identity})
			continue // the next read when the timer says
		case <-notices:
			burstUntil = time.Now().Add(observeBurstFor)
		case <-proclaims:
		case <-timer.C:
		case <-ctx.Done():
			return
		}
		info, err := e.m.Get(ctx, e.read, e.name)
		if reads != nil {
			reads.put(info, err)
		}
		sleep := e.o.poll
		switch {
		case err == nil:
			cur := leaderInfo(info)
			if cur.Term != 0 {
				burstUntil = time.Time{}
				sleep = e.sleepWhileHeld(info.Remaining, e.listening(notices))
			}
			// Reads follow each other, so a term older than one already seen cannot come; never send one.
			if cur.Term == 0 || cur.Term >= top {
				top = max(top, cur.Term)
				pending, offering = cur, !sent || !sameLeader(cur, last)
			}
		case ctx.Err() != nil:
			return
		default:
			logError(ctx, e.o.logger, &DBLock{Key: e.name, fence: top, manager: e.m}, "observe: %v", errors.Unwrap(err))
		}
		if time.Now().Before(burstUntil) {
			sleep = min(sleep, observeBurstEvery)
		}
		timer.Reset(sleep)
	}
}

// sameLeader reports whether a and b are the same term with the same value (or both no leader).
func sameLeader(a, b LeaderInfo) bool { return a.Term == b.Term && a.Value == b.Value }

// leaderReads passes the reads of Run's observer to its campaigns, so that a candidate that both observes
// and campaigns sends one read per poll interval, not two.
type leaderReads struct {
	mu   sync.Mutex
	seq  uint64 // reads so far
	info LockInfo
	err  error
	next chan struct{} // closed by the next read
}

func newLeaderReads() *leaderReads { return &leaderReads{next: make(chan struct{})} }

// put records a read and wakes those waiting for one.
func (r *leaderReads) put(info LockInfo, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	r.info, r.err = info, err
	close(r.next)
	r.next = make(chan struct{})
}

// latest returns the number of the latest read.
func (r *leaderReads) latest() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seq
}

// after returns the latest read once it is later than read number seen, and its number; or woken true when
// wake is closed first; or ctx's error.
func (r *leaderReads) after(ctx context.Context, seen uint64, wake <-chan struct{}) (LockInfo, uint64, bool, error) {
	for {
		r.mu.Lock()
		info, seq, err, next := r.info, r.seq, r.err, r.next
		r.mu.Unlock()
		if seq > seen {
			return info, seq, false, err
		}
		select {
		case <-next:
		case <-wake:
			return LockInfo{}, seen, true, nil
		case <-ctx.Done():
			return LockInfo{}, seen, false, ctx.Err()
		}
	}
}

// Callbacks are the functions [Election.Run] calls. OnStartedLeading and OnStoppedLeading alternate and
// never overlap, on Run's goroutine; OnNewLeader calls come one at a time, in term order, on a goroutine
// of Run's. Any of them may be nil.
type Callbacks struct {
	// OnStartedLeading runs when this candidate starts a term, with a context that ends when the term
	// ends (the lease may be lost: [context.Cause] matches [ErrLockLost]) or Run's context ends. It must
	// stop the leader's work and return promptly then. When it returns, the term ends.
	OnStartedLeading func(ctx context.Context)
	// OnStoppedLeading runs after OnStartedLeading has returned and the term has ended.
	OnStoppedLeading func()
	// OnNewLeader runs for each new term or value Observe reports, this candidate's included; not for
	// "no leader".
	OnNewLeader func(leader LeaderInfo)
}

// Run campaigns with value until ctx ends, calling OnStartedLeading with each term's context and
// OnStoppedLeading when the term ends, and campaigning again after a poll interval; failed campaigns are
// logged and retried. When ctx ends during a term, the term is resigned (with [WithReleaseOnCancel], the
// default) or left to run out, and Run returns ctx's error once its callbacks have returned.
func (e *Election) Run(ctx context.Context, value string, cb Callbacks) error {
	const op = "run"
	if err := validateOwnerData("", value); err != nil {
		return opError(op, e.name, err)
	}
	e.mu.Lock()
	if e.running {
		e.mu.Unlock()
		return opError(op, e.name, ErrAlreadyRunning)
	}
	e.running = true
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.running = false
		e.mu.Unlock()
	}()
	var reads *leaderReads // with OnNewLeader, the observer reads for the campaigns too
	if cb.OnNewLeader != nil {
		obsCtx, stop := context.WithCancel(ctx)
		reads = newLeaderReads()
		ch := make(chan LeaderInfo)
		go e.observe(obsCtx, ch, reads)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for l := range ch {
				if l.Term != 0 {
					cb.OnNewLeader(l)
				}
			}
		}()
		defer func() { stop(); <-done }()
	}
	for ctx.Err() == nil {
		if err := e.campaignWith(ctx, value, reads); err != nil {
			if ctx.Err() != nil {
				break
			}
			logError(ctx, e.o.logger, &DBLock{Key: e.name, manager: e.m}, "campaign failed: %v", errors.Unwrap(err))
			timer := time.NewTimer(e.o.poll)
			select {
			case <-timer.C:
			case <-ctx.Done():
			}
			timer.Stop()
			continue
		}
		e.lead(ctx, cb)
		// A poll interval before the next campaign lets a standby take over from a leader whose work
		// ended, instead of this candidate winning again at once.
		timer := time.NewTimer(e.o.poll)
		select {
		case <-timer.C:
		case <-ctx.Done():
		}
		timer.Stop()
	}
	return opError(op, e.name, contextError(ctx))
}

// lead runs one term of Run.
func (e *Election) lead(ctx context.Context, cb Callbacks) {
	e.mu.Lock()
	lease := e.lease
	if lease == nil {
		e.mu.Unlock()
		return
	}
	termCtx, cancel := context.WithCancelCause(lease.Context())
	t := &runTerm{lease: lease, ctx: termCtx, end: cancel}
	e.term = t
	e.mu.Unlock()
	stopAfter := context.AfterFunc(ctx, func() { cancel(context.Cause(ctx)) })
	defer func() {
		stopAfter()
		cancel(context.Canceled)
		e.mu.Lock()
		ours := e.lease == lease // else a campaign of another goroutine ended the lost term, and reported it
		if ours {
			e.lease = nil
		}
		if e.term == t {
			e.term = nil
		}
		resigned := t.resigned
		e.mu.Unlock()
		abandoned := ctx.Err() != nil && !e.o.releaseOnCancel && !resigned
		if abandoned {
			lease.abandon()
		}
		// After abandon, Release sends nothing and returns whether the lease had been lost.
		err := lease.Release(ctx)
		if ours {
			e.stopped(ctx, lease, err)
		}
		if !abandoned && err != nil && !errors.Is(err, ErrLockAlreadyReleased) {
			logError(ctx, e.o.logger, &DBLock{Key: e.name, fence: lease.Fence(), manager: e.m}, "resign: %v", errors.Unwrap(err))
		}
		if cb.OnStoppedLeading != nil {
			cb.OnStoppedLeading()
		}
	}()
	if cb.OnStartedLeading != nil {
		cb.OnStartedLeading(termCtx)
	} else {
		<-termCtx.Done()
	}
}

// emit reports an election's event to its manager's observer and logger.
func (e *Election) emit(ctx context.Context, ev Event) {
	if e.m.observing(e.o.logger) {
		e.m.emit(ctx, e.o.logger, ev)
	}
}

// stopped reports the end of lease's term, whose Release returned err: an error matching ErrLockLost is
// the term's loss, any other a failed release that does not change that the term is over.
func (e *Election) stopped(ctx context.Context, lease *Lease, err error) {
	if !errors.Is(err, ErrLockLost) {
		err = nil
	}
	e.emit(ctx, Event{Kind: EventStoppedLeading, Key: e.name, Fence: lease.Fence(), Owner: e.o.identity, Err: err})
}
