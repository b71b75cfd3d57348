package distrlock

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// extendTracer records which keys a manager's batched extends and single extends named, as pgx sends them.
// It is safe for concurrent use.
type extendTracer struct {
	batchQuery, singleQuery string

	mu      sync.Mutex
	batches [][]string     // the keys of each batched extend, in the order sent
	singles map[string]int // single extends per key
}

func newExtendTracer(m *DBManager) *extendTracer {
	return &extendTracer{batchQuery: m.q.extendBatch, singleQuery: m.q.extend, singles: map[string]int{}}
}

func (tr *extendTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	// Counted from the end: stdlib's QueryContext puts the result formats before the bound values.
	args := data.Args
	switch data.SQL {
	case tr.batchQuery: // TTL, pairs
		doc, _ := args[len(args)-1].(string)
		var pairs [][2]string
		if err := json.Unmarshal([]byte(doc), &pairs); err != nil {
			panic(fmt.Sprintf("batched extend bound %q: %v", doc, err))
		}
		keys := make([]string, len(pairs))
		for i, p := range pairs {
			keys[i] = p[0]
		}
		tr.batches = append(tr.batches, keys)
	case tr.singleQuery: // TTL, key, token
		key, _ := args[len(args)-2].(string)
		tr.singles[key]++
	}
	return ctx
}

