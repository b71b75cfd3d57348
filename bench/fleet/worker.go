package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distrlock/distrlock"
	"github.com/distrlock/distrlock/internal/stmtcount"
	"github.com/distrlock/distrlock/pgnotify"
)

// The worker side of the fleet. A worker is this binary run with -worker as its first argument; it talks to
// its parent over stdin (one command a line: "go", "count") and stdout (one JSON message a line), and exits
// when its stdin ends, so that a parent that dies takes its workers with it.

// message is one line a worker writes to its stdout.
type message struct {
	Ready  bool              `json:"ready,omitempty"`
	Fence  int64             `json:"fence,omitempty"` // the holder's fence, with Ready
	Acq    *acquisition      `json:"acq,omitempty"`
	Counts *stmtcount.Counts `json:"counts,omitempty"` // the answer to "go" and "count" of a waiter
	// Extends is the holder's answer to "count": how many times its lease was extended so far.
	Extends *int64 `json:"extends,omitempty"`
	// Session is the waiter's own MariaDB session counters, with Counts (MariaDB has no per-session
	// counters that another session could read without performance_schema).
	Session map[string]int64 `json:"session,omitempty"`
}

// acquisition is one turn of a contention worker with the lock. Times are wall-clock UnixNano on the one
// host all processes share. The lock is surely held from Acquired (taken after the acquire returned) to
// ReleaseStart (taken before the release was sent).
type acquisition struct {
	Worker       int   `json:"w"`
	WaitStart    int64 `json:"ws"`
	Acquired     int64 `json:"we"`
	ReleaseStart int64 `json:"rs"`
	Released     int64 `json:"re"`
	Fence        int64 `json:"f,omitempty"`
	// Commit is how long the durable floor's fence UPDATE took, in nanoseconds: one durable commit.
	Commit int64 `json:"c,omitempty"`
}

// workerArgs is what a parent tells a worker on its command line.
type workerArgs struct {
	role     string // contend, hold or wait
	lock     string // contend: distrlock, pg-advisory, pg-advisory-fence or mariadb-getlock
	action   string // wait: a name in waiterActions
	driver   string // pgx or mysql
	dsn      string
	dialect  string
	table    string // the distrlock table
	key      string // the lock's key (or GET_LOCK name, or the advisory lock's number)
	id       int
	duration time.Duration
	hold     time.Duration
	ttl      time.Duration
	notify   bool
	async    bool // distrlock: the session's commits must not wait for the disk (the bound)
}

func (a workerArgs) list() []string {
	return []string{"-worker", "-role", a.role, "-lock", a.lock, "-action", a.action, "-driver", a.driver,
		"-dsn", a.dsn, "-dialect", a.dialect, "-table", a.table, "-key", a.key, "-id", fmt.Sprint(a.id),
		"-duration", a.duration.String(), "-hold", a.hold.String(), "-ttl", a.ttl.String(),
		fmt.Sprintf("-notify=%t", a.notify), fmt.Sprintf("-async=%t", a.async)}
}

// isWorker reports whether the program was started as a worker.
func isWorker(args []string) bool { return len(args) > 0 && args[0] == "-worker" }

// workerMain runs a worker with its arguments (after -worker) and returns its exit code.
func workerMain(args []string) int {
	var a workerArgs
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.StringVar(&a.role, "role", "", "contend, hold or wait")
	fs.StringVar(&a.lock, "lock", "", "contend: distrlock, pg-advisory, pg-advisory-fence or mariadb-getlock")
	fs.StringVar(&a.action, "action", "", "wait: what the waiting process does (acquirewait or standby)")
	fs.StringVar(&a.driver, "driver", "", "database/sql driver")
	fs.StringVar(&a.dsn, "dsn", "", "data source name")
	fs.StringVar(&a.dialect, "dialect", "", "distrlock dialect")
	fs.StringVar(&a.table, "table", "", "distrlock table")
	fs.StringVar(&a.key, "key", "", "lock key")
	fs.IntVar(&a.id, "id", 0, "worker id")
	fs.DurationVar(&a.duration, "duration", 0, "contend: how long to loop")
	fs.DurationVar(&a.hold, "hold", 0, "contend: how long to hold the lock each time")
	fs.DurationVar(&a.ttl, "ttl", 0, "distrlock lease")
	fs.BoolVar(&a.notify, "notify", false, "PostgreSQL: a pgnotify listener of this process wakes its waits, and its releases publish")
	fs.BoolVar(&a.async, "async", false, "distrlock on PostgreSQL: check that the DSN turned synchronous_commit off")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &worker{args: a, out: bufio.NewWriter(os.Stdout), cmds: make(chan string, 4)}
	go w.readCommands(os.Stdin, cancel)
	err := w.run(ctx)
	if ferr := w.out.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "fleet worker %d (%s %s%s): %v\n", a.id, a.role, a.lock, a.action, err)
		return 1
	}
	return 0
}

