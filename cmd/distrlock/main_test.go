package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/distrlock/distrlock"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/distrlock/distrlock/internal/faultproxy"
)

var binary string // the distrlock binary the tests run, built once

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "distrlock-cli")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "distrlock")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// backend is a database the CLI tests run against, as a --dsn value.
type backend struct {
	name string
	dsn  string
}

// backends returns a fresh SQLite file and, unless unreachable outside CI, PostgreSQL on a table of the
// test's own.
func backends(t *testing.T) []backend {
	bs := []backend{{"sqlite", "sqlite://" + filepath.Join(t.TempDir(), "locks.db")}}
	pg := os.Getenv("DISTRLOCK_POSTGRES_DSN")
	if pg == "" {
		pg = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	db, err := sql.Open("pgx", pg)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = db.PingContext(ctx)
		cancel()
		db.Close()
	}
	switch {
	case err == nil:
		bs = append(bs, backend{"postgres", pg})
	case os.Getenv("CI") == "true":
		t.Fatalf("PostgreSQL unreachable at %s (CI=true): %v", pg, err)
	default:
		t.Logf("PostgreSQL unreachable, testing SQLite only: %v", err)
	}
	return bs
}

// cli runs the binary with a table of the test's own.
type cli struct {
	t     *testing.T
	dsn   string
	table string
}

func newCLI(t *testing.T, b backend) *cli {
	c := &cli{t: t, dsn: b.dsn, table: "cli_" + strings.ToLower(strings.NewReplacer("/", "_", "-", "_").Replace(t.Name()))}
	if len(c.table) > 60 {
		c.table = c.table[:60]
	}
	if res := c.run("migrate"); res.code != 0 {
		t.Fatalf("migrate: %d %s", res.code, res.stderr)
	}
	t.Cleanup(func() {
		if strings.HasPrefix(b.name, "postgres") {
			db, err := sql.Open("pgx", b.dsn)
			if err == nil {
				_, _ = db.Exec(`DROP TABLE IF EXISTS "` + c.table + `"`)
				db.Close()
			}
		}
	})
	return c
}

type result struct {
	code           int
	stdout, stderr string
}

func (c *cli) command(args ...string) *exec.Cmd {
	sub, rest := args[0], args[1:]
	full := append([]string{sub, "--dsn", c.dsn, "--table", c.table}, rest...)
	cmd := exec.Command(binary, full...)
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+c.t.TempDir())
	return cmd
}

func (c *cli) run(args ...string) result {
	cmd := c.command(args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return result{code: exitCode(c.t, err), stdout: out.String(), stderr: errOut.String()}
}

func exitCode(t *testing.T, err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	default:
		t.Fatalf("run: %v", err)
		return -1
	}
}

// started is a `distrlock run` in the background whose command printed its fence and then sleeps.
type started struct {
	cmd   *exec.Cmd
	out   *bytes.Buffer
	errs  *bytes.Buffer
	fence int64
}

// start runs `distrlock run` with a command that prints DISTRLOCK_FENCE and sleeps, and waits until it
// has printed, that is until the lock is held.
func (c *cli) start(runArgs ...string) *started {
	c.t.Helper()
	args := append([]string{"run"}, runArgs...)
	args = append(args, "--", "sh", "-c", `echo "fence=$DISTRLOCK_FENCE"; exec sleep 60`)
	cmd := c.command(args...)
	s := &started{cmd: cmd, out: &bytes.Buffer{}, errs: &bytes.Buffer{}}
	r, w, err := os.Pipe()
	if err != nil {
		c.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, s.errs
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	w.Close()
	c.t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	line := make([]byte, 64)
	_ = r.SetReadDeadline(time.Now().Add(15 * time.Second))
	n, err := r.Read(line)
	if err != nil {
		c.t.Fatalf("run printed nothing: %v; stderr: %s", err, s.errs)
	}
	s.out.Write(line[:n])
	s.fence = parseFence(c.t, s.out.String())
	go func() { _, _ = s.out.ReadFrom(r) }()
	return s
}

func parseFence(t *testing.T, out string) int64 {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "fence="); ok {
			f, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatalf("fence %q: %v", v, err)
			}
			return f
		}
	}
	t.Fatalf("no fence in %q", out)
	return 0
}

