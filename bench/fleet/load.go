package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/distrlock/distrlock"
)

// loadTarget is a database whose server counters the load part reads.
type loadTarget struct {
	name, driver, dsn string
	dialect           distrlock.Dialect
	notify            bool     // every process of it has a pgnotify listener
	counters          []string // in the order of the table's columns
	writes            []string // the counters whose sum is the writes of "writes per retry"
	logBytes          string   // the counter of WAL or redo bytes
	commits           string
}

func loadTargets(c config) []loadTarget {
	pg := loadTarget{name: "PostgreSQL", driver: "pgx", dsn: c.pg, dialect: distrlock.DialectPgx,
		counters: []string{"WAL bytes", "XIDs assigned", "xact_commit", tableWAL, tableXIDs},
		writes:   []string{"XIDs assigned"}, logBytes: "WAL bytes", commits: "xact_commit"}
	pgPush := pg
	pgPush.name, pgPush.notify = "PostgreSQL + pgnotify", true
	ts := []loadTarget{pg, pgPush,
		{name: "MariaDB", driver: "mysql", dsn: c.my, dialect: distrlock.DialectMariaDB,
			counters: []string{"Handler_update", "Handler_write", "Innodb_lsn_current", "Com_commit", "Handler_commit"},
			writes:   []string{"Handler_update", "Handler_write"}, logBytes: "Innodb_lsn_current", commits: "Handler_commit"},
	}
	return slices.DeleteFunc(ts, func(t loadTarget) bool { return t.notify && !c.notify })
}

// sample is a reading of a server's counters; PostgreSQL's WAL position is kept as an LSN.
type sample struct {
	at   time.Time
	lsn  string
	vals map[string]int64
}

// window is what the counters moved by over an interval.
type window struct {
	action string // the waiter's action, for an interval with a waiter
	secs   float64
	deltas map[string]int64
	stmts  int64 // statements the waiting process sent in the interval, counted client-side
	// session is what the waiting process's own MariaDB session counters moved by.
	session map[string]int64
	// extends is how many times the holder extended its lease in the interval, counted by the holder.
	extends int64
}

// loadResult is the load part's intervals on one database: both holds one interval with the holder and
// a waiter per waiter action.
type loadResult struct {
	empty, holder window
	both          []window
}

// waiter is the waiting process's share of both, an interval with it: both less the holder's interval
// alone, scaled to the holder's extends in both (a 10 s interval holds 5 or 6 of the extends every 2 s, a
// write each), or to the same length when the holder did not extend.
func (r loadResult) waiter(both window, name string) float64 {
	scale := both.secs / r.holder.secs
	if r.holder.extends > 0 {
		scale = float64(both.extends) / float64(r.holder.extends)
	}
	return float64(both.deltas[name]) - float64(r.holder.deltas[name])*scale
}

// meter reads one server's counters on a session of its own (the measuring session).
type meter struct {
	conn     *sql.Conn
	postgres bool
	// relations matches pg_walinspect's block references to the lock table and its indexes, whose WAL
	// the load part attributes to the lock, apart from what other clients of the server write.
	relations string
}

// The counters pg_walinspect attributes to the lock table: its WAL records and their bytes, and the
// transactions (XIDs) that wrote it, with their commit records.
const (
	tableWAL  = "WAL bytes of the lock table"
	tableXIDs = "XIDs writing it"
)

// inspectWAL installs pg_walinspect unless it is there, finds the relations of table, and returns what
// drops the extension again if this run installed it.
func (m *meter) inspectWAL(ctx context.Context, table string) (func(), error) {
	var installed bool
	if err := m.conn.QueryRowContext(ctx, "SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_walinspect')").Scan(&installed); err != nil {
		return nil, err
	}
	drop := func() {}
	if !installed {
		if _, err := m.conn.ExecContext(ctx, "CREATE EXTENSION IF NOT EXISTS pg_walinspect"); err != nil {
			return nil, err
		}
		drop = func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			_, _ = m.conn.ExecContext(dctx, "DROP EXTENSION IF EXISTS pg_walinspect")
		}
	}
	rows, err := m.conn.QueryContext(ctx, `SELECT pg_relation_filenode(c.oid)::text FROM pg_class c
		WHERE c.oid = $1::regclass OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = $1::regclass)`, table)
	if err != nil {
		drop()
		return nil, err
	}
	defer rows.Close()
	var nodes []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			drop()
			return nil, err
		}
		nodes = append(nodes, n)
	}
	if err := rows.Err(); err != nil || len(nodes) == 0 {
		drop()
		return nil, errors.Join(err, fmt.Errorf("no relations found for %s", table))
	}
	// A block reference reads "blkref #0: rel 1663/16386/24576 fork main blk 0".
	m.relations = "rel [0-9]+/[0-9]+/(" + strings.Join(nodes, "|") + ") fork"
	return drop, nil
}

