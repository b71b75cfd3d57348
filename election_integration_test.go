package distrlock

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distrlock/distrlock/internal/stmtcount"
)

// The election's integration tests run on every database of allDBs, a table per subtest. Candidates that
// stand for separate processes get managers of their own on the table, so that no release through a
// shared manager wakes them: they learn of changes by polling, as processes without a notifier do.

const (
	electionPoll = 100 * time.Millisecond
	// electionSlack is what a change may take beyond a poll interval to be seen: the read's round trip and
	// scheduling on a machine shared with other tests.
	electionSlack = 300 * time.Millisecond
)

// electionManager is another manager on m's table, as another process would have.
func electionManager(t *testing.T, tdb *testDB, m *DBManager) *DBManager {
	t.Helper()
	m2, err := NewDBManager(tdb.dialect, WithTableName(m.TableName()))
	if err != nil {
		t.Fatal(err)
	}
	return m2
}

func newTestElection(t *testing.T, m *DBManager, db *sql.DB, identity string, opts ...ElectionOption) *Election {
	t.Helper()
	e, err := m.NewElection(db, "leader", append([]ElectionOption{WithIdentity(identity), WithElectionPollInterval(electionPoll)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// observed is one value an Observe channel sent, and when.
type observed struct {
	at   time.Time
	info LeaderInfo
}

// TestElectionIntegrationObserveProclaimResign: an observer sees the first term, a proclaimed value in the
// same term and the standby's new term after Resign, in order and each within a poll interval (plus
// slack); Proclaim keeps the term; Resign hands over to the standby within a poll interval.
func TestElectionIntegrationObserveProclaimResign(t *testing.T) {
	t.Parallel()
	integEach(t, allDBs(t), func(t *testing.T, tdb *testDB) {
		ctx := t.Context()
		m := newTestManager(t, tdb)
		a := newTestElection(t, m, tdb.db, "a")
		b := newTestElection(t, electionManager(t, tdb, m), tdb.db, "b")
		obs := newTestElection(t, electionManager(t, tdb, m), tdb.db, "observer")

		obsCtx, stopObserving := context.WithCancel(ctx)
		changes := obs.Observe(obsCtx)
		next := func(what string) observed {
			t.Helper()
			select {
			case l, ok := <-changes:
				if !ok {
					t.Fatalf("%s: channel closed", what)
				}
				return observed{time.Now(), l}
			case <-time.After(5 * time.Second):
				t.Fatalf("%s: nothing observed in 5 s", what)
			}
			return observed{}
		}
		within := func(what string, since time.Time, o observed) {
			t.Helper()
			if d := o.at.Sub(since); d > electionPoll+electionSlack {
				t.Errorf("%s observed %v after the change, want within %v", what, d, electionPoll+electionSlack)
			}
		}

		if o := next("no leader yet"); o.info.Term != 0 {
			t.Fatalf("first observation %+v, want no leader", o.info)
		}
		if _, err := a.Leader(ctx); !errors.Is(err, ErrNoLeader) {
			t.Fatalf("Leader before any campaign = %v, want ErrNoLeader", err)
		}

		if err := a.Campaign(ctx, "a1"); err != nil {
			t.Fatal(err)
		}
		won := time.Now()
		term := a.Term()
		if term <= 0 {
			t.Fatalf("term %d", term)
		}
		o := next("a's term")
		within("a's term", won, o)
		if o.info.Term != term || o.info.Value != "a1" || o.info.Identity != "a" {
			t.Fatalf("observed %+v, want term %d a1 by a", o.info, term)
		}

		if err := a.Proclaim(ctx, "a2"); err != nil {
			t.Fatal(err)
		}
		proclaimed := time.Now()
		o = next("a's new value")
		within("a's new value", proclaimed, o)
		if o.info.Term != term || o.info.Value != "a2" {
			t.Fatalf("observed %+v, want term %d a2", o.info, term)
		}
		if err := a.Proclaim(ctx, "a2"); err != nil { // the same value: MySQL changes no row but finds it
			t.Fatalf("Proclaim of the same value = %v", err)
		}
		if l, err := b.Leader(ctx); err != nil || l.Term != term || l.Value != "a2" || l.Identity != "a" {
			t.Fatalf("Leader after Proclaim = %+v, %v; want the same term %d with a2", l, err, term)
		}
		if err := b.Proclaim(ctx, "b?"); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("Proclaim by a standby = %v, want ErrNotLeader", err)
		}

		bWon := make(chan time.Time, 1)
		go func() {
			if err := b.Campaign(ctx, "b1"); err != nil {
				t.Error(err)
			}
			bWon <- time.Now()
		}()
		time.Sleep(3 * electionPoll)
		if b.IsLeader() {
			t.Fatal("b leads while a does")
		}
		if err := a.Resign(ctx); err != nil {
			t.Fatal(err)
		}
		resigned := time.Now()
		var took time.Time
		select {
		case took = <-bWon:
		case <-time.After(5 * time.Second):
			t.Fatal("b did not take over within 5 s")
		}
		if d := took.Sub(resigned); d > electionPoll+electionSlack {
			t.Errorf("b took over %v after a resigned, want within %v", d, electionPoll+electionSlack)
		}
		if b.Term() <= term {
			t.Errorf("b's term %d is not above a's %d", b.Term(), term)
		}
		o = next("b's term")
		if o.info.Term == 0 { // the observer may read between the release and b's acquire
			o = next("b's term after no leader")
		}
		within("b's term", took, o)
		if o.info.Term != b.Term() || o.info.Value != "b1" || o.info.Identity != "b" {
			t.Fatalf("observed %+v, want b's term %d", o.info, b.Term())
		}
		if err := b.Resign(ctx); err != nil {
			t.Fatal(err)
		}
		stopObserving()
		for range changes { // the channel closes once the goroutine has returned
		}
	})
}

// electionRecorder passes statements on and records their text.
type electionRecorder struct {
	exec SQLExecutor
	mu   sync.Mutex
	sent []string
}

func (r *electionRecorder) record(query string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, query)
}

func (r *electionRecorder) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	r.record(query)
	return r.exec.ExecContext(ctx, query, args...)
}

func (r *electionRecorder) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	r.record(query)
	return r.exec.QueryRowContext(ctx, query, args...)
}

