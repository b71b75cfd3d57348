package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/distrlock/distrlock"
)

// TestMain lets the test binary serve as the workers it starts: they re-execute it with -worker.
func TestMain(m *testing.M) {
	if isWorker(os.Args[1:]) {
		os.Exit(workerMain(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func TestAnalyze(t *testing.T) {
	ms := func(n int64) int64 { return n * int64(time.Millisecond) }
	acqs := []acquisition{
		// Out of order on purpose: analyze orders by Acquired.
		{Worker: 1, WaitStart: ms(0), Acquired: ms(12), ReleaseStart: ms(17), Released: ms(18), Fence: 2},
		{Worker: 0, WaitStart: ms(0), Acquired: ms(1), ReleaseStart: ms(6), Released: ms(7), Fence: 1},
		{Worker: 1, WaitStart: ms(18), Acquired: ms(19), ReleaseStart: ms(24), Released: ms(25), Fence: 3},
		// Taken while worker 1 still held it, with a fence that went back.
		{Worker: 2, WaitStart: ms(2), Acquired: ms(22), ReleaseStart: ms(30), Released: ms(31), Fence: 3},
	}
	s := analyze(acqs, true)
	if s.acquisitions != 4 || s.transitions != 3 || s.handedOver != 2 || s.overlaps != 1 || s.fenceRegressions != 1 {
		t.Fatalf("got %+v", s)
	}
	if s.waitMax != 20*time.Millisecond || s.gapP50 != -2*time.Millisecond || s.gapP99 != 6*time.Millisecond {
		t.Fatalf("waits or gaps: %+v", s)
	}
	if unfenced := analyze(acqs, false); unfenced.fenceRegressions != 0 {
		t.Fatalf("fences counted without fences: %+v", unfenced)
	}
}

// reachable skips the test when the database cannot be reached, unless CI is true.
func reachable(t *testing.T, driver, dsn string) {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err = db.PingContext(ctx)
		cancel()
		db.Close()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s unreachable: %v", driver, err)
		}
		t.Skipf("%s unreachable: %v", driver, err)
	}
}

// TestFleetSmoke runs every mode of both parts briefly with real worker processes and checks that the
// figures come from work that was done: acquisitions happened, never two holders at once, fences only grew,
// and the waiting process sent statements.
func TestFleetSmoke(t *testing.T) {
	c := config{
		pg:      envOr("DISTRLOCK_POSTGRES_DSN", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"),
		my:      envOr("DISTRLOCK_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/test"),
		workers: 3, duration: 600 * time.Millisecond, hold: 2 * time.Millisecond, loadDuration: 300 * time.Millisecond,
		databases: []string{"PostgreSQL", "MariaDB"},
		actions:   []string{"acquirewait", "standby"}, notify: true, run: fmt.Sprintf("t%x", time.Now().UnixNano()&0xffffffffff),
	}
	ctx := t.Context()
	for i, md := range modes(c) {
		t.Run("contention "+md.database+" "+md.name, func(t *testing.T) {
			reachable(t, md.driver, md.dsn)
			s, err := runContention(ctx, c, md, i)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%+v", s)
			if s.acquisitions == 0 || s.transitions != s.acquisitions-1 {
				t.Errorf("acquisitions %d, transitions %d", s.acquisitions, s.transitions)
			}
			if s.overlaps != 0 {
				t.Errorf("%d overlaps", s.overlaps)
			}
			if s.fenced != md.fenced() || s.fenceRegressions != 0 {
				t.Errorf("fenced %t, %d fence regressions", s.fenced, s.fenceRegressions)
			}
			if (s.commitP50 > 0) != (md.lock == "pg-advisory-fence") {
				t.Errorf("commit p50 %v: only the durable floor times its commit", s.commitP50)
			}
		})
	}
	for i, lt := range loadTargets(c) {
		t.Run("load "+lt.name, func(t *testing.T) {
			reachable(t, lt.driver, lt.dsn)
			r, err := runLoad(ctx, c, lt, i)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%+v", r)
			if len(r.both) != len(c.actions) {
				t.Fatalf("%d waiter intervals for %d actions", len(r.both), len(c.actions))
			}
			for _, both := range r.both {
				if both.stmts == 0 {
					t.Errorf("the waiting process (%s) sent no statements", both.action)
				}
				if both.secs < c.loadDuration.Seconds() {
					t.Errorf("%s: interval shorter than %v: %+v", both.action, c.loadDuration, both)
				}
			}
			if r.holder.secs < c.loadDuration.Seconds() {
				t.Errorf("holder's interval shorter than %v: %+v", c.loadDuration, r)
			}
		})
	}
}

func TestRound(t *testing.T) {
	for _, c := range []struct {
		v    float64
		prec int
		want string
	}{{-0.0001, 3, "0.000"}, {-0.4, 0, "0"}, {0.0834, 3, "0.083"}, {-1.6, 0, "-2"}, {175.5, 0, "176"}} {
		if got := round(c.v, c.prec); got != c.want {
			t.Errorf("round(%v, %d) = %q, want %q", c.v, c.prec, got, c.want)
		}
	}
}

// TestAsynchronous checks that the bound's DSN turns off waiting for the disk, that the check refuses a
// session that waits, and that a bound worker given such a session refuses to run.
func TestAsynchronous(t *testing.T) {
	dsn := envOr("DISTRLOCK_POSTGRES_DSN", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	reachable(t, "pgx", dsn)
	durableDSN := withRuntimeParam(dsn, "synchronous_commit", "on")
	for _, c := range []struct {
		dsn   string
		async bool
	}{{durableDSN, false}, {withRuntimeParam(dsn, "synchronous_commit", "off"), true}} {
		db, err := sql.Open("pgx", c.dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := asynchronous(t.Context(), db); (err == nil) != c.async {
			t.Errorf("%s: asynchronous = %v, want an error: %t", c.dsn, err, !c.async)
		}
	}
	c := config{pg: dsn, workers: 1, duration: 100 * time.Millisecond, hold: time.Millisecond,
		run: fmt.Sprintf("a%x", time.Now().UnixNano()&0xffffffffff)}
	md := mode{"PostgreSQL", "bound on a durable session", "distrlock", "pgx", durableDSN, distrlock.DialectPgx, false, true}
	if _, err := runContention(t.Context(), c, md, 0); err == nil {
		t.Error("a bound worker ran on a session whose commits wait for the disk")
	}
}

func TestWithRuntimeParam(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u@h/db":               "postgres://u@h/db?synchronous_commit=off",
		"postgresql://u@h/db?sslmode=off": "postgresql://u@h/db?sslmode=off&synchronous_commit=off",
		"host=h user=u dbname=db":         "host=h user=u dbname=db synchronous_commit=off",
	} {
		if got := withRuntimeParam(in, "synchronous_commit", "off"); got != want {
			t.Errorf("withRuntimeParam(%q) = %q, want %q", in, got, want)
		}
	}
}