type worker struct {
	args    workerArgs
	mu      sync.Mutex
	out     *bufio.Writer
	cmds    chan string
	extends atomic.Int64 // successful extends of the worker's leases (the holder's)
}

// extendCounter is an Observer that counts successful extends.
type extendCounter struct{ n *atomic.Int64 }

func (c extendCounter) ObserveLock(_ context.Context, e distrlock.Event) {
	if e.Kind == distrlock.EventExtend && e.Err == nil {
		c.n.Add(1)
	}
}

// readCommands passes stdin's lines to w.cmds and cancels the worker's context when stdin ends.
func (w *worker) readCommands(r io.Reader, cancel context.CancelFunc) {
	s := bufio.NewScanner(r)
	for s.Scan() {
		w.cmds <- strings.TrimSpace(s.Text())
	}
	close(w.cmds)
	cancel()
}

// command waits for the parent's next command; "" means stdin ended.
func (w *worker) command(ctx context.Context) string {
	select {
	case c, ok := <-w.cmds:
		if ok {
			return c
		}
	case <-ctx.Done():
	}
	return ""
}

// send writes m; control messages are flushed at once, acquisitions when the buffer fills or at the end.
func (w *worker) send(m message) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if _, err := w.out.Write(append(b, '\n')); err != nil {
		return err
	}
	if m.Acq == nil {
		return w.out.Flush()
	}
	return nil
}

func (w *worker) run(ctx context.Context) error {
	var c stmtcount.Counter
	db, err := stmtcount.Open(w.args.driver, w.args.dsn, &c)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return err
	}
	switch w.args.role {
	case "contend":
		return w.contend(ctx, db)
	case "hold":
		return w.holdLock(ctx, db)
	case "wait":
		return w.wait(ctx, db, &c)
	}
	return fmt.Errorf("unknown role %q", w.args.role)
}

// manager is the worker's own DBManager on the parent's table.
func (w *worker) manager(ctx context.Context) (*distrlock.DBManager, func(), error) {
	opts := []distrlock.DBManagerOption{distrlock.WithTableName(w.args.table)}
	stop := func() {}
	if w.args.notify {
		opt, stopNotifier, err := notifierOption(ctx, w.args.dsn)
		if err != nil {
			return nil, nil, err
		}
		opts, stop = append(opts, opt), stopNotifier
	}
	opts = append(opts, distrlock.WithObserver(extendCounter{&w.extends}))
	m, err := distrlock.NewDBManager(distrlock.Dialect(w.args.dialect), opts...)
	if err != nil {
		stop()
		return nil, nil, err
	}
	return m, stop, nil
}

// listenTimeout bounds how long a worker waits for its listener's first LISTEN before it reports ready,
// so that no measured wait falls back to polling because the listener was still connecting.
const listenTimeout = 10 * time.Second

// notifierOption returns WithNotifier on a pgnotify listener for dsn, once the listener is listening, and
// stop, which ends the listener's Run goroutine and waits for it.
func notifierOption(ctx context.Context, dsn string) (opt distrlock.DBManagerOption, stop func(), err error) {
	l, err := pgnotify.New(dsn)
	if err != nil {
		return nil, nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- l.Run(runCtx) }()
	stop = func() {
		cancel()
		<-done
	}
	deadline := time.Now().Add(listenTimeout)
	for !l.Listening() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return nil, nil, errors.Join(fmt.Errorf("pgnotify: not listening after %v", listenTimeout), ctx.Err())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return distrlock.WithNotifier(l), stop, nil
}