// TestElectionIntegrationStandbyWritesNothing: while a leader is idle (TTL 1 min: no extend for 30 s), a
// standby that polls every 100 ms for 2 s sends only the read of get.sql, about one per poll, on a
// database of its own where a counting driver sees nothing else; the lock's row is unchanged (on MySQL
// its contended counter too, which every refused acquire bumps).
func TestElectionIntegrationStandbyWritesNothing(t *testing.T) {
	t.Parallel()
	integEach(t, allDBs(t), func(t *testing.T, tdb *testDB) {
		ctx := t.Context()
		m := newTestManager(t, tdb)
		leader := newTestElection(t, m, tdb.db, "leader", WithElectionTTL(time.Minute))
		if err := leader.Campaign(ctx, "v"); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = leader.Resign(context.Background()) }()

		var counter stmtcount.Counter
		sdb, err := stmtcount.Open(tdb.driver, tdb.dsn, &counter)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sdb.Close() })
		m2 := electionManager(t, tdb, m)
		standby := newTestElection(t, m2, sdb, "standby")
		rec := &electionRecorder{exec: sdb}
		standby.read = rec

		before, err := m.Get(ctx, tdb.db, "leader")
		if err != nil {
			t.Fatal(err)
		}
		contended := func() int64 {
			if !unitIsMySQL(tdb.dialect) {
				return 0
			}
			var n int64
			if err := tdb.db.QueryRowContext(ctx, "SELECT contended FROM `"+m.TableName()+"` WHERE lock_key = ?", "leader").Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		contendedBefore := contended()

		const wait = 2 * time.Second
		waitCtx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		if err := standby.Campaign(waitCtx, "s"); !errors.Is(err, ErrLockAlreadyAcquired) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("standby's Campaign = %v, want contention and the deadline", err)
		}

		rec.mu.Lock()
		sent := rec.sent
		rec.mu.Unlock()
		for i, q := range sent {
			if q != m2.q.get {
				t.Fatalf("statement %d of the standby is not get.sql:\n%s", i, q)
			}
		}
		if n := len(sent); n < int(wait/electionPoll)/2 || n > int(wait/electionPoll)+2 {
			t.Errorf("the standby sent %d reads in %v at a poll of %v", n, wait, electionPoll)
		}
		got := counter.Counts()
		// The last read may have been cut short by the deadline between the recorder and the driver.
		if got.Statements < int64(len(sent))-1 || got.Statements > int64(len(sent)) || got.Begins != 0 || got.Commits != 0 {
			t.Errorf("the standby's database saw %+v, want %d statements (its reads; the last may be cut short) and no transactions", got, len(sent))
		}
		after, err := m.Get(ctx, tdb.db, "leader")
		if err != nil {
			t.Fatal(err)
		}
		if after.Token != before.Token || after.Fence != before.Fence || !after.ExpiresAt.Equal(before.ExpiresAt) || !after.AcquiredAt.Equal(before.AcquiredAt) {
			t.Errorf("the lock's row changed while the standby waited: %+v, then %+v", before, after)
		}
		if c := contended(); c != contendedBefore {
			t.Errorf("contended went from %d to %d: the standby attempted acquires", contendedBefore, c)
		}
	})
}

