// Command fleet measures distrlock's waiting across worker processes, each with its own *sql.DB and
// DBManager, as a fleet of service instances would wait (issue 14). It re-executes its own binary as the
// workers (-worker as the first argument) and prints Markdown tables:
//
//   - contention: -workers processes loop on one key for -duration (wait, hold -hold, release), under
//     distrlock on PostgreSQL (pgx; with -notify also with a pgnotify listener per process) and MariaDB
//     (both DSNs) and under each database's own lock as the floor (pg_advisory_lock, GET_LOCK), in the
//     same run; on PostgreSQL also a durable floor (the advisory lock plus one durable UPDATE of a fence)
//     and, with -notify, a bound: distrlock with push in sessions whose commits do not wait for the disk;
//   - load: what one waiting process adds to the server while another process holds the lock with the
//     library's heartbeat: counters over -load-duration with the holder alone, then with a waiter doing
//     each of the -waiter-action list in turn (AcquireWait, an election standby).
//
// Run it as `cd bench && go run ./fleet`; DISTRLOCK_POSTGRES_DSN and DISTRLOCK_MYSQL_DSN name the databases.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/distrlock/distrlock"
	"github.com/distrlock/distrlock/pgnotify"
)

func main() {
	if isWorker(os.Args[1:]) {
		os.Exit(workerMain(os.Args[1:]))
	}
	os.Exit(parentMain(os.Args[1:], os.Stdout))
}

// config is a run's settings.
type config struct {
	pg, my       string // DSNs
	workers      int
	duration     time.Duration
	hold         time.Duration
	loadDuration time.Duration
	actions      []string // the waiting process's actions in the load part, each in an interval of its own
	notify       bool     // also run PostgreSQL's distrlock mode and load with a pgnotify listener
	run          string   // unique per run: names the tables and locks
	databases    []string // contention: the modes of these databases only
}

// contentionTTL is the lease of the contention workers: far longer than a turn, short enough that a
// killed worker's lease ends soon.
const contentionTTL = 10 * time.Second

// holderTTL is the lease of the load part's holder; its heartbeat extends it every half.
const holderTTL = 4 * time.Second

func parentMain(args []string, out io.Writer) int {
	fs := flag.NewFlagSet("fleet", flag.ContinueOnError)
	c := config{
		pg: envOr("DISTRLOCK_POSTGRES_DSN", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"),
		my: envOr("DISTRLOCK_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/test"),
	}
	fs.IntVar(&c.workers, "workers", 4, "contention: worker processes per mode")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "contention: how long each worker loops per mode")
	fs.DurationVar(&c.hold, "hold", 5*time.Millisecond, "contention: how long a worker holds the lock each turn")
	fs.DurationVar(&c.loadDuration, "load-duration", 10*time.Second, "load: length of each measured interval")
	actions := fs.String("waiter-action", "acquirewait,standby", "load: what the waiting process does, a comma-separated list run one after the other ("+waiterActionNames()+")")
	fs.BoolVar(&c.notify, "notify", true, "also run PostgreSQL's distrlock contention mode and load with a pgnotify listener in each worker process (false: without push only)")
	parts := fs.String("parts", "contention,load", "which parts to run")
	databases := fs.String("databases", "PostgreSQL,MariaDB", "contention: which databases' modes to run")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	c.actions = strings.Split(*actions, ",")
	c.databases = strings.Split(*databases, ",")
	for _, a := range c.actions {
		if _, ok := waiterActions[a]; !ok {
			fmt.Fprintf(os.Stderr, "fleet: unknown -waiter-action %q (have %s)\n", a, waiterActionNames())
			return 2
		}
	}
	if c.workers < 2 {
		fmt.Fprintln(os.Stderr, "fleet: -workers must be at least 2")
		return 2
	}
	if c.notify {
		if _, err := pgnotify.New(c.pg); err != nil {
			fmt.Fprintf(os.Stderr, "fleet: %v\n", err)
			return 2
		}
	}
	c.run = fmt.Sprintf("%x%x", time.Now().UnixMilli()&0xffffffff, os.Getpid()&0xffff)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	fmt.Fprintf(out, "# distrlock fleet benchmark\n\n%s, %d-CPU host, run %s: `-workers %d -duration %v -hold %v -load-duration %v -waiter-action %s -notify=%t`\n",
		time.Now().Format("2006-01-02"), runtime.NumCPU(), c.run, c.workers, c.duration, c.hold, c.loadDuration,
		strings.Join(c.actions, ","), c.notify)
	failed := false
	want := strings.Split(*parts, ",")
	if slices.Contains(want, "contention") {
		if err := contentionTable(ctx, out, c); err != nil {
			fmt.Fprintf(os.Stderr, "fleet: %v\n", err)
			failed = true
		}
	}
	if slices.Contains(want, "load") && ctx.Err() == nil {
		if err := loadTables(ctx, out, c); err != nil {
			fmt.Fprintf(os.Stderr, "fleet: %v\n", err)
			failed = true
		}
	}
	if failed || ctx.Err() != nil {
		return 1
	}
	return 0
}

