// Command notice measures the part of a push hand-over on PostgreSQL that any NOTIFY-based hand-over pays: a
// release, an UPDATE that commits without waiting for the disk and publishes with pg_notify, until its
// notice reaches a listening process. One process releases every -idle, -count times; each of -listeners
// other processes (each number, one line of the table) listens on its own connection and reports when the
// notices arrived. A design in which the release itself handed the lock to the next waiter would still pay
// this; distrlock's waiter also sends its acquire after it (bench/fleet measures the whole hand-over, where
// the releasing worker's own listener is one of the listening backends: 4 workers signal 4 of them).
//
// Run it as `cd bench && go run ./notice`; DISTRLOCK_POSTGRES_DSN names the database.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/distrlock/distrlock/bench/internal/quantile"
	"github.com/jackc/pgx/v5"
)

func main() {
	if isListener(os.Args) {
		os.Exit(listenerMain())
	}
	var c config
	fs := flag.NewFlagSet("notice", flag.ExitOnError)
	fs.StringVar(&c.listeners, "listeners", "1,2,3,4", "comma-separated numbers of listening processes, one run each")
	fs.IntVar(&c.count, "count", 1500, "releases per run")
	fs.DurationVar(&c.idle, "idle", 5*time.Millisecond, "pause before each release, as a holder's hold")
	_ = fs.Parse(os.Args[1:])
	c.dsn = os.Getenv(dsnEnv)
	if c.dsn == "" {
		c.dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	// Ctrl-C ends the run through its context, so that the table is dropped.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout, c); err != nil {
		fmt.Fprintln(os.Stderr, "notice:", err)
		os.Exit(1)
	}
}

// dsnEnv names the database; listeners get it from their environment, not their command line, which ps shows.
const dsnEnv = "DISTRLOCK_POSTGRES_DSN"

type config struct {
	dsn       string
	listeners string
	count     int
	idle      time.Duration
}

// result is one run: the release statement's p50 and, per listener, the p50 from the release's start to
// the notice's arrival, and how many notices arrived.
type result struct {
	release time.Duration
	arrival []time.Duration
}

func run(ctx context.Context, out io.Writer, c config) error {
	if c.count < 1 || c.idle < 0 {
		return fmt.Errorf("-count %d must be positive and -idle %v not negative", c.count, c.idle)
	}
	fmt.Fprintf(out, "# Release and notice on PostgreSQL: %d releases, each after %v idle\n\n", c.count, c.idle)
	fmt.Fprintln(out, "| listening processes | release p50 | release start → notice in each listening process, p50 |")
	fmt.Fprintln(out, "|---|---|---|")
	for _, f := range strings.Split(c.listeners, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("-listeners: %q is not a positive number", f)
		}
		r, err := measure(ctx, c, n)
		if err != nil {
			return err
		}
		arrivals := make([]string, len(r.arrival))
		for i, d := range r.arrival {
			arrivals[i] = ms(d)
		}
		fmt.Fprintf(out, "| %d | %s | %s |\n", n, ms(r.release), strings.Join(arrivals, ", "))
	}
	return nil
}