func (s *started) wait(t *testing.T) int {
	return exitCode(t, s.cmd.Wait())
}

// TestRunExcludes: a second run on the same key fails at once without --wait (75), times out with a short
// --wait (76), and with a long enough --wait gets the lock once the first ends, with a larger fence.
func TestRunExcludes(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			c := newCLI(t, b)
			first := c.start("--key", "job", "--ttl", "10s")
			if res := c.run("run", "--key", "job", "--", "true"); res.code != exitHeld || !strings.Contains(res.stderr, "held by") {
				t.Errorf("second run without --wait: %d %q", res.code, res.stderr)
			}
			if res := c.run("run", "--key", "job", "--wait", "300ms", "--", "true"); res.code != exitWaitTimeout {
				t.Errorf("second run with a short --wait: %d %q", res.code, res.stderr)
			}
			go func() {
				time.Sleep(500 * time.Millisecond)
				_ = first.cmd.Process.Signal(syscall.SIGTERM) // ends the first run's command, and so the run
			}()
			res := c.run("run", "--key", "job", "--wait", "10s", "--", "sh", "-c", `echo "fence=$DISTRLOCK_FENCE"`)
			if res.code != 0 {
				t.Fatalf("waiting run: %d %q", res.code, res.stderr)
			}
			if got := parseFence(t, res.stdout); got <= first.fence {
				t.Errorf("fence %d after %d: want it to grow", got, first.fence)
			}
			if code := first.wait(t); code != 128+int(syscall.SIGTERM) {
				t.Errorf("first run: exit %d, want %d (its command died of SIGTERM)", code, 128+int(syscall.SIGTERM))
			}
		})
	}
}

// TestRunKilledHolderExpires: a holder killed with SIGKILL cannot release; the next run gets the lock after
// the TTL, not before.
func TestRunKilledHolderExpires(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			c := newCLI(t, b)
			const ttl = 2 * time.Second
			first := c.start("--key", "job", "--ttl", ttl.String())
			acquiredBy := time.Now()
			_ = first.cmd.Process.Kill()
			_ = first.wait(t)
			res := c.run("run", "--key", "job", "--wait", "10s", "--", "sh", "-c", `echo "fence=$DISTRLOCK_FENCE"`)
			took := time.Since(acquiredBy)
			if res.code != 0 {
				t.Fatalf("next run: %d %q", res.code, res.stderr)
			}
			if got := parseFence(t, res.stdout); got <= first.fence {
				t.Errorf("fence %d after %d", got, first.fence)
			}
			if took < ttl-200*time.Millisecond {
				t.Errorf("next run got the lock %v after the killed holder had it, before its TTL %v", took, ttl)
			}
			t.Logf("next holder in %v after the killed one acquired (TTL %v)", took.Round(time.Millisecond), ttl)
		})
	}
}

// TestRunLeaseLostStopsCommand: when the lock is taken away underneath (release --force from elsewhere),
// run stops its command and exits 77.
func TestRunLeaseLostStopsCommand(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			c := newCLI(t, b)
			holder := c.start("--key", "job", "--ttl", "1500ms")
			if res := c.run("release", "job", "--force"); res.code != 0 || !strings.Contains(res.stdout, "overriding") {
				t.Fatalf("release --force: %d %q %q", res.code, res.stdout, res.stderr)
			}
			start := time.Now()
			code := holder.wait(t)
			if code != exitLeaseLost {
				t.Fatalf("run exit %d, want %d; stderr %s", code, exitLeaseLost, holder.errs)
			}
			t.Logf("command stopped %v after the force release", time.Since(start).Round(time.Millisecond))
		})
	}
}

