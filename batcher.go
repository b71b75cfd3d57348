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
// limit of 65,535, and every dialect's statement stays under a megabyte.
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
	gone      <-chan struct{}
	result    chan extendResult // buffered: gets exactly one result
}

func (r *extendRequest) pair() lockPair { return lockPair{r.lock.Key, r.lock.token} }

// extendBatcher sends the extends of the heartbeats of one manager on one *sql.DB. Requests reach it half an
// interval before they are due; it sends everything it has when the earliest is due, so heartbeats that
// are due within half an interval of each other share one statement, and the leases of a process end up
// extended together: a statement per interval and per maxBatch locks, however many locks there are.
type extendBatcher struct {
	m      *DBManager
	db     *sql.DB
	submit chan *extendRequest
	cancel context.CancelFunc
	done   chan struct{}
	limit  int // the most locks per statement: maxBatch, less in tests
	users  int // guarded by the registry's mutex
}

// batchers is a manager's set of running batchers, one per *sql.DB that has heartbeats. A batcher runs
// while a heartbeat uses it; the last to leave stops it and waits for it.
type batchers struct {
	mu   sync.Mutex
	byDB map[*sql.DB]*extendBatcher
}

// join returns the batcher for db, starting it if needed; the caller must leave it.
func (bs *batchers) join(m *DBManager, db *sql.DB) *extendBatcher {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	b := bs.byDB[db]
	if b == nil {
		if bs.byDB == nil {
			bs.byDB = make(map[*sql.DB]*extendBatcher)
		}
		ctx, cancel := context.WithCancel(context.Background())
		b = &extendBatcher{m: m, db: db, submit: make(chan *extendRequest), cancel: cancel, done: make(chan struct{}), limit: maxBatch}
		bs.byDB[db] = b
		go b.run(ctx)
	}
	b.users++
	return b
}

// leave ends a heartbeat's use of b. The last user stops b, which cancels the statements in flight, and
// waits until its goroutines have returned.
func (bs *batchers) leave(b *extendBatcher) {
	bs.mu.Lock()
	b.users--
	last := b.users == 0
	if last {
		delete(bs.byDB, b.db)
	}
	bs.mu.Unlock()
	if last {
		b.cancel()
		<-b.done
	}
}

// enqueue hands r to the batcher; it reports false if ctx ended first.
func (b *extendBatcher) enqueue(ctx context.Context, r *extendRequest) bool {
	select {
	case b.submit <- r:
		return true
	case <-ctx.Done():
		return false
	}
}

// run gathers requests and sends them when the earliest is due, until ctx ends; then it waits for the
// statements in flight, which ctx cancels.
func (b *extendBatcher) run(ctx context.Context) {
	defer close(b.done)
	var flights sync.WaitGroup
	defer flights.Wait()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var pending []*extendRequest
	var next time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-b.submit:
			if len(pending) == 0 || r.latest.Before(next) {
				next = r.latest
				timer.Reset(time.Until(next))
			}
			pending = append(pending, r)
		case <-timer.C:
			b.send(ctx, pending, &flights)
			pending = nil
		}
	}
}

// send starts the statements for reqs: one per TTL and per maxBatch locks, each in a goroutine of its own
// so that a hung one delays neither the batcher nor the others.
func (b *extendBatcher) send(ctx context.Context, reqs []*extendRequest, flights *sync.WaitGroup) {
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
	// Sorted by TTL, then by key: each statement renews one TTL, and rows are locked in key order.
	slices.SortFunc(live, func(x, y *extendRequest) int {
		return cmp.Or(cmp.Compare(x.ttl, y.ttl), cmp.Compare(x.lock.Key, y.lock.Key), cmp.Compare(x.lock.token, y.lock.token))
	})
	for len(live) > 0 {
		n, pairs := 1, 1
		for n < len(live) && live[n].ttl == live[0].ttl {
			if live[n].pair() != live[n-1].pair() {
				if pairs == b.limit {
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
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	pairs := make([]lockPair, 0, len(reqs))
	for _, r := range reqs {
		if p := r.pair(); len(pairs) == 0 || pairs[len(pairs)-1] != p {
			pairs = append(pairs, p)
		}
	}
	if len(pairs) == 1 {
		// One lock alone takes the statement of DBLock.Extend.
		err := reqs[0].lock.extendCause(ctx, b.db, reqs[0].ttl)
		for _, r := range reqs {
			r.result <- extendResult{start: start, err: err}
		}
		return
	}
	held, err := b.m.spec.extendBatch(ctx, b.db, &b.m.q, reqs[0].ttl.Microseconds(), pairs)
	if err != nil {
		err = withContext(ctx, err)
	}
	for _, r := range reqs {
		switch {
		case err != nil:
			r.result <- extendResult{start: start, err: err}
		case held[r.pair()]:
			r.result <- extendResult{start: start}
		default:
			r.result <- extendResult{start: start, err: ErrLockAlreadyReleased}
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
