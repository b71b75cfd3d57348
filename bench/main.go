// Command bench measures distrlock beside the other ways Go services lock: cirello.io/pglock,
// github.com/bsm/redislock, re-enactments of go-dbkit's distrlock and sosnovski/synch (which the module
// proxy does not serve), and each database's floor. It prints a Markdown table (make bench).
//
// Scenarios: (a) an uncontended acquire+release cycle of one key, (b) the statements and round trips it
// sends, counted by a wrapping driver, (c) 16 goroutines on distinct keys, (d) 8 goroutines contending for
// one key with each library's own waiting, (e) the library's do-under-lock helper with an empty function,
// (f) held locks heartbeating.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "github.com/lib/pq"
	_ "modernc.org/sqlite"

	"github.com/redis/go-redis/v9"

	"github.com/distrlock/distrlock"
	"github.com/distrlock/distrlock/internal/stmtcount"
)

func main() {
	duration := flag.Duration("duration", 2*time.Second, "time spent on each measurement")
	parts := flag.String("parts", "single,contention,heartbeats", "which tables to print: single (a, b, e), paired (e, operation by operation), contention (c, d), heartbeats (f)")
	flag.Parse()
	want := func(part string) bool { return slices.Contains(strings.Split(*parts, ","), part) }
	ctx := context.Background()
	pg := envOr("DISTRLOCK_POSTGRES_DSN", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	my := envOr("DISTRLOCK_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/test")
	redisAddr := envOr("DISTRLOCK_REDIS_ADDR", "127.0.0.1:6379")

	fmt.Printf("# distrlock benchmarks\n\n%s, %d-CPU host. Single key, one goroutine: %d rounds of %v per library, "+
		"in a shuffled order each round (half cycles, half the do helper); each column is its median over the rounds, "+
		"each ratio the median (and range) of the per-round ratios to the floor of the same round.\n\n",
		time.Now().Format("2006-01-02"), runtime.NumCPU(), rounds, *duration)
	if want("single") {
		single(ctx, pg, my, redisAddr, *duration)
	}
	if want("paired") {
		paired(ctx, pg, my, *duration)
	}
	if want("contention") {
		contention(ctx, pg, my, redisAddr, *duration)
	}
	if want("heartbeats") {
		heartbeatTable(ctx, pg, my)
	}
}

// single prints scenarios (a), (b) and (e).
func single(ctx context.Context, pg, my, redisAddr string, duration time.Duration) {
	fmt.Println("| database | library | acquire+release ops/s | p50 | p99 | statements/op | round trips/op | do-under-lock ops/s | acquire+release / floor of 2 UPDATEs (min–max) | do / floor (min–max) |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	var opRows []string
	defer func() {
		fmt.Println("\n## What each distrlock operation sends (b), counted by the wrapping driver: statements / round trips")
		fmt.Println()
		fmt.Println("| database | NewLock | Acquire (creates the row) | Extend | Release | Acquire | Acquire refused | DBLock.Extend in a *sql.Tx |")
		fmt.Println("|---|---|---|---|---|---|---|---|")
		for _, r := range opRows {
			fmt.Println(r)
		}
	}()
	for _, target := range singleTargets(pg, my) {
		var counter stmtcount.Counter
		db, err := stmtcount.Open(target.driver, target.dsn, &counter)
		if err != nil || db.PingContext(ctx) != nil {
			fmt.Fprintf(os.Stderr, "%s unreachable, skipped: %v\n", target.name, err)
			continue
		}
		type lib struct {
			name string
			make func() (*locker, error)
			c    *stmtcount.Counter
		}
		libs := []lib{
			{"floor: 2 PK UPDATEs", func() (*locker, error) { return floorUpdates(ctx, db, 2, target.postgres) }, &counter},
			{"distrlock", func() (*locker, error) { return ours(ctx, db, target.dialect) }, &counter},
		}
		if target.dialect != distrlock.DialectSQLite {
			libs = append(libs,
				lib{"floor: SELECT 1", func() (*locker, error) { return floorSelect(db), nil }, &counter},
				lib{"go-dbkit (re-enacted)", func() (*locker, error) {
					q := dbkitMySQL
					if target.postgres {
						q = dbkitPostgres
					}
					return dbkitLib(ctx, db, q, target.postgres)
				}, &counter},
				lib{"synch (re-enacted)", func() (*locker, error) {
					q := synchMySQL
					if target.postgres {
						q = synchPostgres
					}
					return synchLib(ctx, db, q)
				}, &counter})
		}
		if target.postgres {
			var pqCounter stmtcount.Counter
			pqDB, err := stmtcount.Open("postgres", pg, &pqCounter)
			if err == nil {
				libs = append(libs,
					lib{"floor: advisory lock+unlock", func() (*locker, error) { return floorAdvisory(ctx, db) }, &counter},
					lib{"pglock v1.16.0 (lib/pq)", func() (*locker, error) { return pglockLib(ctx, pqDB) }, &pqCounter})
			}
		}
		// The libraries are measured in interleaved rounds, each against the floor of the same round, so
		// that the drift of the machine's disk over a run falls on all of them alike; the table shows the
		// median round.
		type opened struct {
			lib
			lk               *locker
			rounds           []result
			ratios, doRatios []float64
		}
		var open []*opened
		for _, l := range libs {
			lk, err := l.make()
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s %s: %v\n", target.name, l.name, err)
				continue
			}
			open = append(open, &opened{lib: l, lk: lk})
		}
		// Each round measures every library once, in an order shuffled each round (with a fixed seed, so
		// that runs are alike), so that none keeps its place next to the floor; the ratios are to the floor
		// of the round.
		shuffle := rand.New(rand.NewPCG(1, 2))
		for range rounds {
			got := map[*opened]result{}
			for _, i := range shuffle.Perm(len(open)) {
				o := open[i]
				r, err := measure(ctx, o.lk, o.c, duration/2)
				if err != nil {
					fmt.Fprintf(os.Stderr, "%s %s: %v\n", target.name, o.name, err)
					continue
				}
				got[o] = r
			}
			var floor result
			for o, r := range got {
				if o.name == "floor: 2 PK UPDATEs" {
					floor = r
				}
			}
			for _, o := range open {
				r, ok := got[o]
				if !ok {
					continue
				}
				o.rounds = append(o.rounds, r)
				if floor.ops > 0 {
					o.ratios = append(o.ratios, r.ops/floor.ops)
					if r.doOps > 0 {
						o.doRatios = append(o.doRatios, r.doOps/floor.ops)
					}
				}
			}
		}
		for _, o := range open {
			if o.lk.close != nil {
				o.lk.close()
			}
			if len(o.rounds) == 0 {
				continue
			}
			r := medianResult(o.rounds)
			vs := "–"
			if len(o.ratios) > 0 {
				vs = fmt.Sprintf("%.2f× (%.2f–%.2f)", median(o.ratios), slices.Min(o.ratios), slices.Max(o.ratios))
				if len(o.doRatios) > 0 {
					vs += fmt.Sprintf(" | %.2f× (%.2f–%.2f)", median(o.doRatios), slices.Min(o.doRatios), slices.Max(o.doRatios))
				} else {
					vs += " | –"
				}
			} else {
				vs += " | –"
			}
			fmt.Printf("| %s | %s | %.0f | %s | %s | %.2f | %.2f | %s | %s |\n", target.name, o.name, r.ops,
				ms(r.p50), ms(r.p99), r.statements, r.roundTrips, orDash(r.doOps, "%.0f"), vs)
		}
		if row, err := perOperation(ctx, target.name, db, &counter, target.dialect); err == nil {
			opRows = append(opRows, row)
		} else {
			fmt.Fprintf(os.Stderr, "%s per operation: %v\n", target.name, err)
		}
		db.Close()
	}
	if rl, err := redisLib(ctx, redisAddr); err == nil {
		if r, err := measure(ctx, rl, nil, duration); err == nil {
			fmt.Printf("| Redis | redislock (commands/op) | %.0f | %s | %s | %.2f | %.2f | %.0f | – | – |\n", r.ops, ms(r.p50), ms(r.p99),
				r.statements, r.roundTrips, r.doOps)
		}
		rl.close()
	} else {
		fmt.Fprintf(os.Stderr, "Redis unreachable, skipped: %v\n", err)
	}
}

// contention prints scenarios (c) and (d).
func contention(ctx context.Context, pg, my, redisAddr string, d time.Duration) {
	fmt.Println("\n## 16 goroutines on distinct keys (c), 8 goroutines contending for one key (d)")
	fmt.Println()
	fmt.Println("| database | library | (c) cycles/s | (d) hand-overs/s | (d) hand-overs / acquisitions | (d) release→next holder p50 | p99 | overlaps seen |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, t := range []struct {
		name, driver, dsn string
		dialect           distrlock.Dialect
	}{
		{"PostgreSQL", "pgx", pg, distrlock.DialectPgx},
		{"MariaDB", "mysql", my, distrlock.DialectMariaDB},
		{"MariaDB interpolateParams", "mysql", addParam(my, "interpolateParams=true"), distrlock.DialectMariaDB},
		{"SQLite", "sqlite", "file:" + tempFile() + "?_pragma=busy_timeout(5000)&_txlock=immediate", distrlock.DialectSQLite},
	} {
		db, err := sql.Open(t.driver, t.dsn)
		if err != nil || db.PingContext(ctx) != nil {
			continue
		}
		db.SetMaxIdleConns(32)
		row := func(lib string, l *locker, w waiter) {
			c := "–"
			if l != nil {
				if ops, err := parallel(ctx, l, 16, d); err == nil {
					c = fmt.Sprintf("%.0f", ops)
				} else {
					c = "error: " + err.Error()
				}
			}
			h := "| – | – | – | – | –"
			if w != nil {
				if r, err := handoff(ctx, w, 8, d); err == nil {
					h = fmt.Sprintf("| %.0f | %.0f / %d | %s | %s | %d", r.perSec, r.perSec*d.Seconds(), r.acquisitions, ms(r.p50), ms(r.p99), r.overlaps)
				} else {
					h = "| error: " + err.Error() + " | | | |"
				}
			}
			fmt.Printf("| %s | %s | %s %s |\n", t.name, lib, c, h)
		}
		if l, err := ours(ctx, db, t.dialect); err == nil {
			w, done, err := oursWaiter(ctx, db, t.dialect)
			if err == nil {
				row("distrlock (AcquireWait)", l, w)
				done()
			}
			l.close()
		}
		if t.dialect == distrlock.DialectPgx {
			if pqDB, err := sql.Open("postgres", pg); err == nil {
				pqDB.SetMaxIdleConns(32)
				if l, err := pglockLib(ctx, pqDB); err == nil {
					w, done, err := pglockWaiter(pqDB)
					if err == nil {
						row("pglock v1.16.0 (waits a lease, 2 s)", l, w)
						done()
					}
					l.close()
				}
				pqDB.Close()
			}
			row("floor: pg_advisory_lock (blocking)", nil, advisoryWaiter(db))
		}
		if t.dialect == distrlock.DialectSQLite { // the peers have no SQLite
			db.Close()
			continue
		}
		q, sq := dbkitMySQL, synchMySQL
		if t.dialect == distrlock.DialectPgx {
			q, sq = dbkitPostgres, synchPostgres
		}
		if l, err := dbkitLib(ctx, db, q, t.dialect == distrlock.DialectPgx); err == nil {
			for i := range 16 {
				_ = l.init(ctx, fmt.Sprintf("bench-%d", i))
			}
			row("go-dbkit (re-enacted; no waiting)", l, nil)
			l.close()
		}
		if l, err := synchLib(ctx, db, sq); err == nil {
			w, done, err := synchWaiter(ctx, db, sq)
			if err == nil {
				row(fmt.Sprintf("synch (re-enacted; WaitLock polling every %v)", synchPoll), l, w)
				done()
			}
			l.close()
		}
		db.Close()
	}
	client := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer client.Close()
	if client.Ping(ctx).Err() == nil {
		l, _ := redisLib(ctx, redisAddr)
		c := "–"
		if ops, err := parallel(ctx, l, 16, d); err == nil {
			c = fmt.Sprintf("%.0f", ops)
		}
		if r, err := handoff(ctx, redisWaiter(client), 8, d); err == nil {
			fmt.Printf("| Redis | redislock (backoff 2–50 ms) | %s | %.0f | %.0f / %d | %s | %s | %d |\n", c, r.perSec,
				r.perSec*d.Seconds(), r.acquisitions, ms(r.p50), ms(r.p99), r.overlaps)
		}
		l.close()
	}
}

// heartbeatTable prints scenario (f).
func heartbeatTable(ctx context.Context, pg, my string) {
	interval := heartbeatTTL / 2
	intervals := float64(heartbeatWindow / interval)
	fmt.Printf("\n## Held locks heartbeating (f): distrlock, TTL %v (an extend every %v per lock), counted over %v after one interval to settle\n\n",
		heartbeatTTL, interval, heartbeatWindow)
	fmt.Println("| database | held locks | statements/s the database receives | statements per extend interval | prepares per interval | leases lost |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, t := range []struct {
		name, driver, dsn string
		dialect           distrlock.Dialect
	}{
		{"PostgreSQL", "pgx", pg, distrlock.DialectPgx},
		{"MariaDB", "mysql", my, distrlock.DialectMariaDB},
		{"MariaDB interpolateParams", "mysql", addParam(my, "interpolateParams=true"), distrlock.DialectMariaDB},
		// WAL without a sync per commit, so that taking 10,000 leases one commit at a time is quick.
		{"SQLite (WAL)", "sqlite", "file:" + tempFile() + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate",
			distrlock.DialectSQLite},
	} {
		for _, n := range []int{100, 1000, 10000} {
			var c stmtcount.Counter
			db, err := stmtcount.Open(t.driver, t.dsn, &c)
			if err != nil || db.PingContext(ctx) != nil {
				fmt.Fprintf(os.Stderr, "%s unreachable, skipped: %v\n", t.name, err)
				break
			}
			// A pool of 16, as a service would set.
			db.SetMaxOpenConns(16)
			db.SetMaxIdleConns(16)
			r, err := heartbeats(ctx, db, &c, t.dialect, n)
			if err != nil {
				fmt.Printf("| %s | %d | error: %v | | | |\n", t.name, n, err)
			} else {
				fmt.Printf("| %s | %d | %.1f | %.1f | %.1f | %d |\n", t.name, n, float64(r.statements)/heartbeatWindow.Seconds(),
					float64(r.statements)/intervals, float64(r.prepares)/intervals, r.lost)
			}
			db.Close()
		}
	}
}

// perOperation is scenario (b) for distrlock alone: what each operation sends, one at a time.
func perOperation(ctx context.Context, name string, db *sql.DB, c *stmtcount.Counter, d distrlock.Dialect) (string, error) {
	m, err := distrlock.NewDBManager(d, distrlock.WithTableName("bench_distrlock_ops"))
	if err != nil {
		return "", err
	}
	if err := m.CreateTable(ctx, db); err != nil {
		return "", err
	}
	defer func() { _, _ = db.ExecContext(context.Background(), m.DropTableSQL()) }()
	cell := func(op func() error) (string, error) {
		before := c.Counts()
		if err := op(); err != nil {
			return "", err
		}
		got := c.Counts().Sub(before)
		return fmt.Sprintf("%d / %d", got.Statements, got.Calls()), nil
	}
	var lock, other distrlock.DBLock
	cells := []string{name}
	for _, op := range []func() error{
		func() (err error) { lock, err = m.NewLock(ctx, db, "ops"); return err },
		func() error { return lock.Acquire(ctx, db, time.Minute) },
		func() error { return lock.Extend(ctx, db) },
		func() error { return lock.Release(ctx, db) },
		func() error { return lock.Acquire(ctx, db, time.Minute) },
		func() error {
			other, _ = m.NewLock(ctx, db, "ops")
			if err := other.Acquire(ctx, db, time.Minute); !errors.Is(err, distrlock.ErrLockAlreadyAcquired) {
				return fmt.Errorf("refused acquire: %v", err)
			}
			return nil
		},
	} {
		s, err := cell(op)
		if err != nil {
			return "", err
		}
		cells = append(cells, s)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return "", err
	}
	inTx, err := cell(func() error { return lock.Extend(ctx, tx) })
	if cerr := tx.Commit(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	cells = append(cells, inTx+" (and BEGIN, COMMIT: the caller's)")
	return "| " + strings.Join(cells, " | ") + " |", lock.Release(ctx, db)
}

type result struct {
	ops, doOps             float64
	p50, p99               time.Duration
	statements, roundTrips float64
}

// measure runs acquire+release cycles of one key for d, then the do helper for d.
func measure(ctx context.Context, l *locker, c *stmtcount.Counter, d time.Duration) (result, error) {
	const key = "bench"
	if l.init != nil {
		if err := l.init(ctx, key); err != nil {
			return result{}, err
		}
	}
	cycle := func() error {
		release, err := l.acquire(ctx, key)
		if err != nil {
			return err
		}
		return release(ctx)
	}
	if err := cycle(); err != nil { // warm-up: connections, prepared statements, the key's row
		return result{}, err
	}
	var before stmtcount.Counts
	var commandsBefore int64
	if c != nil {
		before = c.Counts()
	}
	if l.commands != nil {
		commandsBefore = l.commands()
	}
	var lat []time.Duration
	start := time.Now()
	for time.Since(start) < d {
		t := time.Now()
		if err := cycle(); err != nil {
			return result{}, err
		}
		lat = append(lat, time.Since(t))
	}
	elapsed := time.Since(start)
	r := result{ops: float64(len(lat)) / elapsed.Seconds()}
	if c != nil {
		got := c.Counts().Sub(before)
		r.statements = float64(got.Statements) / float64(len(lat))
		r.roundTrips = float64(got.Calls()) / float64(len(lat))
	}
	if l.commands != nil {
		r.statements = float64(l.commands()-commandsBefore) / float64(len(lat))
		r.roundTrips = r.statements
	}
	slices.Sort(lat)
	r.p50, r.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	if l.do != nil {
		n := 0
		start := time.Now()
		for time.Since(start) < d {
			if err := l.do(ctx, key); err != nil {
				return result{}, fmt.Errorf("do: %w", err)
			}
			n++
		}
		r.doOps = float64(n) / time.Since(start).Seconds()
	}
	return r, nil
}

// rounds is how many interleaved rounds the single-key table measures.
// singleTarget is a database of the single-key tables.
type singleTarget struct {
	name, driver, dsn string
	dialect           distrlock.Dialect
	postgres          bool
}

func singleTargets(pg, my string) []singleTarget {
	return []singleTarget{
		{"PostgreSQL", "pgx", pg, distrlock.DialectPgx, true},
		{"MariaDB", "mysql", my, distrlock.DialectMariaDB, false},
		{"MariaDB interpolateParams", "mysql", addParam(my, "interpolateParams=true"), distrlock.DialectMariaDB, false},
		{"SQLite", "sqlite", "file:" + tempFile() + "?_pragma=busy_timeout(5000)&_txlock=immediate", distrlock.DialectSQLite, false},
	}
}

const rounds = 5 // odd, so that the median is a measured value

// median is the middle value of xs, or the mean of the two middle values.
func median(xs []float64) float64 {
	ys := slices.Clone(xs)
	slices.Sort(ys)
	if n := len(ys); n%2 == 0 {
		return (ys[n/2-1] + ys[n/2]) / 2
	}
	return ys[len(ys)/2]
}

// medianResult is the median of each figure over the rounds (each column on its own).
func medianResult(rs []result) result {
	pick := func(f func(result) float64) float64 {
		xs := make([]float64, len(rs))
		for i, r := range rs {
			xs[i] = f(r)
		}
		return median(xs)
	}
	return result{
		ops:        pick(func(r result) float64 { return r.ops }),
		doOps:      pick(func(r result) float64 { return r.doOps }),
		p50:        time.Duration(pick(func(r result) float64 { return float64(r.p50) })),
		p99:        time.Duration(pick(func(r result) float64 { return float64(r.p99) })),
		statements: pick(func(r result) float64 { return r.statements }),
		roundTrips: pick(func(r result) float64 { return r.roundTrips }),
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func orDash(v float64, format string) string {
	if v == 0 {
		return "–"
	}
	return fmt.Sprintf(format, v)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func addParam(dsn, p string) string {
	if strings.Contains(dsn, "?") {
		return dsn + "&" + p
	}
	return dsn + "?" + p
}

func tempFile() string {
	f, err := os.CreateTemp("", "distrlock-bench-*.db")
	if err != nil {
		panic(err)
	}
	f.Close()
	return f.Name()
}