// TestRunConnectionCut: a run whose database connection is black-holed stops its command before the lease
// can end and exits 77.
func TestRunConnectionCut(t *testing.T) {
	bs := backends(t)
	var pg *backend
	for i := range bs {
		if bs[i].name == "postgres" {
			pg = &bs[i]
		}
	}
	if pg == nil {
		t.Skip("needs PostgreSQL")
	}
	u, err := url.Parse(pg.dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := faultproxy.Start(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	u.Host = proxy.Addr()
	c := newCLI(t, backend{"postgres-proxied", u.String()})
	const ttl = 2 * time.Second
	holder := c.start("--key", "job", "--ttl", ttl.String())
	cut := time.Now()
	proxy.SetMode(faultproxy.Blackhole)
	code := holder.wait(t)
	took := time.Since(cut)
	proxy.SetMode(faultproxy.Forward)
	if code != exitLeaseLost {
		t.Fatalf("run exit %d, want %d; stderr %s", code, exitLeaseLost, holder.errs)
	}
	if took >= 2*ttl+time.Second { // lost before the TTL, plus the release attempt, bounded by the TTL
		t.Errorf("run took %v after the cut", took)
	}
	if !strings.Contains(holder.errs.String(), "stopping sh: SIGTERM now") {
		t.Errorf("run did not say it stopped the command: %s", holder.errs)
	}
	t.Logf("run exited %v after the cut (TTL %v)", took.Round(time.Millisecond), ttl)
}

// TestFirstCommand is the README's first command on a machine with no database configured.
func TestFirstCommand(t *testing.T) {
	cmd := exec.Command(binary, "run", "--key", "demo", "--", "echo", "hello")
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+t.TempDir(), "DISTRLOCK_DSN=")
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != "hello\n" {
		t.Fatalf("got %q, %v", out, err)
	}
}

// TestHelp: the help of the tool and of each command reads as help, on stdout, with exit 0.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}, {"run", "--help"}, {"migrate", "--help"},
		{"list", "--help"}, {"inspect", "--help"}, {"release", "--help"}, {"help", "run"}} {
		cmd := exec.Command(binary, args...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil || !strings.Contains(out.String(), "Usage") || errOut.Len() != 0 {
			t.Errorf("%v: %v\nstdout: %s\nstderr: %s", args, err, out.String(), errOut.String())
		}
	}
	for _, args := range [][]string{{}, {"bogus"}, {"run", "--", "true"}, {"run", "--key", "k"}, {"release", "k"},
		{"inspect"}, {"run", "--key", "k", "--ttl", "1s", "--grace", "1s", "--", "true"}} {
		if code := exitCode(t, exec.Command(binary, args...).Run()); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
}

// TestFlagsBeforeCommand: the flags every command takes may come before the command, and errors say
// "distrlock:" once.
func TestFlagsBeforeCommand(t *testing.T) {
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "locks.db")
	for _, args := range [][]string{
		{"--dsn", dsn, "migrate"},
		{"--dsn=" + dsn, "--json", "list"},
		{"-dsn", dsn, "--table", "distributed_locks", "run", "--key", "k", "--", "true"},
	} {
		cmd := exec.Command(binary, args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%v: %v\n%s", args, err, out)
		}
	}
	cmd := exec.Command(binary, "--dsn", dsn, "--table", "missing", "inspect", "k")
	out, err := cmd.CombinedOutput()
	if code := exitCode(t, err); code == 0 || strings.Contains(string(out), "distrlock: distrlock:") ||
		!strings.Contains(string(out), "distrlock migrate") {
		t.Errorf("inspect on a missing table: exit %d\n%s", code, out)
	}
	if code := exitCode(t, exec.Command(binary, "--dsn", dsn).Run()); code != exitUsage {
		t.Errorf("flags without a command: exit %d, want %d", code, exitUsage)
	}
}

