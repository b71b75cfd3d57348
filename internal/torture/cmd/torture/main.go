// Command torture runs distrlock's torture suite (make torture), and is the worker process the suite starts.
//
//	torture [-duration 5m] [-db postgres|mysql|both|galera] [-restart]   run the suite and print its report
//	torture worker ...                                          one worker (started by the suite)
//
// It exits 1 when the checker finds a violation.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/distrlock/distrlock/internal/torture"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == "worker" {
		os.Exit(worker(ctx, os.Args[2:]))
	}
	os.Exit(suite(ctx, os.Args[1:]))
}

func worker(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("worker", flag.ExitOnError)
	var c torture.WorkerConfig
	var dialect, until string
	var keys int
	fs.StringVar(&c.ID, "id", "", "worker id")
	fs.StringVar(&dialect, "dialect", "postgres", "postgres or mysql")
	fs.StringVar(&c.LockDSN, "lock-dsn", "", "DSN for the locks (through the fault proxy)")
	fs.StringVar(&c.WitnessDSN, "witness-dsn", "", "direct DSN for the witness")
	fs.StringVar(&c.Table, "table", "", "lock table")
	fs.StringVar(&c.Run, "run", "", "run name")
	fs.IntVar(&keys, "keys", 3, "number of keys")
	fs.StringVar(&until, "until", "", "RFC 3339 time to stop")
	fs.StringVar(&c.Mode, "mode", torture.ModeDo, "how to hold locks")
	fs.DurationVar(&c.TTL, "ttl", 2*time.Second, "lease")
	fs.DurationVar(&c.Margin, "margin", 600*time.Millisecond, "safety margin")
	fs.IntVar(&c.Holders, "holders", 1, "goroutines taking locks")
	fs.BoolVar(&c.Galera, "galera", false, "the lock DSN reaches a node of a MariaDB Galera cluster")
	fs.BoolVar(&c.Notify, "notify", false, "PostgreSQL: wait and publish through a pgnotify listener of the lock DSN")
	_ = fs.Parse(args)
	c.Dialect = dialectOf(dialect)
	for i := range keys {
		c.Keys = append(c.Keys, fmt.Sprintf("key-%d", i))
	}
	var err error
	if c.Until, err = time.Parse(time.RFC3339Nano, until); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 2
	}
	if _, _, err := torture.RunWorker(ctx, c); err != nil {
		fmt.Fprintf(os.Stderr, "worker %s: %v\n", c.ID, err)
		return 1
	}
	return 0
}

func dialectOf(name string) torture.Dialect {
	if name == torture.MySQL.Name {
		return torture.MySQL
	}
	return torture.Postgres
}

func suite(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("torture", flag.ExitOnError)
	duration := fs.Duration("duration", 5*time.Minute, "how long each database is tortured")
	dbs := fs.String("db", "both", "postgres, mysql or both; or galera, the 3 nodes of DISTRLOCK_GALERA_DSN1..3 (scripts/scale/galera.sh)")
	restart := fs.Bool("restart", false, "also restart the database servers (needs root; the local Debian services)")
	workers := fs.Int("workers", torture.DefaultConfig(torture.Postgres, 0).Workers, "worker processes per database")
	verbose := fs.Bool("v", false, "show the workers' output")
	broken := fs.String("broken", "", "prove the checker: run only broken workers, "+torture.ModeOverstay+", "+torture.ModeIgnoreLoss+", "+torture.ModeUnguarded+" or "+torture.ModeChecked)
	modes := fs.String("modes", "", "comma-separated worker modes instead of the default mix, e.g. "+torture.ModeGuarded)
	prune := fs.Duration("prune", 100*time.Millisecond, "run DBManager.Prune (free for 0, batches of 2) this often during the run; 0: never")
	_ = fs.Parse(args)
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	failed := false
	for _, name := range []string{"postgres", "mysql", "galera"} {
		if (*dbs != "both" || name == "galera") && *dbs != name {
			continue
		}
		c := torture.DefaultConfig(dialectOf(name), *duration)
		if name == "galera" {
			var ok bool
			if c, ok = torture.GaleraConfig(*duration); !ok {
				fmt.Fprintln(os.Stderr, "galera: set DISTRLOCK_GALERA_DSN1..3 (eval \"$(scripts/scale/galera.sh env)\")")
				return 2
			}
		}
		c.Binary, c.Workers, c.PruneEvery = self, *workers, *prune
		if *verbose {
			c.Log = os.Stderr
		}
		if *modes != "" {
			c.Modes = strings.Split(*modes, ",")
		}
		if *broken != "" {
			c.Modes = []string{*broken}
		}
		if *restart {
			c.Faults = append(c.Faults, torture.FaultRestart)
			c.RestartCmd = restartCommands[name]
		}
		fmt.Printf("%s: %d workers of %d holders (%s), %d keys, TTL %v, margin %v, %v, faults %s every %v, prune every %v\n", name, c.Workers, c.Holders,
			strings.Join(c.Modes, ", "), c.Keys, c.TTL, c.Margin, c.Duration, strings.Join(c.Faults, ", "), c.FaultEvery, c.PruneEvery)
		r, err := torture.Run(ctx, c)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
			return 2
		}
		fmt.Printf("%s: %s\n", name, r)
		for _, e := range r.Examples {
			fmt.Println("  ", e)
		}
		failed = failed || r.Violations() > 0
	}
	if failed {
		return 1
	}
	return 0
}

// restartCommands restart the local Debian services, as the machine's set-up starts them.
var restartCommands = map[string]string{
	"postgres": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main restart",
	"mysql": "mysqladmin -h127.0.0.1 -uroot shutdown && while pgrep -x mariadbd >/dev/null; do sleep 0.1; done && " +
		"start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd && " +
		"until mysqladmin -h127.0.0.1 -uroot ping >/dev/null 2>&1; do sleep 0.2; done",
}