func (tr *extendTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// take returns what the tracer has recorded since the last take, and forgets it.
func (tr *extendTracer) take() (batches [][]string, singles map[string]int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	batches, singles = tr.batches, tr.singles
	tr.batches, tr.singles = nil, map[string]int{}
	return batches, singles
}

// openTracedPostgres opens the test's PostgreSQL through pgx with tr as its query tracer.
func openTracedPostgres(t *testing.T, tr pgx.QueryTracer) *sql.DB {
	t.Helper()
	cfg, err := pgx.ParseConfig(postgresDSN())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Tracer = tr
	db := stdlib.OpenDB(*cfg)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// TestIntegrationBatchSkipsLockedRow: on PostgreSQL, six leases of one manager (TTL 2 s, an extend every
// 500 ms) heartbeat together while another transaction holds the row of one of them, the victim, with
// SELECT … FOR UPDATE. The batched extend skips that row instead of waiting for it: the five others stay
// held and are extended only by shared statements, one or two per interval, never alone; the victim is
// extended alone, with DBLock.Extend's statement, which waits for the row. When the row is held for 700 ms,
// less than the lease, the victim keeps its lease; when it is held for 3 s, longer than the TTL, no extend
// of the victim can succeed in time and its lease is lost (ErrLockLost), but not as released: the
// database never said that another holder took it.
func TestIntegrationBatchSkipsLockedRow(t *testing.T) {
	tdb := openPostgres(t)
	m := newTestManager(t, tdb)
	tr := newExtendTracer(m)
	db := openTracedPostgres(t, tr)
	ctx := t.Context()
	const n, ttl, interval = 6, 2 * time.Second, 500 * time.Millisecond
	leases := make([]*Lease, n)
	for i := range leases {
		l, err := m.Hold(ctx, db, fmt.Sprintf("skip-%d", i), WithLockTTL(ttl), WithPeriodicExtendInterval(interval))
		if err != nil {
			t.Fatal(err)
		}
		leases[i] = l
	}
	victim := leases[2]
	others := slices.DeleteFunc(slices.Clone(leases), func(l *Lease) bool { return l == victim })

	// holdRow keeps the victim's row locked by a transaction of another pool for d, and returns what the
	// heartbeats sent meanwhile.
	holdRow := func(d time.Duration) (batches [][]string, singles map[string]int) {
		t.Helper()
		tx, err := tdb.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback() }()
		var one int
		q := fmt.Sprintf("SELECT 1 FROM %s WHERE lock_key = $1 FOR UPDATE", m.quoted)
		if err := tx.QueryRowContext(ctx, q, victim.Key()).Scan(&one); err != nil {
			t.Fatal(err)
		}
		tr.take()
		time.Sleep(d)
		batches, singles = tr.take()
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		return batches, singles
	}
	// checkShared fails unless the others were extended only by batched statements, each naming all of
	// them, at least min times, and the victim alone at least once.
	checkShared := func(phase string, batches [][]string, singles map[string]int, min int) {
		t.Helper()
		t.Logf("%s: %d batched extends %v, single extends %v", phase, len(batches), batches, singles)
		if len(batches) < min {
			t.Errorf("%s: %d batched extends, want at least %d", phase, len(batches), min)
		}
		for _, keys := range batches {
			for _, l := range others {
				if !slices.Contains(keys, l.Key()) {
					t.Errorf("%s: a batched extend of %v left out %s", phase, keys, l.Key())
				}
			}
		}
		for key, k := range singles {
			if key != victim.Key() {
				t.Errorf("%s: %s extended alone %d times, want only in shared statements", phase, key, k)
			}
		}
		if singles[victim.Key()] == 0 {
			t.Errorf("%s: %s, whose row was locked, never extended alone", phase, victim.Key())
		}
	}
	checkOthers := func(phase string) {
		t.Helper()
		for _, l := range others {
			info, err := m.Get(ctx, tdb.db, l.Key())
			if err != nil || !info.Held || info.Token != l.Token() || l.Context().Err() != nil {
				t.Fatalf("%s: %s: %+v, %v, lease context %v", phase, l.Key(), info, err, context.Cause(l.Context()))
			}
		}
	}

	// Shorter than the lease: the victim's own statement waits for the row, or is retried, and extends it
	// once the row is free, before its lease runs out; then it shares the statements again.
	batches, singles := holdRow(700 * time.Millisecond)
	checkShared("row locked for 700 ms", batches, singles, 1)
	checkOthers("row locked for 700 ms")
	time.Sleep(ttl)
	if err := victim.Context().Err(); err != nil {
		t.Fatalf("victim lost after its row was locked for less than its lease: %v", context.Cause(victim.Context()))
	}
	batches, singles = tr.take()
	if len(batches) == 0 || !slices.Contains(batches[len(batches)-1], victim.Key()) {
		t.Errorf("after the short lock: batched extends %v, want the last to name the victim again", batches)
	}
	for key := range singles {
		if key != victim.Key() {
			t.Errorf("after the short lock: %s extended alone", key)
		}
	}
	checkOthers("after the short lock")

	// Longer than the TTL: the victim's lease runs out while its extends wait.
	batches, singles = holdRow(3 * time.Second)
	checkShared("row locked for 3 s", batches, singles, int(3*time.Second/interval)-1)
	checkOthers("row locked for 3 s")
	cause := context.Cause(victim.Context())
	if !errors.Is(cause, ErrLockLost) || errors.Is(cause, ErrLockAlreadyReleased) {
		t.Errorf("victim's cause after its row was locked for longer than the TTL: %v, want ErrLockLost without ErrLockAlreadyReleased", cause)
	}

	// Afterwards the others go on sharing their statements.
	time.Sleep(2 * interval)
	batches, singles = tr.take()
	if len(batches) == 0 || len(singles) != 0 {
		t.Errorf("after the lock: %d batched extends, single extends %v; want batched ones only", len(batches), singles)
	}
	checkOthers("after the lock")
	for _, l := range leases {
		err := l.Release(ctx)
		if l == victim {
			if !errors.Is(err, ErrLockLost) {
				t.Errorf("release of the victim: %v, want ErrLockLost", err)
			}
		} else if err != nil {
			t.Errorf("release %s: %v", l.Key(), err)
		}
	}
}

// TestIntegrationBatchCannotDeadlock: on PostgreSQL, a batched extend of ten locks whose rows are stored in
// reverse key order, while a transaction holds the row of the first key and then locks the rows of all the
// others, neither deadlocks nor waits: it skips the first row, reports it skipped, and extends the others,
// and the transaction gets its rows once the batched extend has ended. A statement that locked rows in the
// order it reads them, and waited for a locked one, would hold the others while waiting for the first and
// deadlock with the transaction.
func TestIntegrationBatchCannotDeadlock(t *testing.T) {
	tdb := openPostgres(t)
	m := newTestManager(t, tdb)
	ctx := t.Context()
	const n = 10
	locks := make([]*DBLock, n)
	for i := n - 1; i >= 0; i-- {
		locks[i] = integLock(t, m, tdb.db, fmt.Sprintf("order-%02d", i))
		integAcquire(ctx, t, locks[i], tdb.db, time.Minute)
	}
	if _, err := tdb.db.ExecContext(ctx, "ANALYZE "+m.quoted); err != nil {
		t.Fatal(err)
	}
	pairs := make([]lockPair, n)
	for i, l := range locks {
		pairs[i] = lockPair{l.Key, l.token}
	}

	tx, err := tdb.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	var txPID int
	if err := tx.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&txPID); err != nil {
		t.Fatal(err)
	}
	var one int
	if err := tx.QueryRowContext(ctx, fmt.Sprintf("SELECT 1 FROM %s WHERE lock_key = $1 FOR UPDATE", m.quoted), locks[0].Key).Scan(&one); err != nil {
		t.Fatal(err)
	}

	type answer struct {
		held map[lockPair]bool
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		held, err := m.spec.extendBatch(bctx, tdb.db, &m.q, time.Minute.Microseconds(), pairs)
		done <- answer{held, err}
	}()
	// Until the batched extend has answered or waits for the transaction.
	waited := false
	var got *answer
	for deadline := time.Now().Add(5 * time.Second); got == nil && !waited && time.Now().Before(deadline); {
		select {
		case a := <-done:
			got = &a
		case <-time.After(10 * time.Millisecond):
			var blocked int
			if err := tdb.db.QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", txPID).
				Scan(&blocked); err != nil {
				t.Fatal(err)
			}
			waited = blocked > 0
		}
	}
	if waited {
		t.Errorf("the batched extend waited for the row the transaction holds")
	}
	// The transaction now locks the other rows: it would wait for a batched extend that held them.
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var locked int
	q := fmt.Sprintf("SELECT count(*) FROM (SELECT 1 FROM %s WHERE lock_key <> $1 ORDER BY lock_key FOR UPDATE) AS rows", m.quoted)
	if err := tx.QueryRowContext(lctx, q, locks[0].Key).Scan(&locked); err != nil {
		t.Errorf("the transaction's lock of the other rows: %v", err)
	} else if locked != n-1 {
		t.Errorf("the transaction locked %d rows, want %d", locked, n-1)
	}
	if got == nil {
		a := <-done
		got = &a
	}
	if err := tx.Commit(); err != nil {
		t.Errorf("commit: %v", err)
	}
	if got.err != nil {
		t.Fatalf("batched extend: %v", got.err)
	}
	for i, p := range pairs {
		extended, found := got.held[p]
		if want := i != 0; !found || extended != want {
			t.Errorf("%s: extended %v, reported %v; want extended %v, reported", p.key, extended, found, want)
		}
	}
}