func (m meter) read(ctx context.Context) (sample, error) {
	s := sample{at: time.Now(), vals: map[string]int64{}}
	if m.postgres {
		// pg_snapshot_xmax of the current snapshot is the next XID to be assigned, and reading it assigns
		// none; pg_current_wal_lsn writes nothing either.
		var xmax, commits int64
		err := m.conn.QueryRowContext(ctx, `SELECT pg_current_wal_lsn()::text,
			pg_snapshot_xmax(pg_current_snapshot())::text::bigint,
			(SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())`).Scan(&s.lsn, &xmax, &commits)
		s.vals["XIDs assigned"], s.vals["xact_commit"] = xmax, commits
		return s, err
	}
	rows, err := m.conn.QueryContext(ctx, `SHOW GLOBAL STATUS WHERE Variable_name IN
		('Handler_update', 'Handler_write', 'Innodb_lsn_current', 'Com_commit', 'Handler_commit')`)
	if err != nil {
		return s, err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var v int64
		if err := rows.Scan(&name, &v); err != nil {
			return s, err
		}
		s.vals[name] = v
	}
	return s, rows.Err()
}

func (m meter) diff(ctx context.Context, a, b sample) (window, error) {
	w := window{secs: b.at.Sub(a.at).Seconds(), deltas: map[string]int64{}}
	for k, v := range b.vals {
		w.deltas[k] = v - a.vals[k]
	}
	if m.postgres {
		var wal int64
		if err := m.conn.QueryRowContext(ctx, "SELECT pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)::bigint", b.lsn, a.lsn).Scan(&wal); err != nil {
			return w, err
		}
		w.deltas["WAL bytes"] = wal
		w.deltas[tableWAL], w.deltas[tableXIDs] = 0, 0
		if m.relations != "" && wal > 0 { // pg_walinspect fails on a range without a record
			// pg_walinspect reads only flushed WAL, and a background record (a checkpoint's, autovacuum's)
			// may sit in the WAL buffers for up to wal_writer_delay: wait for the flush instead of clamping
			// the range, which could cut it before the first record that starts in it.
			if err := m.waitFlushed(ctx, b.lsn); err != nil {
				return w, err
			}
			var bytes, xids int64
			err := m.conn.QueryRowContext(ctx, `WITH w AS (
					SELECT * FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)
				), ours AS (
					SELECT DISTINCT xid::text FROM w WHERE xid::text <> '0' AND block_ref ~ $3
				)
				SELECT coalesce(sum(record_length), 0)::bigint, (SELECT count(*) FROM ours)
				FROM w WHERE block_ref ~ $3 OR xid::text IN (SELECT xid FROM ours)`, a.lsn, b.lsn, m.relations).Scan(&bytes, &xids)
			// The range's bytes may all continue a record that started before it (pg_current_wal_lsn can
			// stop inside a record): then no record of the range touches the table.
			if err != nil && strings.Contains(err.Error(), "could not find a valid record after") {
				bytes, xids, err = 0, 0, nil
			}
			if err != nil {
				return w, fmt.Errorf("pg_walinspect: %w", err)
			}
			w.deltas[tableWAL], w.deltas[tableXIDs] = bytes, xids
		}
	}
	return w, nil
}

