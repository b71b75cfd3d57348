package torture

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/distrlock/distrlock"
	"github.com/distrlock/distrlock/internal/faultproxy"
)

// Fault kinds.
const (
	FaultBlackhole = "blackhole"  // the proxy passes nothing for longer than a lease, then resets
	FaultReset     = "reset"      // the proxy resets every connection
	FaultDelay     = "delay"      // the proxy delays every chunk by 150 ms for two seconds
	FaultKill      = "kill9"      // a worker process gets SIGKILL and is replaced
	FaultTerminate = "terminate"  // the server ends the workers' sessions (pg_terminate_backend, KILL)
	FaultRestart   = "restart-db" // the database server restarts (Config.RestartCmd)
)

// Config describes a run.
type Config struct {
	Dialect    Dialect
	DSN        string   // direct, in the driver's format; the witness and the checker use it
	Binary     string   // the torture command, whose "worker" subcommand runs a worker
	Workers    int      // worker processes
	Modes      []string // worker i runs Modes[i % len(Modes)]
	Keys       int
	Holders    int // goroutines taking locks in each worker process
	Duration   time.Duration
	TTL        time.Duration
	Margin     time.Duration
	Faults     []string      // kinds injected in turn
	FaultEvery time.Duration // pause between faults
	RestartCmd string        // for FaultRestart: a shell command that restarts the database
	// PruneEvery, when set, runs DBManager.Prune with freeFor 0 (every free row with no live waiter goes)
	// in batches of 2 that often during the run, on a direct connection: pruned keys are acquired again
	// at once, so the fence floor is under test.
	PruneEvery time.Duration
	// PruneWithoutFloor makes the pruner delete released rows itself, without raising the fence floor, as
	// deleting them by hand would: it proves that the checker sees the fences going back.
	PruneWithoutFloor bool
	Log               io.Writer
	// Nodes are the DSNs of the other nodes of a MariaDB Galera cluster whose first node is DSN: worker i
	// takes its locks through node i % (1 + len(Nodes)), each node behind a fault proxy of its own, with
	// managers made WithGalera. The witness and the checker stay on DSN.
	Nodes []string
	// Notify (PostgreSQL): every other worker process waits and publishes through a pgnotify Listener
	// that reaches the server through the process's fault proxy; its ID ends in PushSuffix.
	Notify bool
}

// PushSuffix ends the ID of a worker process with a pgnotify Listener (Config.Notify).
const PushSuffix = "n"

type worker struct {
	id   string
	cmd  *exec.Cmd
	done chan struct{}
}