// mode is one way the contention workers take the lock.
type mode struct {
	database, name string
	lock           string // the worker's -lock
	driver, dsn    string
	dialect        distrlock.Dialect // distrlock only
	notify         bool              // distrlock on PostgreSQL only: a pgnotify listener per worker
	// async, distrlock on PostgreSQL only: no commit of the workers waits for the disk. Not crash-safe:
	// the limit of a design whose durable write is made before the release and whose next holder still
	// acquires after the notice.
	async bool
}

func (m mode) floor() bool { return m.lock != "distrlock" }

// fenced reports whether the mode's lock hands out fences.
func (m mode) fenced() bool { return m.lock == "distrlock" || m.lock == "pg-advisory-fence" }

func modes(c config) []mode {
	ms := []mode{
		{"PostgreSQL", "floor: pg_advisory_lock on a *sql.Conn", "pg-advisory", "pgx", c.pg, "", false, false},
		{"PostgreSQL", "durable floor: pg_advisory_lock, then a fence by one durable UPDATE", "pg-advisory-fence", "pgx", c.pg, "", false, false},
		{"PostgreSQL", "distrlock AcquireWait (pgx)", "distrlock", "pgx", c.pg, distrlock.DialectPgx, false, false},
		{"PostgreSQL", "distrlock AcquireWait + pgnotify (pgx)", "distrlock", "pgx", c.pg, distrlock.DialectPgx, true, false},
		{"PostgreSQL", "bound, not crash-safe: AcquireWait + pgnotify, synchronous_commit=off", "distrlock", "pgx",
			withRuntimeParam(c.pg, "synchronous_commit", "off"), distrlock.DialectPgx, true, true},
		{"MariaDB", "floor: GET_LOCK on a *sql.Conn", "mariadb-getlock", "mysql", c.my, "", false, false},
		{"MariaDB", "distrlock AcquireWait (DialectMariaDB)", "distrlock", "mysql", c.my, distrlock.DialectMariaDB, false, false},
		{"MariaDB", "distrlock AcquireWait, interpolateParams=true", "distrlock", "mysql", addParam(c.my, "interpolateParams=true"), distrlock.DialectMariaDB, false, false},
	}
	return slices.DeleteFunc(ms, func(m mode) bool {
		return m.notify && !c.notify || !slices.Contains(c.databases, m.database)
	})
}