// waitFlushed waits, at most 5 s, until the server has flushed its WAL up to lsn and to the end of every
// record that had started by then (the insert position), so that the last record of a range reads whole.
func (m meter) waitFlushed(ctx context.Context, lsn string) error {
	deadline := time.Now().Add(5 * time.Second)
	if err := m.conn.QueryRowContext(ctx, "SELECT greatest($1::pg_lsn, pg_current_wal_insert_lsn())::text", lsn).Scan(&lsn); err != nil {
		return err
	}
	for {
		var flushed bool
		err := m.conn.QueryRowContext(ctx, "SELECT pg_current_wal_flush_lsn() >= $1::pg_lsn", lsn).Scan(&flushed)
		if err != nil || flushed {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pg_walinspect: WAL not flushed up to %s after 5 s", lsn)
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
}

// interval reads the counters, runs begin, waits d, runs end and reads them again.
func (m meter) interval(ctx context.Context, d time.Duration, begin, end func() error) (window, error) {
	a, err := m.read(ctx)
	if err != nil {
		return window{}, err
	}
	if begin != nil {
		if err := begin(); err != nil {
			return window{}, err
		}
	}
	if err := sleep(ctx, d); err != nil {
		return window{}, err
	}
	b, err := m.read(ctx)
	if err != nil {
		return window{}, err
	}
	if end != nil {
		if err := end(); err != nil {
			return window{}, err
		}
	}
	return m.diff(ctx, a, b)
}

// runLoad measures an interval with nothing running (the measuring session and other clients of the
// server), one with a holder process alone, and one with a waiting process added for each of c.actions,
// a new process each time.
func runLoad(ctx context.Context, c config, t loadTarget, i int) (loadResult, error) {
	var r loadResult
	table := fmt.Sprintf("fleet_%s_load%d", c.run, i)
	drop, err := createTable(ctx, t.driver, t.dsn, t.dialect, table)
	if err != nil {
		return r, err
	}
	defer drop()
	db, err := sql.Open(t.driver, t.dsn)
	if err != nil {
		return r, err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return r, err
	}
	defer conn.Close()
	m := meter{conn: conn, postgres: t.driver == "pgx"}
	if m.postgres {
		dropExt, err := m.inspectWAL(ctx, table)
		if err != nil {
			return r, err
		}
		defer dropExt()
	}
	if r.empty, err = m.interval(ctx, c.loadDuration, nil, nil); err != nil {
		return r, fmt.Errorf("empty interval: %w", err)
	}

	a := workerArgs{driver: t.driver, dsn: t.dsn, dialect: string(t.dialect), table: table, key: "held",
		ttl: holderTTL, notify: t.notify}
	a.role = "hold"
	holder, err := startWorker(ctx, a)
	if err != nil {
		return r, err
	}
	defer holder.kill()
	if err := ready(holder); err != nil {
		return r, errors.Join(fmt.Errorf("holder: %w", err), holder.wait(time.Second))
	}
	extends := holderExtends(holder)
	// The holder extends every TTL/2 from its acquisition, and an interval of 10 s is five of those: begun
	// at once, its end would fall on an extend, which either side of the counters could see. Begin it
	// between two extends.
	if err := sleep(ctx, holderTTL/4); err != nil {
		return r, err
	}
	var e0, e1 int64
	if r.holder, err = m.interval(ctx, c.loadDuration, extends(&e0), extends(&e1)); err != nil {
		return r, fmt.Errorf("holder alone: %w", err)
	}
	r.holder.extends = e1 - e0

	for i, action := range c.actions {
		a.role, a.action, a.id = "wait", action, i+1
		w, err := measureWaiter(ctx, m, c.loadDuration, a, extends)
		if err != nil {
			return r, fmt.Errorf("holder and waiter (%s): %w", action, err)
		}
		r.both = append(r.both, w)
	}
	if err := holder.stop(10 * time.Second); err != nil {
		return r, fmt.Errorf("holder: %w", err)
	}
	return r, nil
}

// holderExtends returns a function that asks the holder how many times it has extended its lease so far
// and stores the answer in into.
func holderExtends(holder *proc) func(into *int64) func() error {
	return func(into *int64) func() error {
		return func() error {
			if err := holder.send("count"); err != nil {
				return err
			}
			msg, err := holder.next(10 * time.Second)
			if err == nil && msg.Extends == nil {
				err = fmt.Errorf("holder answered %+v", msg)
			}
			if err != nil {
				return errors.Join(err, holder.wait(time.Second))
			}
			*into = *msg.Extends
			return nil
		}
	}
}

// measureWaiter starts a waiting process with a, measures an interval from its "go", and stops it; extends
// reads the holder's count of extends at both ends.
func measureWaiter(ctx context.Context, m meter, d time.Duration, a workerArgs, extends func(*int64) func() error) (window, error) {
	waiter, err := startWorker(ctx, a)
	if err != nil {
		return window{}, err
	}
	defer waiter.kill()
	if err := ready(waiter); err != nil {
		return window{}, errors.Join(err, waiter.wait(time.Second))
	}
	var c0, c1 message
	counts := func(cmd string, into *message) func() error {
		return func() error {
			if err := waiter.send(cmd); err != nil {
				return err
			}
			msg, err := waiter.next(10 * time.Second)
			if err == nil && msg.Counts == nil {
				err = fmt.Errorf("waiter answered %+v", msg)
			}
			if err != nil {
				return errors.Join(err, waiter.wait(time.Second))
			}
			*into = msg
			return nil
		}
	}
	var e0, e1 int64
	both := func(f, g func() error) func() error {
		return func() error { return errors.Join(f(), g()) }
	}
	w, err := m.interval(ctx, d, both(counts("go", &c0), extends(&e0)), both(counts("count", &c1), extends(&e1)))
	if err != nil {
		return w, err
	}
	w.action, w.extends = a.action, e1-e0
	w.stmts = c1.Counts.Statements - c0.Counts.Statements
	if c0.Session != nil {
		w.session = map[string]int64{}
		for k, v := range c1.Session {
			w.session[k] = v - c0.Session[k]
		}
	}
	return w, waiter.stop(10 * time.Second)
}

// loadTables runs the load part on each database and prints its intervals, then the per-retry summary.
func loadTables(ctx context.Context, out io.Writer, c config) error {
	fmt.Fprintf(out, "\n## Load of one waiting process: a holder process keeps the lock (Hold, TTL %v), %v per interval, waiter actions %s\n",
		holderTTL, c.loadDuration, strings.Join(c.actions, ", "))
	var summary []string
	var errs []error
	for i, t := range loadTargets(c) {
		if ctx.Err() != nil {
			break
		}
		r, err := runLoad(ctx, c, t, i)
		if err != nil {
			errs = append(errs, fmt.Errorf("load on %s: %w", t.name, err))
			fmt.Fprintf(out, "\n%s: error: %v\n", t.name, oneLine(err))
			continue
		}
		fmt.Fprintf(out, "\n### %s\n\n| interval | seconds | %s | waiter statements |\n|---|---|%s---|\n",
			t.name, strings.Join(t.counters, " | "), strings.Repeat("---|", len(t.counters)))
		row := func(name string, w window, stmts string) {
			cells := []string{name, fmt.Sprintf("%.1f", w.secs)}
			for _, k := range t.counters {
				cells = append(cells, fmt.Sprint(w.deltas[k]))
			}
			fmt.Fprintf(out, "| %s | %s |\n", strings.Join(cells, " | "), stmts)
		}
		row("empty: the measuring session and any other client", r.empty, "–")
		row("holder alone (baseline)", r.holder, "–")
		for _, both := range r.both {
			row("holder and 1 waiting process: "+both.action, both, fmt.Sprint(both.stmts))
			cells := []string{fmt.Sprintf("the waiting process: %s (difference, baseline scaled to the holder's extends: %d alone, %d here)",
				both.action, r.holder.extends, both.extends), "–"}
			for _, k := range t.counters {
				cells = append(cells, round(r.waiter(both, k), 0))
			}
			fmt.Fprintf(out, "| %s | %d |\n", strings.Join(cells, " | "), both.stmts)
		}
		for _, both := range r.both {
			if both.session != nil {
				var parts []string
				for _, k := range sessionCounters {
					parts = append(parts, fmt.Sprintf("%s %d", k, both.session[k]))
				}
				fmt.Fprintf(out, "\nThe waiting process's own session (%s) over its interval (SHOW SESSION STATUS): %s.\n",
					both.action, strings.Join(parts, ", "))
			}
		}
		for _, both := range r.both {
			summary = append(summary, summaryRow(t, r, both))
		}
	}
	if len(summary) > 0 {
		fmt.Fprintln(out, "\n### Per waiting process (per retry: per statement the waiter sent)\n\n| database | waiter action | statements per second | writes per retry, server-wide counters | writes per retry, the waiter's own (in the interval) | log bytes per retry, server-wide | log bytes per retry, the lock table's | commits per retry |\n|---|---|---|---|---|---|---|---|")
		fmt.Fprintln(out, strings.Join(summary, "\n"))
	}
	return errors.Join(errs...)
}

// summaryRow is the per-retry row of one waiter's interval both on t.
func summaryRow(t loadTarget, r loadResult, both window) string {
	var writes float64
	for _, k := range t.writes {
		writes += r.waiter(both, k)
	}
	per := func(v float64) string {
		if both.stmts == 0 {
			return "–"
		}
		return round(v/float64(both.stmts), 3)
	}
	// Writes and log bytes of the waiter alone, apart from other clients: on PostgreSQL what
	// pg_walinspect finds on the lock table, on MariaDB the waiter's own session counters.
	ownWrites, ownLog := "–", "–"
	if t.driver == "pgx" {
		own := r.waiter(both, tableXIDs)
		ownWrites = fmt.Sprintf("%s (%s %s)", per(own), round(own, 0), tableXIDs)
		ownLog = per(r.waiter(both, tableWAL))
	} else if both.session != nil {
		own := float64(both.session["Handler_update"] + both.session["Handler_write"])
		ownWrites = fmt.Sprintf("%s (%s session Handler_update + Handler_write)", per(own), round(own, 0))
	}
	return fmt.Sprintf("| %s | %s | %.1f | %s (%s) | %s | %s | %s | %s (%s) |", t.name, both.action,
		float64(both.stmts)/both.secs, per(writes), strings.Join(t.writes, " + "), ownWrites,
		per(r.waiter(both, t.logBytes)), ownLog, per(r.waiter(both, t.commits)), t.commits)
}

// round formats v with prec decimals, without the "-0" of a difference that is negative by less than
// the last digit (the scaled baseline of a slightly longer interval).
func round(v float64, prec int) string {
	p := math.Pow10(prec)
	return strconv.FormatFloat(math.Round(v*p)/p+0, 'f', prec, 64)
}