// contendLock is one way to wait for the lock, take it and release it.
type contendLock struct {
	// acquire returns the fence, if the lock has one, and how long its durable commit took, if it is
	// the durable floor.
	acquire func(ctx context.Context) (fence int64, commit time.Duration, err error)
	release func(ctx context.Context) error
	close   func()
}

func (w *worker) contendLock(ctx context.Context, db *sql.DB) (*contendLock, error) {
	switch w.args.lock {
	case "distrlock":
		if w.args.async {
			if err := asynchronous(ctx, db); err != nil {
				return nil, err
			}
		}
		m, stop, err := w.manager(ctx)
		if err != nil {
			return nil, err
		}
		var lock distrlock.DBLock
		return &contendLock{
			acquire: func(ctx context.Context) (int64, time.Duration, error) {
				if lock, err = m.NewLock(ctx, db, w.args.key); err != nil {
					return 0, 0, err
				}
				err := lock.AcquireWait(ctx, db, w.args.ttl, distrlock.WaitForever)
				return lock.Fence(), 0, err
			},
			release: func(ctx context.Context) error { return lock.Release(ctx, db) },
			close:   stop,
		}, nil
	case "pg-advisory", "pg-advisory-fence":
		// A session lock: every call on the one connection that holds it. The durable floor also
		// takes a fence, as distrlock does: one UPDATE whose commit reaches the disk before the holder
		// may act.
		conn, err := db.Conn(ctx)
		if err != nil {
			return nil, err
		}
		if w.args.lock == "pg-advisory-fence" {
			if err := durable(ctx, conn, w.args.table); err != nil {
				conn.Close()
				return nil, err
			}
		}
		return &contendLock{
			acquire: func(ctx context.Context) (int64, time.Duration, error) {
				if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1::bigint)", w.args.key); err != nil || w.args.lock == "pg-advisory" {
					return 0, 0, err
				}
				var fence int64
				start := time.Now()
				err := conn.QueryRowContext(ctx, `UPDATE "`+w.args.table+`" SET fence = fence + 1 WHERE k = 1 RETURNING fence`).Scan(&fence)
				return fence, time.Since(start), err
			},
			release: func(ctx context.Context) error {
				var ok bool
				if err := conn.QueryRowContext(ctx, "SELECT pg_advisory_unlock($1::bigint)", w.args.key).Scan(&ok); err != nil {
					return err
				}
				if !ok {
					return errors.New("pg_advisory_unlock: the lock was not held")
				}
				return nil
			},
			close: func() { conn.Close() },
		}, nil
	case "mariadb-getlock":
		conn, err := db.Conn(ctx)
		if err != nil {
			return nil, err
		}
		return &contendLock{
			acquire: func(ctx context.Context) (int64, time.Duration, error) {
				for {
					// 1 when taken, 0 when the timeout ran out; an error or NULL otherwise.
					var got sql.NullInt64
					if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 60)", w.args.key).Scan(&got); err != nil {
						return 0, 0, err
					}
					if got.Valid && got.Int64 == 1 {
						return 0, 0, nil
					}
					if !got.Valid {
						return 0, 0, errors.New("GET_LOCK returned NULL")
					}
				}
			},
			release: func(ctx context.Context) error {
				var ok sql.NullInt64
				if err := conn.QueryRowContext(ctx, "SELECT RELEASE_LOCK(?)", w.args.key).Scan(&ok); err != nil {
					return err
				}
				if ok.Int64 != 1 {
					return fmt.Errorf("RELEASE_LOCK returned %v", ok)
				}
				return nil
			},
			close: func() { conn.Close() },
		}, nil
	}
	return nil, fmt.Errorf("unknown lock %q", w.args.lock)
}