// Run runs workers for c.Duration while injecting faults, then checks the witness.
func Run(ctx context.Context, c Config) (Report, error) {
	r := Report{Faults: map[string]int{}}
	run := randomName()
	db, err := sql.Open(c.Dialect.Driver, c.DSN)
	if err != nil {
		return r, err
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return r, fmt.Errorf("database unreachable: %w", err)
	}
	keys := make([]string, c.Keys)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%d", i)
	}
	// The election's and the periodic job's keys are the witness's and the stranded check's too.
	allKeys := append(append([]string(nil), keys...), ElectionKey, PeriodKey)
	w := NewWitness(c.Dialect, run)
	if err := w.Create(ctx, db, allKeys); err != nil {
		return r, err
	}
	defer w.Drop(context.WithoutCancel(ctx), db)
	table := LockTable(run)
	galera := len(c.Nodes) > 0
	m, err := newManager(c.Dialect, table, galera, nil)
	if err != nil {
		return r, err
	}
	if err := m.CreateTable(ctx, db); err != nil {
		return r, err
	}
	defer func() { _, _ = db.ExecContext(context.WithoutCancel(ctx), m.DropTableSQL()) }()

	// One fault proxy per node, each before the lock connections of its workers.
	nodes := []*sql.DB{db}
	for _, dsn := range c.Nodes {
		ndb, err := sql.Open(c.Dialect.Driver, dsn)
		if err != nil {
			return r, err
		}
		defer ndb.Close()
		nodes = append(nodes, ndb)
	}
	var proxies []*faultproxy.Proxy
	var lockBases []string
	for _, dsn := range append([]string{c.DSN}, c.Nodes...) {
		target, err := dsnAddr(c.Dialect, dsn)
		if err != nil {
			return r, err
		}
		proxy, err := faultproxy.Start(target)
		if err != nil {
			return r, err
		}
		defer proxy.Close()
		proxies = append(proxies, proxy)
		lockBases = append(lockBases, withAddr(c.Dialect, dsn, proxy.Addr()))
	}
	appName := "distrlock-torture-" + run
	if c.Dialect.Name == MySQL.Name {
		// MariaDB shows no connection attributes without performance_schema: the workers get a user of
		// their own, by which the terminate fault finds their sessions (on a Galera cluster the user is
		// replicated to every node).
		user := "dt_" + run
		for i := range lockBases {
			if lockBases[i], err = mysqlUser(ctx, db, lockBases[i], user); err != nil {
				return r, err
			}
		}
		defer func() {
			_, _ = db.ExecContext(context.WithoutCancel(ctx), "DROP USER IF EXISTS '"+user+"'@'127.0.0.1'")
		}()
		appName = user
	}

	until := time.Now().Add(c.Duration)
	var mu sync.Mutex
	workers := map[int]*worker{}
	start := func(i, gen int) {
		id := fmt.Sprintf("w%d.%d", i, gen)
		push := c.Notify && i%2 == 1
		if push {
			id += PushSuffix
		}
		mode := c.Modes[i%len(c.Modes)]
		lockDSN := sessionDSN(c.Dialect, lockBases[i%len(lockBases)], i, appName)
		cmd := exec.Command(c.Binary, "worker", "-id", id, "-dialect", c.Dialect.Name, "-galera="+fmt.Sprint(galera), "-lock-dsn", lockDSN,
			"-witness-dsn", witnessDSN(c.Dialect, c.DSN), "-table", table, "-run", run, "-keys", fmt.Sprint(c.Keys),
			"-until", until.Format(time.RFC3339Nano), "-mode", mode, "-ttl", c.TTL.String(), "-margin", c.Margin.String(),
			"-holders", fmt.Sprint(c.Holders), "-notify="+fmt.Sprint(push))
		cmd.Stdout, cmd.Stderr = c.Log, c.Log
		if err := cmd.Start(); err != nil {
			fmt.Fprintf(c.Log, "start %s: %v\n", id, err)
			return
		}
		wk := &worker{id: id, cmd: cmd, done: make(chan struct{})}
		go func() { _ = cmd.Wait(); close(wk.done) }()
		mu.Lock()
		workers[i] = wk
		mu.Unlock()
	}
	for i := range c.Workers {
		start(i, 0)
	}
	// The pruner stops with the workers, and before Run returns.
	pruneCtx, stopPruning := context.WithCancel(ctx)
	pruneDone := make(chan struct{})
	defer func() { stopPruning(); <-pruneDone }()
	go func() {
		defer close(pruneDone)
		for c.PruneEvery > 0 && pruneCtx.Err() == nil && time.Now().Before(until) {
			var n int64
			var err error
			if c.PruneWithoutFloor {
				var res sql.Result
				res, err = db.ExecContext(pruneCtx, "DELETE FROM "+table+" WHERE expire_at IS NULL AND lock_key <> ''")
				if err == nil {
					n, err = res.RowsAffected()
				}
			} else {
				n, err = m.Prune(pruneCtx, db, 0, distrlock.WithPruneBatchSize(2))
			}
			r.Pruned += n
			if err != nil && pruneCtx.Err() == nil {
				fmt.Fprintf(c.Log, "prune: %v\n", err)
			}
			sleep(pruneCtx, c.PruneEvery)
		}
	}()

	// Faults, one kind after the other, until the end.
	gens := map[int]int{}
	kills := 0
	for n := 0; time.Now().Add(c.FaultEvery).Before(until) && len(c.Faults) > 0; n++ {
		sleep(ctx, c.FaultEvery)
		if ctx.Err() != nil {
			break
		}
		kind := c.Faults[n%len(c.Faults)]
		switch kind {
		case FaultBlackhole:
			eachProxy(proxies, func(p *faultproxy.Proxy) { p.SetMode(faultproxy.Blackhole) })
			sleep(ctx, c.TTL+c.TTL/2)
			eachProxy(proxies, func(p *faultproxy.Proxy) { p.SetMode(faultproxy.Forward); p.ResetAll() })
		case FaultReset:
			eachProxy(proxies, (*faultproxy.Proxy).ResetAll)
		case FaultDelay:
			eachProxy(proxies, func(p *faultproxy.Proxy) { p.SetDelay(150 * time.Millisecond) })
			sleep(ctx, 2*time.Second)
			eachProxy(proxies, func(p *faultproxy.Proxy) { p.SetDelay(0) })
		case FaultKill:
			// From the last worker backwards, so that the first kills of a short run hit the workers of
			// the last modes (in DefaultConfig the periodic job and the election).
			i := c.Workers - 1 - kills%c.Workers
			kills++
			mu.Lock()
			wk := workers[i]
			mu.Unlock()
			if wk != nil {
				_ = wk.cmd.Process.Kill()
				<-wk.done
				gens[i]++
				start(i, gens[i])
			}
		case FaultTerminate:
			for _, ndb := range nodes { // a session lives on the node it reached
				n, err := terminateSessions(ctx, c.Dialect, ndb, appName)
				if err != nil {
					fmt.Fprintf(c.Log, "terminate sessions: %v\n", err)
					continue
				}
				r.Faults["sessions-terminated"] += n
			}
		case FaultRestart:
			if c.RestartCmd == "" {
				continue
			}
			if out, err := exec.CommandContext(ctx, "sh", "-c", c.RestartCmd).CombinedOutput(); err != nil {
				fmt.Fprintf(c.Log, "restart: %v: %s\n", err, out)
				continue
			}
		default:
			return r, fmt.Errorf("unknown fault %q", kind)
		}
		r.Faults[kind]++
	}

	// The workers stop at until; give them a lease and a release to finish, then stop them.
	mu.Lock()
	all := make([]*worker, 0, len(workers))
	for _, wk := range workers {
		all = append(all, wk)
	}
	mu.Unlock()
	grace := time.After(time.Until(until) + 3*c.TTL)
	for _, wk := range all {
		select {
		case <-wk.done:
		case <-grace:
			_ = wk.cmd.Process.Kill()
			<-wk.done
		}
	}

	stopPruning()
	<-pruneDone

	// Stranded: once every lease has ended, every key can be taken.
	sleep(ctx, max(c.TTL, ElectionTTL(c.TTL))+c.TTL/4)
	for _, k := range allKeys {
		l, err := m.NewLock(ctx, db, k)
		if err != nil {
			return r, err
		}
		if err := l.Acquire(ctx, db, time.Second); errors.Is(err, distrlock.ErrLockAlreadyAcquired) {
			r.Stranded++
			r.example("stranded: key %s cannot be taken after every lease ended", k)
		} else if err != nil {
			return r, err
		}
	}
	r.sharedAfter = ((c.TTL - c.Margin) / 3).Microseconds() // the workers' extend interval
	r.period = c.TTL.Microseconds()                         // the periodic job's WithLockAtLeastFor
	return r, w.Check(ctx, db, &r)
}

