package pgnotify_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver

	"github.com/distrlock/distrlock"
	"github.com/distrlock/distrlock/internal/stmtcount"
	"github.com/distrlock/distrlock/pgnotify"
)

// The end-to-end tests run managers that stand for separate processes (each its own *sql.DB, DBManager
// and running Listener) on one table of a real PostgreSQL server, so that the only way a waiter of one
// learns of a release by another is a notice or a poll.

// e2eDefaultDSN is the database of these tests; DISTRLOCK_POSTGRES_DSN overrides it. The listeners connect
// to DISTRLOCK_PGNOTIFY_LISTEN_DSN when it is set: make scale-test points the managers at PgBouncer in
// transaction mode and the listeners straight at the server, since LISTEN needs a session.
const e2eDefaultDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// e2eTimeout bounds every wait for something that should happen promptly.
const e2eTimeout = 5 * time.Second

func e2eDSN() string {
	if v := os.Getenv("DISTRLOCK_POSTGRES_DSN"); v != "" {
		return v
	}
	return e2eDefaultDSN
}

func e2eListenDSN() string {
	if v := os.Getenv("DISTRLOCK_PGNOTIFY_LISTEN_DSN"); v != "" {
		return v
	}
	return e2eDSN()
}

// e2eOpen opens the test database through pgx's database/sql driver. An unreachable database skips the
// test, except in CI (CI=true), where it fails.
func e2eOpen(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", e2eDSN())
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	e2ePing(t, db)
	return db
}

// e2eOpenCounted is e2eOpen through a driver that counts what is sent.
func e2eOpenCounted(t *testing.T, c *stmtcount.Counter) *sql.DB {
	t.Helper()
	db, err := stmtcount.Open("pgx", e2eDSN(), c)
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	e2ePing(t, db)
	return db
}

func e2ePing(t testing.TB, db *sql.DB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("postgres unreachable at %s (CI=true, so this fails instead of skipping): %v", e2eDSN(), err)
		}
		t.Skipf("postgres unreachable at %s: %v", e2eDSN(), err)
	}
}

// e2eNames returns a table and a channel of the test's own.
func e2eNames(t testing.TB) (table, channel string) {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	suffix := hex.EncodeToString(b)
	return "pgnotify_e2e_" + suffix, "PgNotify_E2E_" + suffix
}

// process is what one program that uses distrlock with a Listener holds.
type process struct {
	db       *sql.DB
	listener *pgnotify.Listener
	m        *distrlock.DBManager
	stop     func() // stops the listener and waits for its Run; safe to call more than once
}

// newProcess makes a listener on channel and a manager on table that publishes and waits through it. With
// run, it runs the listener in a goroutine owned by the test and waits until it listens.
func newProcess(t testing.TB, db *sql.DB, table, channel string, run bool, opts ...distrlock.DBManagerOption) *process {
	t.Helper()
	l, err := pgnotify.New(e2eListenDSN(), pgnotify.WithChannel(channel),
		pgnotify.WithReconnectDelay(20*time.Millisecond, 100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	m, err := distrlock.NewDBManager(distrlock.DialectPgx,
		append([]distrlock.DBManagerOption{distrlock.WithTableName(table), distrlock.WithNotifier(l)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	p := &process{db: db, listener: l, m: m, stop: func() {}}
	if !run {
		return p
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	var once sync.Once
	p.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(e2eTimeout):
				t.Errorf("listener's Run did not return within %v of its context's end", e2eTimeout)
			}
		})
	}
	t.Cleanup(p.stop)
	e2eWaitFor(t, "the listener to listen", l.Listening)
	return p
}

// createTable creates p's table and drops it when the test ends.
func createTable(t testing.TB, p *process) {
	t.Helper()
	if err := p.m.CreateTable(t.Context(), p.db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
		defer cancel()
		if _, err := p.db.ExecContext(ctx, p.m.DropTableSQL()); err != nil {
			t.Errorf("drop table %s: %v", p.m.TableName(), err)
		}
	})
}

// queueTail reads the last ticket issued in key's wait queue.
func queueTail(t *testing.T, p *process, key string) int64 {
	t.Helper()
	var tail int64
	q := fmt.Sprintf(`SELECT queue_tail FROM %s WHERE lock_key = $1`, pgx.Identifier{p.m.TableName()}.Sanitize())
	if err := p.db.QueryRowContext(t.Context(), q, key).Scan(&tail); err != nil {
		t.Fatalf("read the queue of %q: %v", key, err)
	}
	return tail
}

// e2eWaitFor polls cond until it holds, failing the test after e2eTimeout.
func e2eWaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(e2eTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", e2eTimeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// acquired is the end of a wait run in a goroutine.
type acquired struct {
	at  time.Time
	err error
}

// goAcquireWait runs lock.AcquireWait in a goroutine; the returned wait gives its outcome, and cancels it
// and waits for it if it does not end within e2eTimeout, so that it never outlives the test.
func goAcquireWait(t *testing.T, lock *distrlock.DBLock, exec distrlock.SQLExecutor, ttl, maxWait time.Duration) (wait func() acquired) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan acquired, 1)
	go func() {
		err := lock.AcquireWait(ctx, exec, ttl, maxWait)
		done <- acquired{time.Now(), err}
	}()
	return func() acquired {
		t.Helper()
		defer cancel()
		select {
		case r := <-done:
			return r
		case <-time.After(e2eTimeout):
			cancel()
			<-done
			t.Fatalf("AcquireWait did not return within %v", e2eTimeout)
			return acquired{}
		}
	}
}

