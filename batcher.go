package distrlock

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"slices"
	"sync"
	"time"
)

// maxBatch is the most locks one batched extend names: on MySQL that is 16,384 bound values, well below its
// limit of 65,535, and statements of a few megabytes at most (255-byte keys and tokens), within every
// server's default packet size.
const maxBatch = 8192

// errLeaseOver answers a request that reached the batcher after its lease may have ended.
var errLeaseOver = errors.New("the lease may have ended before the extend could be sent")

// extendRequest asks the batcher to extend one lease no later than latest.
type extendRequest struct {
	lock      *DBLock       // the heartbeat's copy; read-only
	ttl       time.Duration // the lease to renew
	latest    time.Time     // when the extend is due
	safeUntil time.Time     // the lease is trusted until then: bounds the attempt
	interval  time.Duration // the heartbeat's interval: bounds the attempt
	alone     bool          // a retry: sent in a statement of its own
	gone      <-chan struct{}
	result    chan extendResult // buffered: gets exactly one result
}

func (r *extendRequest) pair() lockPair { return lockPair{r.lock.Key, r.lock.token} }

// extendBatcher sends the extends of the heartbeats of one manager on one *sql.DB. Requests reach it half an
// interval before they are due; it sends all the requests of a group (one TTL, one interval) when the
// earliest is due, so heartbeats that are due within half an interval of each other share one statement,
// and the leases of a process end up extended together: a statement per interval and per maxBatch locks,
// however many locks there are. A retry goes alone, and so does, at once, a lock whose row the statement
// skipped because another transaction held it.
type extendBatcher struct {
	m      *DBManager
	db     *sql.DB
	bs     *batchers
	submit chan *extendRequest
	done   chan struct{}
	limit  int // the most locks per statement: maxBatch, less in tests
	// Guarded by bs.mu:
	users  int
	cancel context.CancelFunc // stops run; nil until it starts
}

// batchers is a manager's set of running batchers, one per *sql.DB that has heartbeats. A batcher runs
// while a heartbeat uses it; the last to leave stops it and waits for it.
type batchers struct {
	mu   sync.Mutex
	byDB map[*sql.DB]*extendBatcher
}

// join returns the batcher for db, made if needed; the caller must leave it. The batcher's goroutine
// starts with the first request.
func (bs *batchers) join(m *DBManager, db *sql.DB) *extendBatcher {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	b := bs.byDB[db]
	if b == nil {
		if bs.byDB == nil {
			bs.byDB = make(map[*sql.DB]*extendBatcher)
		}
		b = &extendBatcher{m: m, db: db, bs: bs, submit: make(chan *extendRequest), done: make(chan struct{}), limit: maxBatch}
		bs.byDB[db] = b
	}
	b.users++
	return b
}

// leave ends a heartbeat's use of b. The last user stops b's goroutine, if it started, which cancels the
// statements in flight, and waits until its goroutines have returned.
func (bs *batchers) leave(b *extendBatcher) {
	bs.mu.Lock()
	b.users--
	last := b.users == 0
	if last {
		delete(bs.byDB, b.db)
	}
	bs.mu.Unlock()
	if last && b.cancel != nil {
		b.cancel()
		<-b.done
	}
}

// enqueue hands r to the batcher, starting its goroutine if this is the first request; it reports false
// if ctx ended first.
func (b *extendBatcher) enqueue(ctx context.Context, r *extendRequest) bool {
	b.bs.mu.Lock()
	if b.cancel == nil {
		var runCtx context.Context
		runCtx, b.cancel = context.WithCancel(context.Background())
		go b.run(runCtx)
	}
	b.bs.mu.Unlock()
	select {
	case b.submit <- r:
		return true
	case <-ctx.Done():
		return false
	}
}

// batchGroup is what the requests that may share a statement have in common: the TTL the statement renews
// and the heartbeats' interval, which bounds the statement's attempt. A retry after a failed extend goes
// alone, so that a lock whose row is blocked, or a lease with little time left, cannot make the extends of
// other leases fail or hurry.
type batchGroup struct {
	ttl, interval time.Duration
	alone         bool
}

// pendingGroup is a group's requests waiting for their earliest to be due.
type pendingGroup struct {
	reqs []*extendRequest
	next time.Time // the earliest latest
}

