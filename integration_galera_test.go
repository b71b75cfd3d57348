package distrlock

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distrlock/distrlock/internal/stmtcount"
)

// The Galera tests run against the three nodes of a MariaDB Galera cluster named by DISTRLOCK_GALERA_DSN1,
// DISTRLOCK_GALERA_DSN2 and DISTRLOCK_GALERA_DSN3 (go-sql-driver DSNs, root@tcp(127.0.0.1:23306)/test…), which
// scripts/scale/galera.sh starts and prints (make scale-test). They skip when a DSN is unset, also in CI: the
// cluster is not part of make test.

// galeraCluster is the three nodes, one *sql.DB each.
type galeraCluster [3]*sql.DB

// openGalera opens the three nodes, or skips the test when a DSN is unset; an unreachable node fails it.
func openGalera(t testing.TB) galeraCluster {
	t.Helper()
	var c galeraCluster
	for i := range c {
		name := fmt.Sprintf("DISTRLOCK_GALERA_DSN%d", i+1)
		dsn := os.Getenv(name)
		if dsn == "" {
			t.Skipf("%s is unset (scripts/scale/galera.sh start; eval \"$(scripts/scale/galera.sh env)\")", name)
		}
		db, err := sql.Open("mysql", dsn)
		if err != nil {
			t.Fatalf("open %s: %v", name, err)
		}
		t.Cleanup(func() { _ = db.Close() })
		var size string
		if err := db.QueryRowContext(t.Context(), "SHOW GLOBAL STATUS LIKE 'wsrep_cluster_size'").Scan(new(string), &size); err != nil {
			t.Fatalf("%s (%s): %v", name, dsn, err)
		}
		if size != "3" {
			t.Fatalf("%s (%s): wsrep_cluster_size %s, want 3", name, dsn, size)
		}
		c[i] = db
	}
	return c
}

// galeraManager creates a table of its own, through the first node, for a manager made WithGalera, and
// drops it afterwards.
func galeraManager(t testing.TB, c galeraCluster, options ...DBManagerOption) *DBManager {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	m, err := NewDBManager(DialectMariaDB, append([]DBManagerOption{WithTableName("distrlock_galera_" + hex.EncodeToString(b[:])), WithGalera()}, options...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CreateTable(t.Context(), c[0]); err != nil {
		t.Fatal(err)
	}
	// The other nodes apply the DDL a moment later: wait for it there.
	for _, db := range c[1:] {
		if _, err := db.ExecContext(t.Context(), "SET STATEMENT wsrep_sync_wait = 1 FOR SELECT COUNT(*) FROM "+m.quoted); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if _, err := c[0].ExecContext(context.Background(), m.DropTableSQL()); err != nil {
			t.Errorf("drop table: %v", err)
		}
	})
	return m
}

// galeraSetGlobal sets a global variable on every node and restores each node's value when the test ends.
// Sessions opened before the change keep their old value of a session variable, so it also closes the
// pools' idle connections.
func galeraSetGlobal(t testing.TB, c galeraCluster, name string, value int) {
	t.Helper()
	for _, db := range c {
		var old int
		if err := db.QueryRowContext(t.Context(), "SELECT @@GLOBAL."+name).Scan(&old); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(t.Context(), fmt.Sprintf("SET GLOBAL %s = %d", name, value)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if _, err := db.ExecContext(context.Background(), fmt.Sprintf("SET GLOBAL %s = %d", name, old)); err != nil {
				t.Errorf("restore %s: %v", name, err)
			}
		})
		db.SetMaxIdleConns(0)
		db.SetMaxIdleConns(2)
	}
}

// galeraConflicts sums, over the nodes, the certification failures and the local transactions aborted by
// replicated ones (wsrep_local_cert_failures + wsrep_local_bf_aborts): the conflicts the cluster raised.
func galeraConflicts(t testing.TB, c galeraCluster) int64 {
	t.Helper()
	var sum int64
	for _, db := range c {
		for _, name := range []string{"wsrep_local_cert_failures", "wsrep_local_bf_aborts"} {
			var n int64
			if err := db.QueryRowContext(t.Context(), "SHOW GLOBAL STATUS LIKE '"+name+"'").Scan(new(string), &n); err != nil {
				t.Fatal(err)
			}
			sum += n
		}
	}
	return sum
}