// percentile returns the p-th percentile (0 < p < 1) of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	return sorted[min(int(float64(len(sorted))*p), len(sorted)-1)]
}

// TestE2EHandOverWithPush: B waits for the lock A holds with a backoff of 1 s, so that polling would hand
// it over after 0.5 to 1 s; A's release notifies B through B's listener and B holds the lock within 50 ms
// of the release returning. Then 50 rounds measure release → acquired.
func TestE2EHandOverWithPush(t *testing.T) {
	ctx := t.Context()
	table, channel := e2eNames(t)
	a := newProcess(t, e2eOpen(t), table, channel, true)
	b := newProcess(t, e2eOpen(t), table, channel, true, distrlock.WithWaitBackoff(time.Second, time.Second))
	createTable(t, a)

	const (
		key    = "handover"
		ttl    = 30 * time.Second
		rounds = 50
	)
	// handOver has A take the lock, B wait for it, and A release it once B is queued and sleeping. It
	// returns how long after the release began and after it returned B's AcquireWait returned.
	handOver := func() (fromStart, fromReturn time.Duration) {
		t.Helper()
		la, err := a.m.NewLock(ctx, a.db, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := la.Acquire(ctx, a.db, ttl); err != nil {
			t.Fatalf("A: acquire: %v", err)
		}
		tail := queueTail(t, a, key)
		lb, err := b.m.NewLock(ctx, b.db, key)
		if err != nil {
			t.Fatal(err)
		}
		wait := goAcquireWait(t, &lb, b.db, ttl, 10*time.Second)
		// Queued means refused: B now sleeps until a notice or for 0.5 to 1 s. The pause lets a late notice
		// of the previous round's release wake it for nothing before the release that counts.
		e2eWaitFor(t, "B to queue", func() bool { return queueTail(t, a, key) > tail })
		time.Sleep(10 * time.Millisecond)
		start := time.Now()
		if err := la.Release(ctx, a.db); err != nil {
			t.Fatalf("A: release: %v", err)
		}
		returned := time.Now()
		r := wait()
		if r.err != nil {
			t.Fatalf("B: AcquireWait: %v", r.err)
		}
		info, err := b.m.Get(ctx, b.db, key)
		if err != nil {
			t.Fatal(err)
		}
		if !info.Held || info.Token != lb.Token() {
			t.Fatalf("after B's AcquireWait returned: held %v by token %q, want B's %q", info.Held, info.Token, lb.Token())
		}
		if err := lb.Release(ctx, b.db); err != nil {
			t.Fatalf("B: release: %v", err)
		}
		return r.at.Sub(start), r.at.Sub(returned)
	}

	_, first := handOver()
	t.Logf("first hand-over: B held the lock %v after A's release returned", first)
	if first > 50*time.Millisecond {
		t.Fatalf("B held the lock %v after A's release returned, want within 50 ms (a poll would take 0.5 to 1 s)", first)
	}

	fromStart := make([]time.Duration, 0, rounds)
	fromReturn := make([]time.Duration, 0, rounds)
	for range rounds {
		s, r := handOver()
		fromStart, fromReturn = append(fromStart, s), append(fromReturn, r)
	}
	slices.Sort(fromStart)
	slices.Sort(fromReturn)
	t.Logf("%d hand-overs, release began → B's AcquireWait returned: p50 %v, p90 %v, max %v",
		rounds, percentile(fromStart, 0.5), percentile(fromStart, 0.9), fromStart[rounds-1])
	t.Logf("%d hand-overs, release returned → B's AcquireWait returned: p50 %v, p90 %v, max %v (negative: B held it before A's release returned)",
		rounds, percentile(fromReturn, 0.5), percentile(fromReturn, 0.9), fromReturn[rounds-1])
	// The target is 1 ms; the bound is loose because the machine is shared with other tests.
	if p50 := percentile(fromReturn, 0.5); p50 > 20*time.Millisecond {
		t.Errorf("p50 of release returned → acquired = %v, want below 20 ms", p50)
	}
	// The shortest poll of B's backoff is 0.5 s: a slower hand-over was not pushed.
	if slowest := fromReturn[rounds-1]; slowest >= 500*time.Millisecond {
		t.Errorf("slowest hand-over %v after the release returned: at least one was not pushed", slowest)
	}
}

// TestE2EPollsWithoutListener: while B's listener is not listening (never run, or stopped), B's wait polls
// within its backoff and gets the lock A releases, even though A's release still publishes a notice.
func TestE2EPollsWithoutListener(t *testing.T) {
	const backoff = 200 * time.Millisecond
	for _, tt := range []struct {
		name string
		run  bool // run the listener, then stop it before the wait
	}{
		{"never run", false},
		{"stopped", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			table, channel := e2eNames(t)
			a := newProcess(t, e2eOpen(t), table, channel, true)
			b := newProcess(t, e2eOpen(t), table, channel, tt.run, distrlock.WithWaitBackoff(backoff, backoff))
			createTable(t, a)
			b.stop()
			if b.listener.Listening() {
				t.Fatal("B's listener listens after it was stopped")
			}

			const key = "fallback"
			la, err := a.m.NewLock(ctx, a.db, key)
			if err != nil {
				t.Fatal(err)
			}
			if err := la.Acquire(ctx, a.db, 30*time.Second); err != nil {
				t.Fatal(err)
			}
			tail := queueTail(t, a, key)
			lb, err := b.m.NewLock(ctx, b.db, key)
			if err != nil {
				t.Fatal(err)
			}
			wait := goAcquireWait(t, &lb, b.db, 30*time.Second, 10*time.Second)
			e2eWaitFor(t, "B to queue", func() bool { return queueTail(t, a, key) > tail })
			// B polls: let it read the lock held at least once.
			time.Sleep(3 * backoff / 2)
			if err := la.Release(ctx, a.db); err != nil {
				t.Fatal(err)
			}
			released := time.Now()
			r := wait()
			if r.err != nil {
				t.Fatalf("B: AcquireWait without a listener: %v", r.err)
			}
			latency := r.at.Sub(released)
			t.Logf("without a listening listener, B held the lock %v after the release (backoff %v)", latency, backoff)
			// A sleep between reads is at most the backoff; the slack covers the read, the attempt and a
			// shared machine.
			if limit := backoff + 150*time.Millisecond; latency > limit {
				t.Errorf("B held the lock %v after the release, want within its backoff %v (+ slack: %v)", latency, backoff, limit)
			}
			if err := lb.Release(ctx, b.db); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestE2EElectionWithPush: with poll intervals of 10 s, a standby on a third manager takes over within
// 500 ms of the leader's Resign, and an observer on a second manager reports the new term as quickly,
// after the old one and with nothing but "no leader" between them, then the new leader's proclaimed value:
// all are woken by notices.
func TestE2EElectionWithPush(t *testing.T) {
	ctx := t.Context()
	table, channel := e2eNames(t)
	leaderProc := newProcess(t, e2eOpen(t), table, channel, true)
	observerProc := newProcess(t, e2eOpen(t), table, channel, true)
	var standbyReads stmtcount.Counter
	standbyProc := newProcess(t, e2eOpenCounted(t, &standbyReads), table, channel, true)
	createTable(t, leaderProc)

	const (
		name  = "leader"
		poll  = 10 * time.Second
		bound = 500 * time.Millisecond
	)
	newElection := func(p *process, identity string) *distrlock.Election {
		t.Helper()
		e, err := p.m.NewElection(p.db, name, distrlock.WithElectionPollInterval(poll), distrlock.WithIdentity(identity))
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	leader := newElection(leaderProc, "leader")
	observer := newElection(observerProc, "observer")
	standby := newElection(standbyProc, "standby")

	if err := leader.Campaign(ctx, "a"); err != nil {
		t.Fatalf("leader: campaign: %v", err)
	}
	t.Cleanup(func() { _ = leader.Resign(context.Background()) })
	firstTerm := leader.Term()

	obsCtx, stopObserving := context.WithCancel(ctx)
	changes := observer.Observe(obsCtx)
	t.Cleanup(func() {
		stopObserving()
		for range changes { // until the observer's goroutine has returned
		}
	})
	next := func(within time.Duration) (distrlock.LeaderInfo, time.Time) {
		t.Helper()
		select {
		case l, ok := <-changes:
			if !ok {
				t.Fatal("Observe's channel closed")
			}
			return l, time.Now()
		case <-time.After(within):
			t.Fatalf("Observe reported nothing within %v", within)
			return distrlock.LeaderInfo{}, time.Time{}
		}
	}
	if l, _ := next(e2eTimeout); l.Term != firstTerm || l.Identity != "leader" || l.Value != "a" {
		t.Fatalf("Observe first reported %+v, want the leader's term %d", l, firstTerm)
	}

	campaignCtx, stopCampaign := context.WithCancel(ctx)
	defer stopCampaign()
	campaigned := make(chan acquired, 1)
	go func() {
		err := standby.Campaign(campaignCtx, "b")
		campaigned <- acquired{time.Now(), err}
	}()
	t.Cleanup(func() {
		stopCampaign()
		<-campaigned
		_ = standby.Resign(context.Background())
	})
	// The standby has read the election held and sleeps: for 10 s, unless a notice comes.
	e2eWaitFor(t, "the standby to read the election", func() bool { return standbyReads.Counts().Statements >= 1 })
	time.Sleep(50 * time.Millisecond)

	if err := leader.Resign(ctx); err != nil {
		t.Fatalf("leader: resign: %v", err)
	}
	resigned := time.Now()

	var won acquired
	select {
	case won = <-campaigned:
		campaigned <- won // for the cleanup
	case <-time.After(e2eTimeout):
		t.Fatalf("the standby did not lead within %v of the Resign", e2eTimeout)
	}
	if won.err != nil {
		t.Fatalf("standby: campaign: %v", won.err)
	}
	newTerm := standby.Term()
	if newTerm <= firstTerm || !standby.IsLeader() {
		t.Fatalf("standby: leads %v in term %d, want a term after %d", standby.IsLeader(), newTerm, firstTerm)
	}

	// In order: after the first term, at most "no leader" (0) before the standby's term.
	seen := []int64{firstTerm}
	var observedAt time.Time
	for observedAt.IsZero() {
		l, at := next(e2eTimeout)
		seen = append(seen, l.Term)
		switch {
		case l.Term == 0:
		case l.Term == newTerm && l.Identity == "standby" && l.Value == "b":
			observedAt = at
		default:
			t.Fatalf("Observe reported %+v after %v, want the standby's term %d (terms so far %v)", l, at.Sub(resigned), newTerm, seen)
		}
	}
	led, observed := won.at.Sub(resigned), observedAt.Sub(resigned)
	t.Logf("after Resign: the standby led after %v, Observe reported its term after %v (terms reported %v; poll interval %v)",
		led, observed, seen, poll)
	if led > bound {
		t.Errorf("the standby led %v after the Resign, want within %v (poll interval %v)", led, bound, poll)
	}
	if observed > bound {
		t.Errorf("Observe reported the new term %v after the Resign, want within %v (poll interval %v)", observed, bound, poll)
	}

	// A proclaim publishes too: the observer, which sleeps until the lease's end (15 s) or a notice, reports
	// the new value in the same term as quickly.
	if err := standby.Proclaim(ctx, "c"); err != nil {
		t.Fatalf("standby: proclaim: %v", err)
	}
	proclaimed := time.Now()
	l, at := next(e2eTimeout)
	if l.Term != newTerm || l.Value != "c" {
		t.Fatalf("Observe reported %+v after the proclaim, want term %d with value c", l, newTerm)
	}
	if took := at.Sub(proclaimed); took > bound {
		t.Errorf("Observe reported the proclaimed value %v after it, want within %v (poll interval %v)", took, bound, poll)
	}
	t.Logf("Observe reported the proclaimed value after %v", at.Sub(proclaimed))
}

// recordingExec is an SQLExecutor that records when each statement of a wait was sent, and what it was.
type recordingExec struct {
	db *sql.DB

	mu    sync.Mutex
	sends []sent
}

type sent struct {
	at   time.Time
	kind string
}

func (r *recordingExec) record(query string) {
	kind := "other"
	switch {
	case strings.Contains(query, "ON CONFLICT"):
		kind = "attempt"
	case strings.Contains(query, "queue_tail = queue_tail + 1"):
		kind = "ticket"
	case strings.Contains(query, "SELECT token"):
		kind = "read"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sends = append(r.sends, sent{time.Now(), kind})
}

func (r *recordingExec) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	r.record(query)
	return r.db.ExecContext(ctx, query, args...)
}

func (r *recordingExec) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	r.record(query)
	return r.db.QueryRowContext(ctx, query, args...)
}

// before returns the kinds of the statements sent before t.
func (r *recordingExec) before(t time.Time) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var kinds []string
	for _, s := range r.sends {
		if s.at.Before(t) {
			kinds = append(kinds, s.kind)
		}
	}
	return kinds
}

// TestE2EWaiterStatements: over 2 s of a lock held by another process, while releases of other keys send
// notices on the channel, a waiter whose listener listens sends its attempt, its ticket and a read at
// most once a second: at most 4 statements. The driver's count confirms the recorder's.
func TestE2EWaiterStatements(t *testing.T) {
	ctx := t.Context()
	table, channel := e2eNames(t)
	holder := newProcess(t, e2eOpen(t), table, channel, true)
	var driverCount stmtcount.Counter
	waiter := newProcess(t, e2eOpenCounted(t, &driverCount), table, channel, true)
	createTable(t, holder)

	const (
		key    = "held"
		window = 2 * time.Second
	)
	lh, err := holder.m.NewLock(ctx, holder.db, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := lh.Acquire(ctx, holder.db, 30*time.Second); err != nil {
		t.Fatal(err)
	}

	// Another key is taken and released every 20 ms meanwhile: its notices reach the waiter's listener,
	// which must not wake the waiter for them.
	var neighbourReleases atomic.Int64
	noiseCtx, stopNoise := context.WithCancel(ctx)
	var noise sync.WaitGroup
	defer func() { stopNoise(); noise.Wait() }()
	noise.Go(func() {
		for noiseCtx.Err() == nil {
			ln, err := holder.m.NewLock(noiseCtx, holder.db, "neighbour")
			if err == nil && ln.Acquire(noiseCtx, holder.db, time.Minute) == nil && ln.Release(noiseCtx, holder.db) == nil {
				neighbourReleases.Add(1)
			}
			select {
			case <-noiseCtx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	})

	rec := &recordingExec{db: waiter.db}
	lw, err := waiter.m.NewLock(ctx, waiter.db, key)
	if err != nil {
		t.Fatal(err)
	}
	driverBefore := driverCount.Counts()
	start := time.Now()
	wait := goAcquireWait(t, &lw, rec, 30*time.Second, 10*time.Second)
	time.Sleep(window)
	stopNoise()
	noise.Wait()
	inWindow := rec.before(start.Add(window))
	t.Logf("over %v of a held lock, with %d releases of another key notified on the channel, the waiter sent %d statements: %v",
		window, neighbourReleases.Load(), len(inWindow), inWindow)
	if neighbourReleases.Load() < 10 {
		t.Errorf("only %d releases of another key during the window: the test did not send notices", neighbourReleases.Load())
	}
	if len(inWindow) > 4 || len(inWindow) < 3 || inWindow[0] != "attempt" || inWindow[1] != "ticket" {
		t.Errorf("the waiter's statements in %v: %v, want an attempt, a ticket and at most two reads", window, inWindow)
	}

	if err := lh.Release(ctx, holder.db); err != nil {
		t.Fatal(err)
	}
	released := time.Now()
	r := wait()
	if r.err != nil {
		t.Fatalf("waiter: AcquireWait: %v", r.err)
	}
	all := rec.before(r.at)
	driverSaw := driverCount.Counts().Sub(driverBefore)
	t.Logf("after the release the waiter held the lock in %v; its whole wait sent %d statements %v, its driver saw %d (%d calls)",
		r.at.Sub(released), len(all), all, driverSaw.Statements, driverSaw.Calls())
	if driverSaw.Statements != int64(len(all)) {
		t.Errorf("the driver saw %d statements, the recorder %d", driverSaw.Statements, len(all))
	}
	if latency := r.at.Sub(released); latency > 500*time.Millisecond {
		t.Errorf("the waiter held the lock %v after the release, want a pushed hand-over well under its 1 s read interval", latency)
	}
	if err := lw.Release(ctx, waiter.db); err != nil {
		t.Fatal(err)
	}
}