// run gathers requests by group and sends a group's when its earliest is due, until ctx ends; then it waits
// for the statements in flight, which ctx cancels.
func (b *extendBatcher) run(ctx context.Context) {
	defer close(b.done)
	var flights sync.WaitGroup
	defer flights.Wait()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	pending := map[batchGroup]*pendingGroup{}
	var next time.Time // when the timer fires; zero while pending is empty
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-b.submit:
			g := batchGroup{ttl: r.ttl, interval: r.interval, alone: r.alone}
			p := pending[g]
			if p == nil {
				p = &pendingGroup{next: r.latest}
				pending[g] = p
			}
			p.reqs = append(p.reqs, r)
			p.next = minTime(p.next, r.latest)
			if next.IsZero() || p.next.Before(next) {
				next = p.next
				timer.Reset(time.Until(next))
			}
		case <-timer.C:
			now := time.Now()
			next = time.Time{}
			for g, p := range pending {
				if !p.next.After(now) {
					b.send(ctx, g, p.reqs, &flights)
					delete(pending, g)
				} else if next.IsZero() || p.next.Before(next) {
					next = p.next
				}
			}
			if !next.IsZero() {
				timer.Reset(time.Until(next))
			}
		}
	}
}

// send starts the statements for the requests of group g: one per maxBatch locks (one per lock for a
// group of retries), each in a goroutine of its own so that a hung one delays neither the batcher nor the
// others.
func (b *extendBatcher) send(ctx context.Context, g batchGroup, reqs []*extendRequest, flights *sync.WaitGroup) {
	start := time.Now()
	live := reqs[:0]
	for _, r := range reqs {
		select {
		case <-r.gone: // its heartbeat has stopped
			continue
		default:
		}
		if !start.Before(r.safeUntil) {
			r.result <- extendResult{start: start, err: errLeaseOver}
			continue
		}
		live = append(live, r)
	}
	// Sorted by key: rows are locked in key order.
	slices.SortFunc(live, func(x, y *extendRequest) int {
		return cmp.Or(cmp.Compare(x.lock.Key, y.lock.Key), cmp.Compare(x.lock.token, y.lock.token))
	})
	limit := b.limit
	if g.alone {
		limit = 1
	}
	for len(live) > 0 {
		n, pairs := 1, 1
		for n < len(live) {
			if live[n].pair() != live[n-1].pair() {
				if pairs == limit {
					break
				}
				pairs++
			}
			n++
		}
		chunk := live[:n:n]
		live = live[n:]
		flights.Go(func() { b.extend(ctx, start, chunk) })
	}
}

// extend renews the leases of reqs, which share a TTL, with one statement that started at start, and gives
// each request its result.
func (b *extendBatcher) extend(ctx context.Context, start time.Time, reqs []*extendRequest) {
	deadline := attemptDeadline(start, reqs[0].safeUntil, reqs[0].interval)
	for _, r := range reqs[1:] {
		deadline = minTime(deadline, attemptDeadline(start, r.safeUntil, r.interval))
	}
	attempt, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	pairs := make([]lockPair, 0, len(reqs))
	for _, r := range reqs {
		if p := r.pair(); len(pairs) == 0 || pairs[len(pairs)-1] != p {
			pairs = append(pairs, p)
		}
	}
	if len(pairs) == 1 {
		// One lock alone takes the statement of DBLock.Extend.
		err := reqs[0].lock.extendCause(attempt, b.db, reqs[0].ttl)
		for _, r := range reqs {
			r.result <- extendResult{start: start, err: err}
		}
		return
	}
	var held map[lockPair]bool
	err := retryConflicts(attempt, b.db, func() (err error) {
		held, err = b.m.spec.extendBatch(attempt, b.db, &b.m.q, reqs[0].ttl.Microseconds(), pairs)
		return err
	})
	if err != nil {
		err = classified(withContext(attempt, err), classify(err))
	}
	var skipped []*extendRequest
	for _, r := range reqs {
		extended, found := held[r.pair()]
		switch {
		case err != nil:
			r.result <- extendResult{start: start, err: err, shared: true}
		case extended:
			r.result <- extendResult{start: start, shared: true}
		case found:
			skipped = append(skipped, r)
		default:
			r.result <- extendResult{start: start, err: ErrLockAlreadyReleased}
		}
	}
	b.extendSkipped(ctx, skipped)
}

// extendSkipped sends at once, one lock per statement, the requests whose rows a batched statement skipped
// because another transaction held them, and waits for the statements. DBLock.Extend's statement waits for
// the row, in an attempt of its own, and so only the lock whose row is held waits for it.
func (b *extendBatcher) extendSkipped(ctx context.Context, reqs []*extendRequest) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for len(reqs) > 0 {
		n := 1
		for n < len(reqs) && reqs[n].pair() == reqs[0].pair() {
			n++
		}
		same := reqs[:n:n]
		reqs = reqs[n:]
		wg.Go(func() {
			start := time.Now()
			live := same[:0]
			for _, r := range same {
				select {
				case <-r.gone:
					continue
				default:
				}
				if !start.Before(r.safeUntil) {
					r.result <- extendResult{start: start, err: errLeaseOver}
					continue
				}
				live = append(live, r)
			}
			if len(live) > 0 {
				b.extend(ctx, start, live)
			}
		})
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