// TestMigrateUpgradesDBkit: migrate upgrades a table in go-dbkit's shape in place: a lock go-dbkit holds
// stays held (PostgreSQL, where go-dbkit wrote it), a free key can be taken at once, and a second migrate
// finds nothing to do.
func TestMigrateUpgradesDBkit(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			c := &cli{t: t, dsn: b.dsn, table: "cli_dbkit_" + strings.ToLower(b.name)}
			db, m := openBackendTable(t, b, c.table)
			ctx := context.Background()
			exec := func(q string, args ...any) {
				t.Helper()
				if _, err := db.ExecContext(ctx, q, args...); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			exec(m.DropTableSQL())
			t.Cleanup(func() { _, _ = db.Exec(m.DropTableSQL()) })
			for _, stmt := range m.Migrations()[0].UpSQL() { // go-dbkit's own table
				exec(stmt)
			}
			quoted := `"` + c.table + `"`
			exec(`INSERT INTO ` + quoted + ` (lock_key) VALUES ('free')`) // go-dbkit's NewLock
			if b.name == "postgres" {
				// go-dbkit's acquire: expire_at = NOW() + interval, a timestamp in the session's time zone.
				exec(`INSERT INTO `+quoted+` (lock_key, token, expire_at) VALUES ('held', $1, NOW() + $2::interval)`,
					"8a5b7c3e-0000-4000-8000-000000000001", "1 minute")
			}

			res := c.run("migrate")
			if res.code != 0 || !strings.Contains(res.stdout, "upgraded") {
				t.Fatalf("migrate: %d %q %q", res.code, res.stdout, res.stderr)
			}
			if res := c.run("migrate"); res.code != 0 || !strings.Contains(res.stdout, "is ready") {
				t.Fatalf("second migrate: %d %q %q", res.code, res.stdout, res.stderr)
			}
			if res := c.run("run", "--key", "free", "--", "sh", "-c", "echo $DISTRLOCK_FENCE"); res.code != 0 || strings.TrimSpace(res.stdout) != "1" {
				t.Fatalf("run on a free key of the upgraded table: %d %q %q", res.code, res.stdout, res.stderr)
			}
			if b.name == "postgres" {
				if res := c.run("run", "--key", "held", "--", "true"); res.code != exitHeld {
					t.Fatalf("run on go-dbkit's held key: %d, want %d; %q", res.code, exitHeld, res.stderr)
				}
			}
		})
	}
}

// TestMigrateAddsWaitQueue: migrate upgrades a table of an earlier distrlock (without migration 00004's
// queue columns) in place, says which steps it applied, and run works on it afterwards.
func TestMigrateAddsWaitQueue(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			c := &cli{t: t, dsn: b.dsn, table: "cli_queue_" + strings.ToLower(b.name)}
			migrateBefore(t, b, c.table, "distrlock_00004")
			if res := c.run("run", "--key", "job", "--", "true"); res.code != exitConfig || !strings.Contains(res.stderr, "distrlock migrate") {
				t.Fatalf("run on a table without the queue: %d %q, want %d and the migrate hint", res.code, res.stderr, exitConfig)
			}
			res := c.run("migrate")
			if res.code != 0 || !strings.Contains(res.stdout, "upgraded") || !strings.Contains(res.stdout, "distrlock_00004_wait_queue") {
				t.Fatalf("migrate of a table without the queue: %d %q %q", res.code, res.stdout, res.stderr)
			}
			if res := c.run("migrate"); res.code != 0 || !strings.Contains(res.stdout, "is ready") {
				t.Fatalf("second migrate: %d %q %q", res.code, res.stdout, res.stderr)
			}
			if res := c.run("run", "--key", "job", "--", "true"); res.code != 0 {
				t.Fatalf("run on the upgraded table: %d %q", res.code, res.stderr)
			}
		})
	}
}