// newManager is the manager of the run and of its workers; on a Galera cluster made WithGalera.
func newManager(d Dialect, table string, galera bool, notifier distrlock.Notifier) (*distrlock.DBManager, error) {
	if d.Name == MySQL.Name {
		if galera {
			return distrlock.NewDBManager(distrlock.DialectMariaDB, distrlock.WithTableName(table), distrlock.WithGalera())
		}
		return distrlock.NewDBManager(distrlock.DialectMariaDB, distrlock.WithTableName(table))
	}
	if notifier != nil {
		return distrlock.NewDBManager(distrlock.DialectPgx, distrlock.WithTableName(table), distrlock.WithNotifier(notifier))
	}
	return distrlock.NewDBManager(distrlock.DialectPgx, distrlock.WithTableName(table))
}

func eachProxy(proxies []*faultproxy.Proxy, fn func(*faultproxy.Proxy)) {
	for _, p := range proxies {
		fn(p)
	}
}

func randomName() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var mysqlAddr = regexp.MustCompile(`@tcp\(([^)]*)\)`)

// dsnAddr returns the host:port of a DSN.
func dsnAddr(d Dialect, dsn string) (string, error) {
	if d.Name == MySQL.Name {
		m := mysqlAddr.FindStringSubmatch(dsn)
		if m == nil {
			return "", fmt.Errorf("no tcp(host:port) in %q", dsn)
		}
		return m[1], nil
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", err
	}
	return u.Host, nil
}

// withAddr points a DSN at addr.
func withAddr(d Dialect, dsn, addr string) string {
	if d.Name == MySQL.Name {
		return mysqlAddr.ReplaceAllString(dsn, "@tcp("+addr+")")
	}
	u, _ := url.Parse(dsn)
	u.Host = addr
	return u.String()
}