// galeraRetryAutocommit runs fn, on a table of its own, with wsrep_retry_autocommit at 0 (a certification
// conflict reaches the client at once) and at 1 (the default: the server retries the statement once first).
func galeraRetryAutocommit(t *testing.T, c galeraCluster, fn func(t *testing.T, m *DBManager)) {
	for _, retry := range []int{0, 1} {
		t.Run(fmt.Sprintf("wsrep_retry_autocommit=%d", retry), func(t *testing.T) {
			galeraSetGlobal(t, c, "wsrep_retry_autocommit", retry)
			fn(t, galeraManager(t, c))
		})
	}
}

// TestGaleraRaces: 200 rounds of two clients, on two different nodes, acquiring one key at the same
// moment (each key twice: once when the race creates its row, once when the row exists): exactly one wins
// each round, the other gets ErrLockAlreadyAcquired, and no raw error (a certification conflict, 1213)
// leaves Acquire; the winner's release, through the other node, finds the lock.
func TestGaleraRaces(t *testing.T) {
	c := openGalera(t)
	galeraRetryAutocommit(t, c, func(t *testing.T, m *DBManager) {
		ctx := t.Context()
		const rounds = 200
		var raw, doubles, none, falseReleased int
		conflicts := galeraConflicts(t, c)
		for round := range rounds {
			key := fmt.Sprintf("race-%d", round/2)
			nodes := [2]*sql.DB{c[round%3], c[(round+1)%3]}
			var locks [2]*DBLock
			var errs [2]error
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range locks {
				locks[i] = integLock(t, m, nodes[i], key)
				wg.Go(func() {
					<-start
					errs[i] = locks[i].Acquire(ctx, nodes[i], time.Minute)
				})
			}
			close(start)
			wg.Wait()
			won := -1
			for i, err := range errs {
				switch {
				case err == nil && won >= 0:
					doubles++
				case err == nil:
					won = i
				case !errors.Is(err, ErrLockAlreadyAcquired):
					raw++
					t.Logf("round %d: racer on node %d: %v", round, (round+i)%3+1, err)
				}
			}
			if won < 0 {
				none++
				continue
			}
			// Released through the loser's node.
			if err := locks[won].Release(ctx, nodes[1-won]); err != nil {
				falseReleased++
				t.Logf("round %d: release through the other node: %v", round, err)
			}
		}
		t.Logf("%d rounds: %d raw errors, %d rounds with two winners, %d with none, %d failed releases; the cluster raised %d conflicts",
			rounds, raw, doubles, none, falseReleased, galeraConflicts(t, c)-conflicts)
		if raw != 0 || doubles != 0 || none != 0 || falseReleased != 0 {
			t.Fatalf("%d raw errors, %d double wins, %d rounds without a winner, %d failed releases in %d rounds", raw, doubles, none, falseReleased, rounds)
		}
	})
}