// TestMigrateAddsFenceFloor: migrate upgrades a table at distrlock_00004 by inserting the fence floor
// (distrlock_00005_fence_floor), once; a table it creates has the floor already.
func TestMigrateAddsFenceFloor(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			c := &cli{t: t, dsn: b.dsn, table: "cli_floor_" + strings.ToLower(b.name)}
			db, m := migrateBefore(t, b, c.table, "distrlock_00005")
			floors := func() int {
				var n int
				if err := db.QueryRow(`SELECT count(*) FROM "` + c.table + `" WHERE lock_key = ''`).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			res := c.run("migrate")
			if res.code != 0 || !strings.Contains(res.stdout, "upgraded (distrlock_00005_fence_floor)") || floors() != 1 {
				t.Fatalf("migrate of a table without the floor: %d %q %q, %d floors", res.code, res.stdout, res.stderr, floors())
			}
			if res := c.run("migrate"); res.code != 0 || !strings.Contains(res.stdout, "is ready") {
				t.Fatalf("second migrate: %d %q %q", res.code, res.stdout, res.stderr)
			}
			if _, err := db.Exec(m.DropTableSQL()); err != nil {
				t.Fatal(err)
			}
			if res := c.run("migrate"); res.code != 0 || !strings.Contains(res.stdout, "is created") || floors() != 1 {
				t.Fatalf("migrate of no table: %d %q %q, %d floors", res.code, res.stdout, res.stderr, floors())
			}
			if res := c.run("migrate"); res.code != 0 || !strings.Contains(res.stdout, "is ready") {
				t.Fatalf("migrate of a created table: %d %q %q", res.code, res.stdout, res.stderr)
			}
		})
	}
}

// migrateBefore makes table anew on b's database with the migrations before the one whose ID starts with
// stop, drops it at the test's end, and returns the database and a manager for the table.
func migrateBefore(t *testing.T, b backend, table, stop string) (*sql.DB, *distrlock.DBManager) {
	t.Helper()
	db, m := openBackendTable(t, b, table)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, m.DropTableSQL()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = db.Exec(m.DropTableSQL()) })
	for _, mig := range m.Migrations() {
		if strings.HasPrefix(mig.ID(), stop) {
			break
		}
		for _, stmt := range mig.UpSQL() {
			if _, err := db.ExecContext(ctx, stmt); err != nil {
				t.Fatalf("%s: %v", mig.ID(), err)
			}
		}
	}
	return db, m
}

// openBackendTable opens b's database directly (PostgreSQL through pgx, else its SQLite file) and returns
// it, closed at the test's end, with a manager for table.
func openBackendTable(t *testing.T, b backend, table string) (*sql.DB, *distrlock.DBManager) {
	t.Helper()
	driver, dsn, dialect := "sqlite", strings.TrimPrefix(b.dsn, "sqlite://"), distrlock.DialectSQLite
	if b.name == "postgres" {
		driver, dsn, dialect = "pgx", b.dsn, distrlock.DialectPgx
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	m, err := distrlock.NewDBManager(dialect, distrlock.WithTableName(table))
	if err != nil {
		t.Fatal(err)
	}
	return db, m
}

// TestRunReadsTerminal: run in the foreground of a terminal (script(1) provides one) gives the command the
// terminal, so a command that asks a question can read the answer instead of being stopped.
func TestRunReadsTerminal(t *testing.T) {
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script(1) is not installed")
	}
	c := newCLI(t, backends(t)[0])
	line := fmt.Sprintf(`%s run --dsn %s --table %s --key tty -- sh -c 'read answer; echo "got $answer"'`,
		binary, c.dsn, c.table)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, "-qec", line, "/dev/null")
	cmd.Stdin = strings.NewReader("yes\n")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "got yes") {
		t.Fatalf("run under a terminal: %v\n%s", err, out)
	}
}

// tool runs the binary with no database configured, in a state directory of the test's own.
func tool(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+t.TempDir(), "DISTRLOCK_DSN=")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return result{code: exitCode(t, err), stdout: out.String(), stderr: errOut.String()}
}

// TestHelpOfHelp: help asked of help, twice, or with --json prints the tool's help and exits 0 (it once
// recursed until the stack overflowed).
func TestHelpOfHelp(t *testing.T) {
	for _, args := range [][]string{{"help", "help"}, {"-h", "-h"}, {"--help", "--help"}, {"help", "--json"},
		{"--json", "help"}, {"help", "-h"}, {"help", "help", "help"}} {
		res := tool(t, args...)
		if res.code != exitOK || !strings.Contains(res.stdout, "Usage:\n  distrlock run") || res.stderr != "" {
			t.Errorf("%v: exit %d\nstdout: %.200s\nstderr: %.300s", args, res.code, res.stdout, res.stderr)
		}
	}
}