// TestElectionIntegrationCallbacks: two candidates, each through Run in the role of a process, take turns
// for 2.5 s with terms of 150 ms of work: their OnStartedLeading never overlap (counted), each candidate's
// callbacks alternate started/stopped, OnNewLeader reports growing terms, and after Run returns (ctx
// cancelled, ReleaseOnCancel by default) nobody leads.
func TestElectionIntegrationCallbacks(t *testing.T) {
	t.Parallel()
	integEach(t, allDBs(t), func(t *testing.T, tdb *testDB) {
		m := newTestManager(t, tdb)
		ctx, cancel := context.WithTimeout(t.Context(), 2500*time.Millisecond)
		defer cancel()
		var active, violations, terms atomic.Int64
		var wg sync.WaitGroup
		events := make([][]string, 2)
		newLeaders := make([][]int64, 2)
		for i := range 2 {
			e := newTestElection(t, electionManager(t, tdb, m), tdb.db, "c"+strconv.Itoa(i))
			wg.Go(func() {
				err := e.Run(ctx, "v"+strconv.Itoa(i), Callbacks{
					OnStartedLeading: func(lctx context.Context) {
						events[i] = append(events[i], "started")
						if active.Add(1) != 1 {
							violations.Add(1)
						}
						terms.Add(1)
						select {
						case <-time.After(150 * time.Millisecond):
						case <-lctx.Done():
						}
						active.Add(-1)
					},
					OnStoppedLeading: func() { events[i] = append(events[i], "stopped") },
					OnNewLeader:      func(l LeaderInfo) { newLeaders[i] = append(newLeaders[i], l.Term) },
				})
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("Run %d = %v, want the context's error", i, err)
				}
			})
		}
		wg.Wait()
		if v := violations.Load(); v != 0 {
			t.Errorf("%d overlapping terms", v)
		}
		if n := terms.Load(); n < 4 {
			t.Errorf("%d terms in 2.5 s, want at least 4", n)
		}
		for i := range 2 {
			if len(events[i]) == 0 {
				t.Errorf("candidate %d never led", i)
			}
			for j, ev := range events[i] {
				if want := []string{"started", "stopped"}[j%2]; ev != want {
					t.Errorf("candidate %d: event %d is %s, want %s (%v)", i, j, ev, want, events[i])
					break
				}
			}
			if len(events[i])%2 != 0 {
				t.Errorf("candidate %d ends with %v", i, events[i])
			}
			for j := 1; j < len(newLeaders[i]); j++ {
				if newLeaders[i][j] <= newLeaders[i][j-1] {
					t.Errorf("candidate %d: OnNewLeader terms %v do not grow", i, newLeaders[i])
					break
				}
			}
			if len(newLeaders[i]) < 2 {
				t.Errorf("candidate %d: OnNewLeader saw %v", i, newLeaders[i])
			}
		}
		obs := newTestElection(t, m, tdb.db, "after")
		if l, err := obs.Leader(t.Context()); !errors.Is(err, ErrNoLeader) {
			t.Errorf("Leader after Run returned = %+v, %v; want ErrNoLeader (ReleaseOnCancel)", l, err)
		}
	})
}