// measure runs n listening processes and the releases. It gives up, killing the listeners, when the run takes
// far longer than its releases should: a listener that never got ready or never got the last notice.
func measure(ctx context.Context, c config, n int) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second+time.Duration(c.count)*(c.idle+20*time.Millisecond))
	defer cancel() // kills any listener left
	conn, err := pgx.Connect(ctx, c.dsn)
	if err != nil {
		return result{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	name := fmt.Sprintf("distrlock_notice_%d", os.Getpid())
	table := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE TABLE "+table+" (k int PRIMARY KEY, v bigint NOT NULL); INSERT INTO "+table+" VALUES (1, 0)"); err != nil {
		return result{}, err
	}
	defer func() {
		dropCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := conn.Exec(dropCtx, "DROP TABLE "+table); err != nil {
			fmt.Fprintf(os.Stderr, "notice: drop table %s: %v\n", table, err)
		}
	}()

	self, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	type listener struct {
		cmd   *exec.Cmd
		out   *bufio.Scanner
		stdin io.Closer // held open: a listener exits when it ends, so a parent that dies takes it along
	}
	var ls []listener
	defer func() {
		for _, l := range ls {
			l.stdin.Close()
			_ = l.cmd.Wait()
		}
	}()
	for range n {
		cmd := exec.CommandContext(ctx, self, listenArg, name)
		cmd.Env = append(os.Environ(), dsnEnv+"="+c.dsn)
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return result{}, err
		}
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return result{}, err
		}
		if err := cmd.Start(); err != nil {
			return result{}, err
		}
		l := listener{cmd, bufio.NewScanner(stdout), stdin}
		ls = append(ls, l)
		if !l.out.Scan() || l.out.Text() != "ready" {
			return result{}, errors.Join(errors.New("a listener did not start"), ctx.Err())
		}
	}

	// The statement is a release's shape: an UPDATE by primary key that commits without waiting for the
	// disk and publishes in the same statement, the payload being its start on this host's clock.
	release := "WITH r AS (UPDATE " + table + " SET v = v + 1 WHERE k = 1 AND set_config('synchronous_commit', 'off', true) = 'off' RETURNING k) " +
		"SELECT pg_notify($1, $2) FROM r"
	times := make([]time.Duration, 0, c.count)
	for range c.count {
		time.Sleep(c.idle)
		start := time.Now()
		if _, err := conn.Exec(ctx, release, name, strconv.FormatInt(start.UnixNano(), 10)); err != nil {
			return result{}, err
		}
		times = append(times, time.Since(start))
	}
	if _, err := conn.Exec(ctx, "SELECT pg_notify($1, 'end')", name); err != nil {
		return result{}, err
	}
	r := result{release: quantile.Nearest(times, 0.5)}
	for _, l := range ls {
		var rep report
		if !l.out.Scan() {
			return result{}, errors.Join(errors.New("a listener ended without its report"), ctx.Err())
		}
		if err := json.Unmarshal(l.out.Bytes(), &rep); err != nil {
			return result{}, err
		}
		if rep.Received != c.count {
			return result{}, fmt.Errorf("a listener received %d notices of %d", rep.Received, c.count)
		}
		r.arrival = append(r.arrival, time.Duration(rep.P50))
	}
	return r, nil
}

// report is a listener's last line.
type report struct {
	Received int   `json:"received"`
	P50      int64 `json:"p50"` // nanoseconds from a release's start to its notice's arrival
}

// listenArg, as the first argument, makes the program a listener of the channel in the second.
const listenArg = "-listen"

func isListener(args []string) bool { return len(args) == 3 && args[1] == listenArg }

// listenerMain runs a listener and returns its exit code.
func listenerMain() int {
	// The goroutine that watches stdin is the exception to every goroutine being waited for: it ends with
	// the process, which exits when the parent is gone and stdin ends.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	if err := listen(ctx, os.Getenv(dsnEnv), os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "notice listener:", err)
		return 1
	}
	return 0
}

// listen listens on channel until its "end" notice, then prints its report. The payloads, the releases'
// start times, must grow: a notice out of order or twice is an error.
func listen(ctx context.Context, dsn, channel string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return err
	}
	fmt.Println("ready")
	var ds []time.Duration
	var last int64
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		arrived := time.Now().UnixNano()
		if n.Payload == "end" {
			break
		}
		sent, err := strconv.ParseInt(n.Payload, 10, 64)
		if err != nil {
			return err
		}
		if sent <= last {
			return fmt.Errorf("notice of a release started at %d after one started at %d", sent, last)
		}
		last = sent
		ds = append(ds, time.Duration(arrived-sent))
	}
	b, err := json.Marshal(report{Received: len(ds), P50: int64(quantile.Nearest(ds, 0.5))})
	if err != nil {
		return err
	}
	fmt.Println(string(b))
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