// contentionTable runs every mode and prints a row for each, with its ratios to its database's floor.
func contentionTable(ctx context.Context, out io.Writer, c config) error {
	fmt.Fprintf(out, "\n## Contention: %d processes, one key, hold %v, %v per mode\n\n", c.workers, c.hold, c.duration)
	fmt.Fprintln(out, "| database | mode | acquisitions (/s) | handed to another process | wait p50 | wait p99 | wait max | release→next holder p50 (release p50; after it p50) | p99 | overlaps | fence regressions | wait p99 / floor p99 | wait max / floor max |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	floors := map[string]contentionStats{}
	var commits []string // the durable floors' commit times, printed under the table
	var errs []error
	all := modes(c)
	for i, md := range all {
		if ctx.Err() != nil {
			break
		}
		s, err := runContention(ctx, c, md, i)
		if err != nil {
			fmt.Fprintf(out, "| %s | %s | error: %v |||||||||||\n", md.database, md.name, oneLine(err))
			errs = append(errs, fmt.Errorf("%s %s: %w", md.database, md.name, err))
			continue
		}
		if s.commitP50 > 0 {
			commits = append(commits, fmt.Sprintf("%s: %s", md.database, ms(s.commitP50)))
		}
		if md.floor() && !md.fenced() {
			// The ratios are to the server's lock; the durable floor is a row of its own to compare with.
			floors[md.database] = s
		}
		fences := "– (none)"
		if s.fenced {
			fences = fmt.Sprint(s.fenceRegressions)
		}
		ratios := "– | –"
		if f, ok := floors[md.database]; ok && f.waitP99 > 0 && f.waitMax > 0 {
			ratios = fmt.Sprintf("%.2f× | %.2f×", float64(s.waitP99)/float64(f.waitP99), float64(s.waitMax)/float64(f.waitMax))
		}
		share := 0.0
		if s.transitions > 0 {
			share = float64(s.handedOver) / float64(s.transitions)
		}
		fmt.Fprintf(out, "| %s | %s | %d (%.0f) | %.0f%% (%d) | %s | %s | %s | %s (%s; %s) | %s | %d | %s | %s |\n",
			md.database, md.name, s.acquisitions, s.perSec, 100*share, s.handedOver, ms(s.waitP50), ms(s.waitP99),
			ms(s.waitMax), ms(s.gapP50), ms(s.releaseP50), ms(s.afterP50), ms(s.gapP99), s.overlaps, fences, ratios)
	}
	if slices.ContainsFunc(all, func(m mode) bool { return m.async }) {
		fmt.Fprintln(out, "\nThe bound runs distrlock with push in sessions whose commits do not wait for the disk (synchronous_commit=off): no durable commit lies between the release and the next holder, as in a design that made its durable write before the release and whose next holder still acquires after the notice. It is not crash-safe; it is the limit of such designs in this run.")
	}
	if len(commits) > 0 {
		fmt.Fprintf(out, "\nThe durable floor's fence UPDATE alone, p50 (%s), is one durable commit after a hold: a hand-over that survives a crash makes at least one between the release and the next holder's work.\n", strings.Join(commits, ", "))
	}
	return errors.Join(errs...)
}

// runContention runs one mode: the workers, each a process of its own, then the analysis of their turns.
func runContention(ctx context.Context, c config, md mode, i int) (contentionStats, error) {
	a := workerArgs{role: "contend", lock: md.lock, driver: md.driver, dsn: md.dsn, dialect: string(md.dialect),
		duration: c.duration, hold: c.hold, ttl: contentionTTL}
	switch md.lock {
	case "distrlock":
		a.table, a.key = fmt.Sprintf("fleet_%s_%d", c.run, i), "contended"
		a.notify, a.async = md.notify, md.async
		drop, err := createTable(ctx, md.driver, md.dsn, md.dialect, a.table)
		if err != nil {
			return contentionStats{}, err
		}
		defer drop()
	case "pg-advisory", "pg-advisory-fence":
		h := fnv.New64a()
		h.Write([]byte(c.run))
		h.Write([]byte(md.lock))
		a.key = fmt.Sprint(int64(h.Sum64()))
		if md.lock == "pg-advisory-fence" {
			a.table = fmt.Sprintf("fleet_%s_%d", c.run, i)
			drop, err := createFenceTable(ctx, md.driver, md.dsn, a.table)
			if err != nil {
				return contentionStats{}, err
			}
			defer drop()
		}
	case "mariadb-getlock":
		a.key = "fleet_" + c.run
	}
	procs := make([]*proc, 0, c.workers)
	defer func() {
		for _, p := range procs {
			p.kill()
		}
	}()
	for id := range c.workers {
		a.id = id
		p, err := startWorker(ctx, a)
		if err != nil {
			return contentionStats{}, err
		}
		procs = append(procs, p)
	}
	for _, p := range procs {
		if err := ready(p); err != nil {
			return contentionStats{}, errors.Join(err, p.wait(time.Second))
		}
	}
	for _, p := range procs {
		if err := p.send("go"); err != nil {
			return contentionStats{}, err
		}
	}
	var acqs []acquisition
	var errs []error
	for id, p := range procs {
		// A wait under way at the end finishes; a minute is far more than the last turns take.
		if err := p.wait(c.duration + time.Minute); err != nil {
			errs = append(errs, fmt.Errorf("worker %d: %w", id, err))
		}
		acqs = append(acqs, p.acqs...)
	}
	if ctx.Err() != nil {
		return contentionStats{}, ctx.Err() // the workers were killed: their errors say nothing more
	}
	if err := errors.Join(errs...); err != nil {
		return contentionStats{}, err
	}
	return analyze(acqs, md.fenced()), nil
}

// ready waits for a worker's first message, which says it has connected and is ready.
func ready(p *proc) error {
	m, err := p.next(30 * time.Second)
	if err == nil && !m.Ready {
		err = fmt.Errorf("worker's first message was not ready: %+v", m)
	}
	return err
}

// createTable creates a distrlock table for one mode and returns what drops it.
func createTable(ctx context.Context, driver, dsn string, d distrlock.Dialect, table string) (drop func(), err error) {
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, err
	}
	m, err := distrlock.NewDBManager(d, distrlock.WithTableName(table))
	if err == nil {
		err = m.CreateTable(ctx, db)
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	return dropper(ctx, db, table, m.DropTableSQL()), nil
}

// dropper returns drop, which sends stmt to drop table on db, also after ctx has ended (an interrupt: the
// table must not outlive the run), and closes db.
func dropper(ctx context.Context, db *sql.DB, table, stmt string) (drop func()) {
	return func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := db.ExecContext(dctx, stmt); err != nil {
			fmt.Fprintf(os.Stderr, "fleet: drop %s: %v\n", table, err)
		}
		db.Close()
	}
}

// createFenceTable makes the durable floor's table of one fence, and returns drop, which drops it.
func createFenceTable(ctx context.Context, driver, dsn, table string) (drop func(), err error) {
	if !fenceTable.MatchString(table) {
		return nil, fmt.Errorf("fence table %q: want %s", table, fenceTable)
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, err
	}
	drop = dropper(ctx, db, table, `DROP TABLE IF EXISTS "`+table+`"`)
	if _, err := db.ExecContext(ctx, `CREATE TABLE "`+table+`" (k int PRIMARY KEY, fence bigint NOT NULL)`); err != nil {
		db.Close()
		return nil, err
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO "`+table+`" VALUES (1, 0)`); err != nil {
		drop()
		return nil, err
	}
	return drop, nil
}

// fenceTable is the form of the durable floor's table name, which is quoted but never escaped.
var fenceTable = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// withRuntimeParam returns a pgx DSN, a URL or keyword/value string, that also sets the session
// parameter name to value (a word each).
func withRuntimeParam(dsn, name, value string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return addParam(dsn, name+"="+value)
	}
	return dsn + " " + name + "=" + value
}

func addParam(dsn, p string) string {
	if strings.Contains(dsn, "?") {
		return dsn + "&" + p
	}
	return dsn + "?" + p
}