// electionHelperEnv names the database, table and dialect of TestElectionHelperProcess.
const electionHelperEnv = "DISTRLOCK_ELECTION_HELPER"

// TestElectionHelperProcess is not a test: run by TestElectionIntegrationKilledLeader in a process of its
// own, it campaigns, prints its term and holds the leadership until it is killed.
func TestElectionHelperProcess(t *testing.T) {
	spec := os.Getenv(electionHelperEnv)
	if spec == "" {
		t.Skip("a helper process of TestElectionIntegrationKilledLeader")
	}
	parts := strings.SplitN(spec, "|", 4) // dialect|driver|table|dsn
	db, err := sql.Open(parts[1], parts[3])
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewDBManager(Dialect(parts[0]), WithTableName(parts[2]))
	if err != nil {
		t.Fatal(err)
	}
	e, err := m.NewElection(db, "leader", WithIdentity("helper"), WithElectionTTL(2*time.Second), WithElectionPollInterval(electionPoll))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Campaign(context.Background(), "helper"); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("LEADER %d\n", e.Term())
	time.Sleep(time.Minute)
}

// TestElectionIntegrationKilledLeader: a leader process killed with SIGKILL (no resign) is replaced by a
// standby within its TTL of 2 s, plus a poll interval and slack, and not before it dies.
func TestElectionIntegrationKilledLeader(t *testing.T) {
	t.Parallel()
	integEach(t, allDBs(t), func(t *testing.T, tdb *testDB) {
		const ttl = 2 * time.Second
		ctx := t.Context()
		m := newTestManager(t, tdb)
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestElectionHelperProcess$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), electionHelperEnv+"="+strings.Join([]string{string(tdb.dialect), tdb.driver, m.TableName(), tdb.dsn}, "|"))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killed := false
		defer func() {
			if !killed {
				_ = cmd.Process.Kill()
			}
			_ = cmd.Wait()
		}()
		lines := make(chan string)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		var helperTerm int64
		deadline := time.After(30 * time.Second)
		for helperTerm == 0 {
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatal("the helper exited before leading")
				}
				if rest, found := strings.CutPrefix(line, "LEADER "); found {
					helperTerm, _ = strconv.ParseInt(rest, 10, 64)
				}
			case <-deadline:
				t.Fatal("the helper did not lead within 30 s")
			}
		}
		go func() {
			for range lines { // drain the rest of the helper's output
			}
		}()

		standby := newTestElection(t, electionManager(t, tdb, m), tdb.db, "standby", WithElectionTTL(ttl))
		won := make(chan error, 1)
		var wonAt atomic.Pointer[time.Time]
		go func() {
			err := standby.Campaign(ctx, "standby")
			now := time.Now()
			wonAt.Store(&now)
			won <- err
		}()
		time.Sleep(500 * time.Millisecond)
		if wonAt.Load() != nil {
			t.Fatal("the standby won while the helper was alive")
		}
		if err := cmd.Process.Kill(); err != nil { // SIGKILL: no resign, no release
			t.Fatal(err)
		}
		killedAt := time.Now()
		killed = true
		select {
		case err := <-won:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no new leader 10 s after the kill")
		}
		if d := wonAt.Load().Sub(killedAt); d > ttl+electionPoll+electionSlack {
			t.Errorf("the standby led %v after the kill, want within the TTL %v and a poll", d, ttl)
		} else {
			t.Logf("the standby led %v after the kill", d)
		}
		if standby.Term() <= helperTerm {
			t.Errorf("standby's term %d is not above the killed leader's %d", standby.Term(), helperTerm)
		}
		if err := standby.Resign(ctx); err != nil {
			t.Error(err)
		}
	})
}