// zones are the session time zones the workers use in turn: a lease must not depend on them.
var zones = []struct{ postgres, mysql string }{{"UTC", "+00:00"}, {"Asia/Tokyo", "+09:00"}, {"America/Los_Angeles", "-08:00"}}

// sessionDSN gives worker i's lock connections a session time zone and a name the server can find them by.
func sessionDSN(d Dialect, dsn string, i int, appName string) string {
	z := zones[i%len(zones)]
	if d.Name == MySQL.Name {
		return addParams(dsn, "time_zone="+url.QueryEscape("'"+z.mysql+"'"))
	}
	return addParams(dsn, "timezone="+url.QueryEscape(z.postgres)+"&application_name="+appName)
}

// witnessDSN is the direct DSN; on MySQL with clientFoundRows, so that a write of an unchanged value
// still counts as accepted.
func witnessDSN(d Dialect, dsn string) string {
	if d.Name == MySQL.Name {
		return addParams(dsn, "clientFoundRows=true")
	}
	return dsn
}

func addParams(dsn, params string) string {
	if strings.Contains(dsn, "?") {
		return dsn + "&" + params
	}
	return dsn + "?" + params
}

// terminateSessions ends, on the server, every session of the run's workers.
func terminateSessions(ctx context.Context, d Dialect, db *sql.DB, appName string) (int, error) {
	if d.Name != MySQL.Name {
		var n int
		err := db.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`,
			appName).Scan(&n)
		return n, err
	}
	rows, err := db.QueryContext(ctx, `SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?`, appName)
	if err != nil {
		return 0, err
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	n := 0
	for _, id := range ids {
		if _, err := db.ExecContext(ctx, fmt.Sprintf("KILL %d", id)); err == nil { // it may be gone already
			n++
		}
	}
	return n, rows.Err()
}

var mysqlDB = regexp.MustCompile(`\)/([A-Za-z0-9_]+)`)

// mysqlUser creates user, with every right on the DSN's database, and returns dsn logged in as that user.
func mysqlUser(ctx context.Context, db *sql.DB, dsn, user string) (string, error) {
	m := mysqlDB.FindStringSubmatch(dsn)
	if m == nil {
		return "", fmt.Errorf("no database in %q", dsn)
	}
	for _, stmt := range []string{
		"CREATE USER IF NOT EXISTS '" + user + "'@'127.0.0.1'",
		"GRANT ALL ON `" + m[1] + "`.* TO '" + user + "'@'127.0.0.1'",
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return "", fmt.Errorf("worker user: %w", err)
		}
	}
	at := strings.Index(dsn, "@tcp(")
	return user + dsn[at:], nil
}

// DefaultConfig is the suite's configuration for a database reached through the DSN environment
// variables of the integration tests: ten workers of two holders each in every correct mode, two per mode
// (locks over six keys, candidates in the election, periodic jobs), TTL 2 s, a fault every 2 s of each
// kind but the database restart; on PostgreSQL every other worker waits and publishes with push.
func DefaultConfig(d Dialect, duration time.Duration) Config {
	dsn := envOr("DISTRLOCK_POSTGRES_DSN", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	if d.Name == MySQL.Name {
		dsn = envOr("DISTRLOCK_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/test")
	}
	return Config{
		Dialect: d, DSN: dsn, Workers: 10, Modes: []string{ModeDo, ModeLease, ModeTx, ModeElect, ModePeriod},
		Keys: 6, Holders: 2,
		Duration: duration, TTL: 2 * time.Second, Margin: 600 * time.Millisecond,
		Faults:     []string{FaultBlackhole, FaultReset, FaultKill, FaultDelay, FaultTerminate},
		FaultEvery: 2 * time.Second, Log: io.Discard, Notify: d.Name == Postgres.Name,
	}
}

// GaleraConfig is DefaultConfig for the MariaDB Galera cluster of scripts/scale/galera.sh, whose nodes'
// DSNs are DISTRLOCK_GALERA_DSN1 to DISTRLOCK_GALERA_DSN3: the workers spread over the three nodes. It
// reports false when one of them is unset.
func GaleraConfig(duration time.Duration) (Config, bool) {
	c := DefaultConfig(MySQL, duration)
	var dsns []string
	for i := 1; i <= 3; i++ {
		dsn := os.Getenv(fmt.Sprintf("DISTRLOCK_GALERA_DSN%d", i))
		if dsn == "" {
			return c, false
		}
		dsns = append(dsns, dsn)
	}
	c.DSN, c.Nodes = dsns[0], dsns[1:]
	return c, true
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