// TestHelpAfterCommonFlags: the common flags before help are parsed as flags with their values, so help
// still finds its topic.
func TestHelpAfterCommonFlags(t *testing.T) {
	for _, args := range [][]string{{"--dsn", "X", "help", "list"}, {"--dsn=X", "--json", "help", "list"},
		{"--table", "t", "list", "--help"}, {"help", "list", "--dsn", "X"}} {
		res := tool(t, args...)
		if res.code != exitOK || !strings.HasPrefix(res.stdout, "Usage: distrlock list") || res.stderr != "" {
			t.Errorf("%v: exit %d\nstdout: %.200s\nstderr: %.300s", args, res.code, res.stdout, res.stderr)
		}
	}
	if res := tool(t, "help", "bogus"); res.code != exitUsage || !strings.Contains(res.stderr, `"bogus"`) {
		t.Errorf("help bogus: exit %d, stderr %q", res.code, res.stderr)
	}
}

// TestBadFlagValue: a flag's bad value is reported on one line that names the flag and the value and
// points to the command's help, instead of the whole help.
func TestBadFlagValue(t *testing.T) {
	for _, tc := range []struct {
		args        []string
		flag, value string
	}{
		{[]string{"run", "--key", "k", "--ttl", "101y", "--", "true"}, "--ttl", `"101y"`},
		{[]string{"run", "--key", "k", "--wait", "1", "--", "true"}, "--wait", `"1"`},
		{[]string{"run", "--key", "k", "--grace=soon", "--", "true"}, "--grace", `"soon"`},
		{[]string{"list", "--held=maybe"}, "--held", `"maybe"`},
	} {
		res := tool(t, tc.args...)
		line := strings.TrimSuffix(res.stderr, "\n")
		if res.code != exitUsage || strings.Contains(line, "\n") || !strings.Contains(line, tc.flag) ||
			!strings.Contains(line, tc.value) || !strings.Contains(line, "--help") || res.stdout != "" {
			t.Errorf("%v: exit %d, stderr %q", tc.args, res.code, res.stderr)
		}
	}
}

// TestFlagWithoutValue: --dsn with no value says so, before or after the command.
func TestFlagWithoutValue(t *testing.T) {
	for _, args := range [][]string{{"--dsn"}, {"--dsn", "list"}, {"--dsn", "--json", "list"}, {"list", "--dsn"},
		{"--table"}, {"inspect", "k", "--table"}} {
		res := tool(t, args...)
		if res.code != exitUsage || !strings.Contains(res.stderr, "needs a value") ||
			strings.Contains(res.stderr, "unknown command") || strings.Count(res.stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q", args, res.code, res.stderr)
		}
	}
}

// TestUsageShowsDefaults: a duration the tool's usage shows for a flag of run, as in [--ttl 1m], is that
// flag's real default.
func TestUsageShowsDefaults(t *testing.T) {
	usage := tool(t, "help").stdout
	runLine := ""
	for _, line := range strings.Split(usage, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "distrlock run ") {
			runLine = line
		}
	}
	if runLine == "" {
		t.Fatalf("no run line in the usage:\n%s", usage)
	}
	flags := tool(t, "run", "--help").stdout
	checked := 0
	for _, m := range regexp.MustCompile(`\[--(\w+) (\S+)\]`).FindAllStringSubmatch(runLine, -1) {
		shown, err := time.ParseDuration(m[2])
		if err != nil {
			continue // a placeholder such as D or NAME
		}
		checked++
		def := regexp.MustCompile(`(?m)^  -` + m[1] + ` .*\n.*\(default (\S+)\)$`).FindStringSubmatch(flags)
		if def == nil {
			t.Errorf("usage shows --%s %s but the flag has no default:\n%s", m[1], m[2], flags)
			continue
		}
		if real, err := time.ParseDuration(def[1]); err != nil || real != shown {
			t.Errorf("usage shows --%s %s, its default is %s", m[1], m[2], def[1])
		}
	}
	if checked == 0 {
		t.Errorf("no duration checked in %q", runLine)
	}
}