// durable checks that the durable floor's commits wait for the disk: the server's fsync and this session's
// synchronous_commit are on, and the table's name is one the parent made.
func durable(ctx context.Context, conn *sql.Conn, table string) error {
	if !fenceTable.MatchString(table) {
		return fmt.Errorf("fence table %q: want %s", table, fenceTable)
	}
	var fsync, syncCommit string
	err := conn.QueryRowContext(ctx, "SELECT current_setting('fsync'), current_setting('synchronous_commit')").Scan(&fsync, &syncCommit)
	if err != nil {
		return err
	}
	if fsync != "on" || syncCommit != "on" && syncCommit != "remote_write" && syncCommit != "remote_apply" && syncCommit != "local" {
		return fmt.Errorf("durable floor: fsync is %s and synchronous_commit %s: its commits would not wait for the disk", fsync, syncCommit)
	}
	return nil
}

// asynchronous checks that the bound's sessions commit without waiting for the disk.
func asynchronous(ctx context.Context, db *sql.DB) error {
	var syncCommit string
	if err := db.QueryRowContext(ctx, "SELECT current_setting('synchronous_commit')").Scan(&syncCommit); err != nil {
		return err
	}
	if syncCommit != "off" {
		return fmt.Errorf("bound: synchronous_commit is %s: its commits would wait for the disk", syncCommit)
	}
	return nil
}

// contend loops for the duration after the parent's "go": wait for the lock, hold it, release it. A wait
// that is under way at the end finishes, so that no wait is cut short and left out of the figures.
func (w *worker) contend(ctx context.Context, db *sql.DB) error {
	lk, err := w.contendLock(ctx, db)
	if err != nil {
		return err
	}
	defer lk.close()
	if err := w.send(message{Ready: true}); err != nil {
		return err
	}
	if c := w.command(ctx); c != "go" {
		return fmt.Errorf("expected go, got %q", c)
	}
	end := time.Now().Add(w.args.duration)
	for time.Now().Before(end) {
		a := acquisition{Worker: w.args.id, WaitStart: time.Now().UnixNano()}
		fence, commit, err := lk.acquire(ctx)
		if err != nil {
			return fmt.Errorf("acquire: %w", err)
		}
		a.Acquired, a.Fence, a.Commit = time.Now().UnixNano(), fence, int64(commit)
		time.Sleep(w.args.hold)
		a.ReleaseStart = time.Now().UnixNano()
		if err := lk.release(context.WithoutCancel(ctx)); err != nil {
			return fmt.Errorf("release: %w", err)
		}
		a.Released = time.Now().UnixNano()
		if err := w.send(message{Acq: &a}); err != nil {
			return err
		}
	}
	return nil
}

// holdLock holds the key with the library's heartbeat until stdin ends.
func (w *worker) holdLock(ctx context.Context, db *sql.DB) error {
	m, stop, err := w.manager(ctx)
	if err != nil {
		return err
	}
	defer stop()
	lease, err := m.Hold(ctx, db, w.args.key, distrlock.WithLockTTL(w.args.ttl))
	if err != nil {
		return err
	}
	if err := w.send(message{Ready: true, Fence: lease.Fence()}); err != nil {
		_ = lease.Release(ctx)
		return err
	}
	for cmd := w.command(ctx); cmd != ""; cmd = w.command(ctx) {
		if cmd == "count" {
			n := w.extends.Load()
			if err := w.send(message{Extends: &n}); err != nil {
				_ = lease.Release(ctx)
				return err
			}
		}
	}
	return lease.Release(context.Background())
}

// waitEnv is what a waiter action works with: the waiting process's own database and manager.
type waitEnv struct {
	db  *sql.DB
	m   *distrlock.DBManager
	key string
	ttl time.Duration
}