// TestIntegrationBatchLocksInKeyOrder: PostgreSQL's plan for the batched extend locks the rows (LockRows)
// as they come out of a sort by key, whatever order the table stores them in.
func TestIntegrationBatchLocksInKeyOrder(t *testing.T) {
	tdb := openPostgres(t)
	m := newTestManager(t, tdb)
	ctx := t.Context()
	for i := 99; i >= 0; i-- {
		l := integLock(t, m, tdb.db, fmt.Sprintf("plan-%02d", i))
		integAcquire(ctx, t, l, tdb.db, time.Minute)
	}
	if _, err := tdb.db.ExecContext(ctx, "ANALYZE "+m.quoted); err != nil {
		t.Fatal(err)
	}
	var plan []byte
	if err := tdb.db.QueryRowContext(ctx, "EXPLAIN (FORMAT JSON) "+m.q.extendBatch, time.Minute.Microseconds(),
		`[["plan-07","x"],["plan-03","y"]]`).Scan(&plan); err != nil {
		t.Fatal(err)
	}
	type node struct {
		NodeType string   `json:"Node Type"`
		SortKey  []string `json:"Sort Key"`
		Plans    []*node  `json:"Plans"`
	}
	var doc []struct {
		Plan *node `json:"Plan"`
	}
	if err := json.Unmarshal(plan, &doc); err != nil || len(doc) != 1 {
		t.Fatalf("plan %s: %v", plan, err)
	}
	var lockRows, byKey int
	var walk func(*node)
	walk = func(nd *node) {
		if nd.NodeType == "LockRows" {
			lockRows++
			if len(nd.Plans) == 1 && nd.Plans[0].NodeType == "Sort" && len(nd.Plans[0].SortKey) > 0 &&
				strings.HasSuffix(nd.Plans[0].SortKey[0], "lock_key") {
				byKey++
			}
		}
		for _, c := range nd.Plans {
			walk(c)
		}
	}
	walk(doc[0].Plan)
	if lockRows != 1 || byKey != 1 {
		t.Errorf("%d LockRows nodes, %d of them over a sort by lock_key; want one, over that sort. Plan:\n%s", lockRows, byKey, plan)
	}
}