// jsonError checks that stderr is one JSON error object whose code is the exit code and whose kind is kind.
func jsonError(t *testing.T, what string, res result, code int, kind string) {
	t.Helper()
	var e errorJSON
	line := strings.TrimSuffix(res.stderr, "\n")
	if err := json.Unmarshal([]byte(line), &e); err != nil || strings.Contains(line, "\n") {
		t.Errorf("%s: stderr is not one JSON object (%v): %q", what, err, res.stderr)
		return
	}
	if res.code != code || e.Code != code || e.Kind != kind || e.Error == "" {
		t.Errorf("%s: exit %d, error %+v; want code %d, kind %q", what, res.code, e, code, kind)
	}
}

// TestJSONErrors: under --json, wherever it is given, every error is a JSON object on stderr.
func TestJSONErrors(t *testing.T) {
	missing := "sqlite://" + filepath.Join(t.TempDir(), "missing.db")
	for _, tc := range []struct {
		args []string
		code int
		kind string
	}{
		{[]string{"--json", "list", "--dsn", "bogus"}, exitUsage, "usage"},
		{[]string{"--json", "bogus"}, exitUsage, "usage"},
		{[]string{"--json", "--dsn"}, exitUsage, "usage"},
		{[]string{"run", "--json", "--key", "k", "--ttl", "101y", "--", "true"}, exitUsage, "usage"},
		{[]string{"list", "--json", "--dsn", "postgres://postgres@127.0.0.1:1/test"}, exitUnreachable, "unreachable"},
		{[]string{"inspect", "k", "--dsn", missing, "--json"}, exitConfig, "config"},
		{[]string{"--json", "release", "k", "--force"}, exitNotFound, "not_held"},
		{[]string{"--json", "run", "--key", "k", "--", "distrlock-no-such-command"}, 127, "command_not_found"},
	} {
		jsonError(t, strings.Join(tc.args, " "), tool(t, tc.args...), tc.code, tc.kind)
	}
	c := newCLI(t, backends(t)[0])
	holder := c.start("--key", "job", "--ttl", "10s")
	jsonError(t, "run on a held lock", c.run("run", "--key", "job", "--json", "--", "true"), exitHeld, "held")
	jsonError(t, "run with --wait on a held lock", c.run("run", "--key", "job", "--json", "--wait", "200ms", "--", "true"), exitWaitTimeout, "wait_timeout")
	_ = holder.cmd.Process.Signal(syscall.SIGTERM)
	holder.wait(t)
}

// TestRunJSON: run --json prints, after the command's own output, one line of JSON with the key, the fence,
// the command's exit status and the durations.
func TestRunJSON(t *testing.T) {
	res := tool(t, "--json", "run", "--key", "job", "--", "sh", "-c", "echo out; exit 3")
	lines := strings.Split(strings.TrimSuffix(res.stdout, "\n"), "\n")
	if res.code != 3 || len(lines) != 2 || lines[0] != "out" || res.stderr != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &out); err != nil {
		t.Fatalf("last line %q: %v", lines[1], err)
	}
	if out["key"] != "job" || out["fence"] != 1.0 || out["command_exit_code"] != 3.0 || out["exit_code"] != 3.0 ||
		out["lease_lost"] != false {
		t.Errorf("result %v", out)
	}
	for _, name := range []string{"waited_ms", "ran_ms"} {
		if _, ok := out[name].(float64); !ok {
			t.Errorf("%s is %#v, want a number", name, out[name])
		}
	}
}

