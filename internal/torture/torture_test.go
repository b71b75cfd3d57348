package torture

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
)

// binary builds the torture command once per test binary.
var binary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "torture-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "torture")
	out, err := exec.Command("go", "build", "-o", bin, "./cmd/torture").CombinedOutput()
	if err != nil {
		return "", &buildError{err, string(out)}
	}
	return bin, nil
})

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }

// config is DefaultConfig for d, or a skip (a failure in CI) when d's database is unreachable.
func config(t *testing.T, d Dialect, duration time.Duration) Config {
	t.Helper()
	c := DefaultConfig(d, duration)
	db, err := sql.Open(d.Driver, c.DSN)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = db.PingContext(ctx)
		cancel()
		db.Close()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s unreachable (CI=true): %v", d.Name, err)
		}
		t.Skipf("%s unreachable: %v", d.Name, err)
	}
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	c.Binary = bin
	return c
}

// galeraConfig is GaleraConfig for the cluster of scripts/scale/galera.sh, or a skip when
// DISTRLOCK_GALERA_DSN1..3 are unset, also in CI: only make scale-test starts the cluster.
func galeraConfig(t *testing.T, duration time.Duration) Config {
	t.Helper()
	c, ok := GaleraConfig(duration)
	if !ok {
		t.Skip("DISTRLOCK_GALERA_DSN1..3 are unset (scripts/scale/galera.sh start; eval \"$(scripts/scale/galera.sh env)\")")
	}
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	c.Binary = bin
	return c
}

// TestTortureShort is the suite's short form, run by make test: 25 s per database (all at once), a fault
// of each kind but a server restart every 2 s, a pruner deleting every free row 10 times a second (not on
// Galera), and not one violation; with several processes waiting for one key at once, terms of the election
// won by at least two processes, and periodic jobs. A MariaDB Galera cluster, when DISTRLOCK_GALERA_DSN1..3
// name its nodes, is a third database, its workers spread over the nodes.
func TestTortureShort(t *testing.T) {
	for _, name := range []string{Postgres.Name, MySQL.Name, "galera"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var c Config
			switch name {
			case "galera":
				c = galeraConfig(t, 25*time.Second)
			case MySQL.Name:
				c = config(t, MySQL, 25*time.Second)
			default:
				c = config(t, Postgres, 25*time.Second)
			}
			if name != "galera" {
				c.PruneEvery = 100 * time.Millisecond
				// Twelve holders on four keys: enough waiting at once for the queue to be under test even
				// when push hands locks over quickly (on six keys, 1 run in 6 saw at most 2 processes wait).
				c.Keys = 4
			}
			var log syncBuffer
			c.Log = &log
			r, err := Run(context.Background(), c)
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("the workers' output ends with:\n%s", log.tail(4000))
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %v", name, r)
			for _, e := range r.Examples {
				t.Log(e)
			}
			if v := r.Violations(); v != 0 {
				t.Errorf("%d violations", v)
			}
			if r.Acquisitions < 30 {
				t.Errorf("%d acquisitions: too few to prove anything", r.Acquisitions)
			}
			if r.Waits < 10 || r.MaxWaiting < 3 {
				t.Errorf("%d acquisitions through a wait, up to %d processes waiting for one key: the wait queue went untested",
					r.Waits, r.MaxWaiting)
			}
			if r.Terms == 0 || r.Leaders < 2 {
				t.Errorf("%d election terms by %d processes: the election went untested", r.Terms, r.Leaders)
			}
			if c.Notify && (r.PushWaits < 3 || r.PushTerms == 0) {
				t.Errorf("%d waits and %d terms of processes with a pgnotify listener: push went untested", r.PushWaits, r.PushTerms)
			}
			if r.PeriodRuns < 3 {
				t.Errorf("%d periodic jobs: WithLockAtLeastFor went untested", r.PeriodRuns)
			}
			if r.Pruned < 10 {
				t.Errorf("%d rows pruned during the run: the fence floor went untested", r.Pruned)
			}
			if r.SharedHolds == 0 {
				t.Errorf("no hold overlapped another of its process for an extend interval: the shared heartbeats went untested")
			}
			for _, kind := range append(c.Faults, "sessions-terminated") {
				if r.Faults[kind] == 0 {
					t.Errorf("no %s fault was injected", kind)
				}
			}
		})
	}
}

