// Command notice measures the part of a push hand-over on PostgreSQL that no lock table can avoid: a
// release, an UPDATE that commits without waiting for the disk and publishes with pg_notify, until its
// notice reaches a listening process. One process releases every -idle, -count times; each of -listeners
// other processes (each run, one line of the table) listens on its own connection and reports when the
// notices arrived. A design in which the release itself handed the lock to the next waiter would still pay
// this; every design today also sends the next holder's statement after it (bench/fleet measures that).
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
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

func main() {
	if len(os.Args) > 3 && os.Args[1] == "-listen" {
		if err := listen(os.Args[2], os.Args[3]); err != nil {
			fmt.Fprintln(os.Stderr, "notice listener:", err)
			os.Exit(1)
		}
		return
	}
	var c config
	fs := flag.NewFlagSet("notice", flag.ExitOnError)
	fs.StringVar(&c.listeners, "listeners", "1,2,3,4", "comma-separated numbers of listening processes, one run each")
	fs.IntVar(&c.count, "count", 1500, "releases per run")
	fs.DurationVar(&c.idle, "idle", 5*time.Millisecond, "pause before each release, as a holder's hold")
	_ = fs.Parse(os.Args[1:])
	c.dsn = os.Getenv("DISTRLOCK_POSTGRES_DSN")
	if c.dsn == "" {
		c.dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	if err := run(context.Background(), os.Stdout, c); err != nil {
		fmt.Fprintln(os.Stderr, "notice:", err)
		os.Exit(1)
	}
}

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

// measure runs n listening processes and the releases.
func measure(ctx context.Context, c config, n int) (result, error) {
	ctx, cancel := context.WithCancel(ctx)
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
	defer conn.Exec(context.WithoutCancel(ctx), "DROP TABLE "+table)

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
		cmd := exec.CommandContext(ctx, self, "-listen", c.dsn, name)
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
			return result{}, errors.New("a listener did not start")
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
	r := result{release: p50(times)}
	for _, l := range ls {
		var rep report
		if !l.out.Scan() {
			return result{}, errors.New("a listener ended without its report")
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

// listen listens on channel until its "end" notice, then prints its report. It gives up when its stdin
// ends: the parent is gone.
func listen(dsn, channel string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
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
		ds = append(ds, time.Duration(arrived-sent))
	}
	b, err := json.Marshal(report{Received: len(ds), P50: int64(p50(ds))})
	if err != nil {
		return err
	}
	fmt.Println(string(b))
	return nil
}

func p50(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