// TestJSONDurations: every duration in JSON output is a whole number of milliseconds in a field named
// *_ms; no other field is a number but counts and codes, and no string is a duration.
func TestJSONDurations(t *testing.T) {
	c := newCLI(t, backends(t)[0])
	holder := c.start("--key", "job", "--ttl", "10s")
	var outputs []string
	for _, args := range [][]string{{"inspect", "job", "--json"}, {"list", "--json"}, {"release", "job", "--force", "--json"},
		{"run", "--key", "job", "--json", "--", "true"}} {
		res := c.run(args...)
		if res.code != 0 {
			t.Fatalf("%v: exit %d, stderr %q", args, res.code, res.stderr)
		}
		outputs = append(outputs, res.stdout)
	}
	holder.wait(t)
	numbers := map[string]bool{"fence": true, "code": true, "exit_code": true, "command_exit_code": true, "queued": true}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				walk(path+"."+k, x)
			}
		case []any:
			for _, x := range v {
				walk(path+"[]", x)
			}
		case float64:
			name := path[strings.LastIndex(path, ".")+1:]
			if strings.HasSuffix(name, "_ms") && v != float64(int64(v)) || !strings.HasSuffix(name, "_ms") && !numbers[name] {
				t.Errorf("%s = %v: durations are whole milliseconds in *_ms fields", path, v)
			}
		case string:
			if _, err := time.ParseDuration(v); err == nil {
				t.Errorf("%s = %q is a duration as a string", path, v)
			}
		}
	}
	seen := 0
	for _, out := range outputs {
		var v any
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("%q: %v", out, err)
		}
		seen += strings.Count(out, `_ms"`)
		walk("", v)
	}
	if seen < 7 { // ttl_ms and remaining_ms in inspect, list and release's overridden lock; run's waited_ms and ran_ms
		t.Errorf("only %d *_ms fields in %q", seen, outputs)
	}
}

// TestListShowsQueue: while a run waits with --wait for a lock another run holds, list and inspect show
// one waiter queued for the key, in text and in JSON; a free key shows none.
func TestListShowsQueue(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			c := newCLI(t, b)
			holder := c.start("--key", "job", "--ttl", "10s")
			waiter := c.command("run", "--key", "job", "--wait", "30s", "--", "true")
			if err := waiter.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = waiter.Process.Kill(); _, _ = waiter.Process.Wait() })
			var info struct {
				Queued int64 `json:"queued"`
			}
			for deadline := time.Now().Add(10 * time.Second); info.Queued == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				res := c.run("inspect", "job", "--json")
				if res.code != 0 {
					t.Fatalf("inspect: %d %s", res.code, res.stderr)
				}
				if err := json.Unmarshal([]byte(res.stdout), &info); err != nil {
					t.Fatal(err)
				}
			}
			if info.Queued != 1 {
				t.Fatalf("inspect --json: queued %d, want 1", info.Queued)
			}
			if res := c.run("inspect", "job"); !regexp.MustCompile(`(?m)^queued:\s+1 waiters$`).MatchString(res.stdout) {
				t.Errorf("inspect:\n%s\nwant a line queued: 1 waiters", res.stdout)
			}
			res := c.run("list")
			lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
			if len(lines) != 2 || !strings.HasSuffix(strings.Join(strings.Fields(lines[0]), " "), "REMAINING QUEUED") ||
				!strings.HasPrefix(lines[1], "job ") || !strings.HasSuffix(lines[1], " 1") {
				t.Errorf("list:\n%s\nwant a QUEUED column with 1 for job", res.stdout)
			}
			var list []struct {
				Key    string `json:"key"`
				Queued int64  `json:"queued"`
			}
			if err := json.Unmarshal([]byte(c.run("list", "--json").stdout), &list); err != nil || len(list) != 1 || list[0].Queued != 1 {
				t.Errorf("list --json: %+v, %v; want job with 1 queued", list, err)
			}
			_ = holder.cmd.Process.Signal(syscall.SIGTERM)
			holder.wait(t)
			if err := waiter.Wait(); err != nil {
				t.Fatalf("the waiting run: %v", err)
			}
			if res := c.run("inspect", "job", "--json"); json.Unmarshal([]byte(res.stdout), &info) != nil || info.Queued != 0 {
				t.Errorf("inspect after the hand-over: %s; want queued 0", res.stdout)
			}
		})
	}
}