// TestGaleraCycles: 700 cycles of acquire on node 1, release on node 2, acquire on node 3 (by another
// DBLock) and release on node 1: every release finds the lock it releases (no false
// ErrLockAlreadyReleased, which would strand the lock for its TTL), every acquire finds the lock free, and
// the fences grow by one each time. A step that fails is counted and tried again until it succeeds, so
// that one failure does not spoil the cycles after it.
func TestGaleraCycles(t *testing.T) {
	c := openGalera(t)
	ctx := t.Context()
	m := galeraManager(t, c)
	const cycles = 700
	var falseReleased, falseContention, raw int
	var last int64
	step := func(cycle int, what string, fn func() error) {
		t.Helper()
		for try := 0; ; try++ {
			err := fn()
			switch {
			case err == nil:
				return
			case try == 100:
				t.Fatalf("cycle %d: %s: still failing after 100 tries: %v", cycle, what, err)
			case try > 0:
			case errors.Is(err, ErrLockAlreadyReleased):
				falseReleased++
				t.Logf("cycle %d: %s: %v", cycle, what, err)
			case errors.Is(err, ErrLockAlreadyAcquired):
				falseContention++
				t.Logf("cycle %d: %s: %v", cycle, what, err)
			default:
				raw++
				t.Logf("cycle %d: %s: %v", cycle, what, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	acquire := func(cycle int, what string, l *DBLock, exec SQLExecutor) {
		t.Helper()
		step(cycle, what, func() error { return l.Acquire(ctx, exec, time.Minute) })
		if l.Fence() <= last {
			t.Fatalf("cycle %d: %s: fence %d after %d", cycle, what, l.Fence(), last)
		}
		last = l.Fence()
	}
	start := time.Now()
	for cycle := range cycles {
		a := integLock(t, m, c[0], "cycle")
		acquire(cycle, "acquire on node 1", a, c[0])
		step(cycle, "release on node 2", func() error { return a.Release(ctx, c[1]) })
		b := integLock(t, m, c[2], "cycle")
		acquire(cycle, "acquire on node 3", b, c[2])
		step(cycle, "release on node 1", func() error { return b.Release(ctx, c[0]) })
	}
	t.Logf("%d cycles in %v: %d false ErrLockAlreadyReleased, %d false contention, %d raw errors, fences 1 to %d",
		cycles, time.Since(start).Round(time.Millisecond), falseReleased, falseContention, raw, last)
	if falseReleased != 0 || falseContention != 0 || raw != 0 {
		t.Fatalf("%d false ErrLockAlreadyReleased, %d false contention, %d raw errors", falseReleased, falseContention, raw)
	}
}

// TestGaleraGetAnyNode: a lock acquired on one node is seen held, under its token and fence, by Get on
// each other node called after the acquire returned; and seen free after the release returned.
func TestGaleraGetAnyNode(t *testing.T) {
	c := openGalera(t)
	ctx := t.Context()
	m := galeraManager(t, c)
	const rounds = 600
	missed := 0
	for round := range rounds {
		on := round % 3
		l := integLock(t, m, c[on], fmt.Sprintf("get-%d", round))
		integAcquire(ctx, t, l, c[on], time.Minute)
		for _, other := range []int{(on + 1) % 3, (on + 2) % 3} {
			info, err := m.Get(ctx, c[other], l.Key)
			if err != nil {
				t.Fatal(err)
			}
			if !info.Held || info.Token != l.Token() || info.Fence != l.Fence() {
				missed++
				t.Logf("round %d: node %d acquired fence %d; node %d read held %v, fence %d", round, on+1, l.Fence(), other+1, info.Held, info.Fence)
			}
		}
		if err := l.Release(ctx, c[on]); err != nil {
			t.Fatal(err)
		}
		info, err := m.Get(ctx, c[(on+1)%3], l.Key)
		if err != nil {
			t.Fatal(err)
		}
		if info.Held {
			missed++
			t.Logf("round %d: released on node %d, node %d still reads it held", round, on+1, (on+1)%3+1)
		}
	}
	t.Logf("%d reads after a change on another node: %d missed it", 3*rounds, missed)
	if missed != 0 {
		t.Fatalf("%d of %d reads missed a change made on another node before them", missed, 3*rounds)
	}
}

// TestGaleraAcquireWait: three clients, one per node, take one key with AcquireWait 30 times each, hold it
// a moment and release it: every wait ends with the lock (no raw error from a certification conflict), and
// no two hold it at once.
func TestGaleraAcquireWait(t *testing.T) {
	c := openGalera(t)
	galeraRetryAutocommit(t, c, func(t *testing.T, m *DBManager) {
		ctx := t.Context()
		const each = 30
		var holders, overlaps, acquired, failed atomic.Int64
		conflicts := galeraConflicts(t, c)
		var wg sync.WaitGroup
		for node := range c {
			wg.Go(func() {
				for range each {
					l := integLock(t, m, c[node], "wait")
					if err := l.AcquireWait(ctx, c[node], 10*time.Second, 20*time.Second); err != nil {
						failed.Add(1)
						t.Errorf("node %d: acquire wait: %v", node+1, err)
						continue
					}
					if holders.Add(1) > 1 {
						overlaps.Add(1)
					}
					acquired.Add(1)
					time.Sleep(time.Millisecond)
					holders.Add(-1)
					if err := l.Release(ctx, c[node]); err != nil {
						t.Errorf("node %d: release: %v", node+1, err)
					}
				}
			})
		}
		wg.Wait()
		t.Logf("%d acquisitions, %d failed waits, %d overlaps; the cluster raised %d conflicts", acquired.Load(), failed.Load(), overlaps.Load(),
			galeraConflicts(t, c)-conflicts)
		if acquired.Load() != 3*each || overlaps.Load() != 0 {
			t.Fatalf("%d acquisitions (want %d), %d overlaps", acquired.Load(), 3*each, overlaps.Load())
		}
	})
}

// TestGaleraHeartbeatsUnderContention: two leases held through node 1 (their heartbeats share the batched
// extend) keep their leases for 3 s of 250 ms extends while clients on nodes 2 and 3 try to acquire both
// keys without pause, by Acquire and by AcquireWait for 50 ms (whose queue tickets write the keys' rows,
// and so conflict with the extends): no lease is lost, and the contenders get only ErrLockAlreadyAcquired.
func TestGaleraHeartbeatsUnderContention(t *testing.T) {
	c := openGalera(t)
	galeraSetGlobal(t, c, "wsrep_retry_autocommit", 0)
	ctx := t.Context()
	m := galeraManager(t, c)
	keys := []string{"beat-a", "beat-b"}
	var leases []*Lease
	for _, key := range keys {
		lease, err := m.Hold(ctx, c[0], key, WithLockTTL(time.Second), WithPeriodicExtendInterval(250*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		leases = append(leases, lease)
	}
	conflicts := galeraConflicts(t, c)
	var attempts, raw atomic.Int64
	stop := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	for _, node := range c[1:] {
		for _, key := range keys {
			wg.Go(func() {
				for i := 0; time.Now().Before(stop); i++ {
					l := integLock(t, m, node, key)
					var err error
					if i%2 == 0 {
						err = l.Acquire(ctx, node, time.Second)
					} else {
						err = l.AcquireWait(ctx, node, time.Second, 50*time.Millisecond)
					}
					attempts.Add(1)
					if !errors.Is(err, ErrLockAlreadyAcquired) {
						raw.Add(1)
						t.Errorf("contender: %v", err)
					}
				}
			})
		}
	}
	wg.Wait()
	for _, lease := range leases {
		if err := lease.Context().Err(); err != nil {
			t.Errorf("%s: lease lost: %v", lease.Key(), context.Cause(lease.Context()))
		}
		if err := lease.Release(ctx); err != nil {
			t.Errorf("%s: release: %v", lease.Key(), err)
		}
	}
	t.Logf("%d contending attempts, %d not ErrLockAlreadyAcquired; the cluster raised %d conflicts", attempts.Load(), raw.Load(), galeraConflicts(t, c)-conflicts)
	if attempts.Load() < 100 {
		t.Fatalf("only %d contending attempts", attempts.Load())
	}
}

// TestGaleraIsolatedNode: a node cut off from the others (gmcast.isolate, so it leaves the primary
// component) refuses the lock's statements at once, and the library knows they changed nothing: an
// Acquire through it keeps no token that may hold the lock, an AcquireWait through it waits and ends with
// the wait's timeout, and Get fails instead of answering from a stale copy. The node rejoins afterwards.
func TestGaleraIsolatedNode(t *testing.T) {
	c := openGalera(t)
	ctx := t.Context()
	m := galeraManager(t, c)
	held := integLock(t, m, c[0], "isolated")
	integAcquire(ctx, t, held, c[0], time.Minute)
	node := c[2]
	galeraIsolate(t, node, true)
	t.Cleanup(func() { galeraIsolate(t, node, false) })

	l := integLock(t, m, node, "isolated")
	err := l.Acquire(ctx, node, time.Minute)
	if err == nil || errors.Is(err, ErrLockAlreadyAcquired) || l.pending != "" {
		t.Fatalf("Acquire through an isolated node = %v (token kept: %v), want an error that changed nothing", err, l.pending != "")
	}
	t.Logf("Acquire: %v", err)
	err = l.AcquireWait(ctx, node, time.Minute, 300*time.Millisecond)
	if !errors.Is(err, ErrWaitTimeout) || l.pending != "" {
		t.Fatalf("AcquireWait through an isolated node = %v, want the wait's timeout and nothing kept", err)
	}
	t.Logf("AcquireWait: %v", err)
	if info, err := m.Get(ctx, node, held.Key); err == nil {
		t.Fatalf("Get through an isolated node answered %+v", info)
	} else {
		t.Logf("Get: %v", err)
	}
	if err := held.Extend(ctx, c[0]); err != nil {
		t.Fatalf("extend on the primary component: %v", err)
	}
}

// galeraIsolate cuts node off from the cluster (gmcast.isolate=1) and waits until it knows it is outside
// the primary component, or lets it rejoin and waits until the cluster has 3 synced nodes again.
func galeraIsolate(t testing.TB, node *sql.DB, isolate bool) {
	t.Helper()
	ctx := context.Background()
	if _, err := node.ExecContext(ctx, fmt.Sprintf("SET GLOBAL wsrep_provider_options = 'gmcast.isolate=%d'", boolInt(isolate))); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var status, size, state string
		err := node.QueryRowContext(ctx, "SELECT (SELECT variable_value FROM information_schema.global_status WHERE variable_name = 'wsrep_cluster_status'),"+
			" (SELECT variable_value FROM information_schema.global_status WHERE variable_name = 'wsrep_cluster_size'),"+
			" (SELECT variable_value FROM information_schema.global_status WHERE variable_name = 'wsrep_local_state_comment')").Scan(&status, &size, &state)
		if err == nil && (isolate && status == "non-Primary" || !isolate && status == "Primary" && size == "3" && state == "Synced") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("isolate %v: the node is %s, %s, cluster size %s after 30 s (%v)", isolate, status, state, size, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestGaleraStatementsPerOperation: a manager made WithGalera still sends one statement per operation
// (acquire, refused acquire, get, extend, release), counted through node 2 on a pinned connection with
// interpolateParams, so that nothing but the statements themselves is counted.
func TestGaleraStatementsPerOperation(t *testing.T) {
	c := openGalera(t)
	ctx := t.Context()
	m := galeraManager(t, c)
	var counter stmtcount.Counter
	db, err := stmtcount.Open("mysql", withParams(os.Getenv("DISTRLOCK_GALERA_DSN2"), "interpolateParams=true"), &counter)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	l, other := integLock(t, m, conn, "count"), integLock(t, m, conn, "count")
	for _, step := range []struct {
		what    string
		run     func() error
		wantErr error
	}{
		{"acquire", func() error { return l.Acquire(ctx, conn, time.Minute) }, nil},
		{"refused acquire", func() error { return other.Acquire(ctx, conn, time.Minute) }, ErrLockAlreadyAcquired},
		{"get", func() error { _, err := m.Get(ctx, conn, l.Key); return err }, nil},
		{"extend", func() error { return l.Extend(ctx, conn) }, nil},
		{"release", func() error { return l.Release(ctx, conn) }, nil},
	} {
		before := counter.Counts()
		if err := step.run(); step.wantErr == nil && err != nil || step.wantErr != nil && !errors.Is(err, step.wantErr) {
			t.Fatalf("%s: %v, want %v", step.what, err, step.wantErr)
		}
		if got := counter.Counts().Sub(before); got != (stmtcount.Counts{Statements: 1}) {
			t.Errorf("%s sent %+v, want one statement", step.what, got)
		}
	}
}

// BenchmarkGaleraSyncWait measures what WithGalera costs each statement: Get, Extend, and an Acquire and
// Release, through node 2, of locks acquired on node 1, by a manager with and one without the option, in
// turn at each iteration so that both see the same load; it reports the mean of each in µs
// (go test -run '^$' -bench GaleraSyncWait -benchtime 2000x .).
func BenchmarkGaleraSyncWait(b *testing.B) {
	c := openGalera(b)
	galera := galeraManager(b, c)
	plain, err := NewDBManager(DialectMariaDB, WithTableName(galera.TableName()))
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	type op func(m *DBManager, held, cycle *DBLock) error
	runs := 0 // each run of a sub-benchmark (-count, b.N rounds) takes keys of its own
	for _, o := range []struct {
		name string
		run  op
	}{
		{"get", func(m *DBManager, held, _ *DBLock) error { _, err := m.Get(ctx, c[1], held.Key); return err }},
		{"extend", func(_ *DBManager, held, _ *DBLock) error { return held.Extend(ctx, c[1]) }},
		{"acquire+release", func(_ *DBManager, _, cycle *DBLock) error {
			if err := cycle.Acquire(ctx, c[1], time.Minute); err != nil {
				return err
			}
			return cycle.Release(ctx, c[1])
		}},
	} {
		b.Run(o.name, func(b *testing.B) {
			runs++
			var spent [2]time.Duration
			var held, cycle [2]*DBLock
			for i, m := range []*DBManager{plain, galera} {
				held[i] = integLock(b, m, c[0], fmt.Sprintf("held-%d-%d", runs, i))
				integAcquire(ctx, b, held[i], c[0], time.Hour)
				// Node 2 catches up first: the plain manager's first extend there must find the lock.
				if _, err := galera.Get(ctx, c[1], held[i].Key); err != nil {
					b.Fatal(err)
				}
				cycle[i] = integLock(b, m, c[1], fmt.Sprintf("cycle-%d-%d", runs, i))
			}
			for b.Loop() {
				for i, m := range []*DBManager{plain, galera} {
					start := time.Now()
					if err := o.run(m, held[i], cycle[i]); err != nil {
						b.Fatal(err)
					}
					spent[i] += time.Since(start)
				}
			}
			b.ReportMetric(float64(spent[0].Microseconds())/float64(b.N), "plain-µs/op")
			b.ReportMetric(float64(spent[1].Microseconds())/float64(b.N), "galera-µs/op")
		})
	}
}