// TestTortureCatchesBrokenHolders proves the checker: holders that overstay their lease, or ignore the
// loss of it, are reported as overlaps.
func TestTortureCatchesBrokenHolders(t *testing.T) {
	for _, d := range []Dialect{Postgres, MySQL} {
		for _, mode := range []string{ModeOverstay, ModeIgnoreLoss} {
			t.Run(d.Name+"/"+mode, func(t *testing.T) {
				t.Parallel()
				testBroken(t, d, mode)
			})
		}
	}
}

// TestTortureCatchesPruneWithoutFloor proves the checker for pruning: a pruner that deletes released rows
// without raising the fence floor, as a DELETE by hand does, makes fences go back, and the checker reports
// fence regressions (TestTortureShort prunes with DBManager.Prune and reports none).
func TestTortureCatchesPruneWithoutFloor(t *testing.T) {
	c := config(t, Postgres, 12*time.Second)
	c.PruneEvery, c.PruneWithoutFloor = 100*time.Millisecond, true
	r, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %v", Postgres.Name, r)
	if r.Pruned == 0 || r.Regressions == 0 {
		t.Errorf("%d rows deleted without the floor, %d fence regressions reported: want both above 0", r.Pruned, r.Regressions)
	}
}

// runMode runs 6 worker processes in mode alone for 12 s on d, with the default faults.
func runMode(t *testing.T, d Dialect, mode string) Report {
	t.Helper()
	c := config(t, d, 12*time.Second)
	c.Workers, c.Modes = 6, []string{mode}
	r, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s %s: %v", d.Name, mode, r)
	return r
}

func testBroken(t *testing.T, d Dialect, mode string) {
	r := runMode(t, d, mode)
	if r.Overlaps == 0 {
		t.Errorf("broken holders (%s) and no overlap reported", mode)
	}
	// Their late writes are refused by the fence once the newer holder has written; the few that land
	// between the newer acquisition and its first write count as stale writes accepted (not every run has
	// one: TestAnalyze shows the count).
	if r.Refused == 0 {
		t.Errorf("no stale write was refused by the fence")
	}
}

// syncBuffer collects the workers' output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) tail(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.b.Bytes()
	return string(b[max(0, len(b)-n):])
}

// TestTortureGuard: holders that overstay their lease write the resource in the lock's own database with no
// fence check. Each step under DBLock.Guard, no stale write is accepted and no holds overlap, under the
// usual faults; without the guard the same run accepts stale writes, and so does a run whose steps check
// the lease with a plain read that takes no share lock (the checker proven, for the share lock too).
func TestTortureGuard(t *testing.T) {
	for _, d := range []Dialect{Postgres, MySQL} {
		for _, mode := range []string{ModeGuarded, ModeUnguarded, ModeChecked} {
			t.Run(d.Name+"/"+mode, func(t *testing.T) {
				t.Parallel()
				r := runMode(t, d, mode)
				for _, e := range r.Examples {
					t.Log(e)
				}
				if mode != ModeGuarded {
					if r.StaleAccepted == 0 {
						t.Errorf("holders (%s) wrote past their leases without the guard's share lock and no stale write was reported", mode)
					}
					return
				}
				if v := r.Violations(); v != 0 {
					t.Errorf("%d violations under the guard", v)
				}
				if r.Acquisitions < 10 || r.Steps < 100 {
					t.Errorf("%d acquisitions, %d steps: too few to prove anything", r.Acquisitions, r.Steps)
				}
			})
		}
	}
}