// waiterActions are the ways a process can wait for a held lock, chosen with -waiter-action. Each runs
// until ctx ends (the parent's measurement is over) and returns an error only for a failure; taking the
// lock is one, since the holder keeps it throughout.
var waiterActions = map[string]func(ctx context.Context, e waitEnv) error{
	// acquirewait: one AcquireWait with a wait longer than the measurement.
	"acquirewait": func(ctx context.Context, e waitEnv) error {
		lock, err := e.m.NewLock(ctx, e.db, e.key)
		if err != nil {
			return err
		}
		err = lock.AcquireWait(ctx, e.db, e.ttl, time.Hour)
		switch {
		case err == nil:
			_ = lock.Release(context.Background(), e.db)
			return errors.New("acquirewait: took the lock the holder holds")
		case ctx.Err() != nil && errors.Is(err, distrlock.ErrLockAlreadyAcquired):
			return nil
		}
		return err
	},
	// standby: an election candidate on the held key, campaigning while the holder leads; the election's
	// name is the key, so a Hold on it and a leader's term are the same lock in the manager's table.
	"standby": func(ctx context.Context, e waitEnv) error {
		el, err := e.m.NewElection(e.db, e.key, distrlock.WithElectionTTL(e.ttl),
			distrlock.WithElectionPollInterval(distrlock.DefaultElectionPollInterval))
		if err != nil {
			return err
		}
		err = el.Campaign(ctx, "standby")
		switch {
		case err == nil:
			_ = el.Resign(context.Background())
			return errors.New("standby: became leader while the holder holds the key")
		case ctx.Err() != nil && errors.Is(err, distrlock.ErrLockAlreadyAcquired):
			return nil
		}
		return err
	},
}

// waiterActionNames lists waiterActions for a flag's help.
func waiterActionNames() string {
	var names []string
	for n := range waiterActions {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// wait runs the waiter action from the parent's "go" until stdin ends, answering "go" and every "count"
// with the statements its database has been sent so far.
func (w *worker) wait(ctx context.Context, db *sql.DB, c *stmtcount.Counter) error {
	action, ok := waiterActions[w.args.action]
	if !ok {
		return fmt.Errorf("unknown waiter action %q (have %s)", w.args.action, waiterActionNames())
	}
	m, stop, err := w.manager(ctx)
	if err != nil {
		return err
	}
	defer stop()
	// One connection, so that the session whose counters the waiter reports is the one it waits on.
	db.SetMaxOpenConns(1)
	if err := w.send(message{Ready: true}); err != nil {
		return err
	}
	if cmd := w.command(ctx); cmd != "go" {
		return fmt.Errorf("expected go, got %q", cmd)
	}
	var shows int64 // the SHOWs below, which are not the waiter's work
	report := func() error {
		var m message
		if w.args.driver == "mysql" {
			var err error
			if m.Session, err = sessionStatus(ctx, db); err != nil {
				return err
			}
			shows++
		}
		counts := c.Counts()
		counts.Statements -= shows
		m.Counts = &counts
		return w.send(m)
	}
	if err := report(); err != nil {
		return err
	}
	actx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- action(actx, waitEnv{db: db, m: m, key: w.args.key, ttl: w.args.ttl}) }()
	for {
		select {
		case err := <-done:
			cancel()
			if err == nil && ctx.Err() == nil {
				err = errors.New("the waiter action returned before the parent stopped it")
			}
			return err
		case cmd, ok := <-w.cmds:
			if !ok {
				cancel()
				return <-done
			}
			if cmd == "count" {
				if err := report(); err != nil {
					cancel()
					<-done
					return err
				}
			}
		}
	}
}

// sessionCounters are the MariaDB session counters a waiter reports.
var sessionCounters = []string{"Handler_update", "Handler_write", "Handler_commit"}

// sessionStatus reads sessionCounters of db's one session. SHOW SESSION STATUS filtered so moves none of them.
func sessionStatus(ctx context.Context, db *sql.DB) (map[string]int64, error) {
	rows, err := db.QueryContext(ctx, "SHOW SESSION STATUS WHERE Variable_name IN ('"+strings.Join(sessionCounters, "', '")+"')")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	vals := map[string]int64{}
	for rows.Next() {
		var name string
		var v int64
		if err := rows.Scan(&name, &v); err != nil {
			return nil, err
		}
		vals[name] = v
	}
	return vals, rows.Err()
}
