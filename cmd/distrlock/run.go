package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"time"

	"github.com/distrlock/distrlock"
)

// Defaults of `distrlock run`.
const (
	defaultRunTTL = time.Minute
	releaseWithin = 5 * time.Second // or the TTL if shorter: past it, the lease has ended anyway
	// minRunTTL leaves the heartbeat (every third of the TTL) time for a round trip to a remote database.
	minRunTTL = time.Second
)

func (a *app) cmdRun(ctx context.Context, args []string) int {
	fs, cf := a.newFlagSet("run", "run --key KEY [--ttl 1m] [--wait D] [--owner NAME] [--grace D] -- COMMAND [ARG...]",
		`Takes the lock KEY, runs COMMAND while extending the lease, and frees the lock when COMMAND ends.
COMMAND gets DISTRLOCK_KEY, DISTRLOCK_TOKEN and DISTRLOCK_FENCE in its environment; the fence grows with
every acquisition, so COMMAND can pass it to services that reject stale holders. Signals sent to
distrlock (INT, TERM, HUP, QUIT, USR1, USR2) go to COMMAND's process group.

If the lease may be lost (the database stops answering, or reports the lock gone), COMMAND's process
group gets SIGTERM and, after --grace, SIGKILL, before the lease can end; distrlock then exits with 77,
as it does when it finds at the end that the lock was released or taken meanwhile. Run from a terminal,
COMMAND gets the terminal (it can read from it, and Ctrl-C goes to it); Ctrl-Z is ignored.`)
	key := fs.String("key", "", "the lock's `KEY` (required)")
	ttl := newDurationFlag(fs, "ttl", defaultRunTTL, "lease `duration`; extended every third of it while COMMAND runs")
	wait := newDurationFlag(fs, "wait", 0, "wait at most `D` for the lock if another holds it (default: fail at once)")
	owner := fs.String("owner", "", "owner `NAME` stored with the lock (default HOST/pid-PID)")
	grace := newDurationFlag(fs, "grace", 0, "time `D` between SIGTERM and SIGKILL when the lease is lost (default: TTL/8)")
	if code, ok := a.parse(fs, args); !ok {
		return code
	}
	command := fs.Args()
	switch {
	case *key == "":
		return a.failf(exitUsage, "run needs --key KEY")
	case len(command) == 0:
		return a.failf(exitUsage, "run needs a COMMAND after --")
	case *wait < 0:
		return a.failf(exitUsage, "--wait must not be negative")
	case *ttl < minRunTTL || *ttl > distrlock.MaxTTL:
		return a.failf(exitUsage, "--ttl %v must be between %v and %v", *ttl, minRunTTL, distrlock.MaxTTL)
	}
	// The work must be dead before the lease can end: stop it with a margin of a quarter of the TTL, of
	// which the command gets half to exit after SIGTERM.
	margin := *ttl / 4
	if *grace == 0 {
		*grace = *ttl / 8
	}
	if *grace <= 0 || *grace >= margin {
		return a.failf(exitUsage, "--grace %v must be positive and shorter than a quarter of --ttl (%v)", *grace, margin)
	}

	c, code, ok := a.open(ctx, cf, false)
	if !ok {
		return code
	}
	defer c.Close()
	lock, err := c.m.NewLock(ctx, c.db, *key)
	if err != nil {
		return a.explain(c, err)
	}
	lock.Owner = *owner
	if lock.Owner == "" {
		lock.Owner = defaultOwner()
	}
	opts := []distrlock.DoOption{
		distrlock.WithLockTTL(*ttl), distrlock.WithPeriodicExtendInterval(*ttl / 3),
		distrlock.WithSafetyMargin(margin), distrlock.WithReleaseTimeout(min(releaseWithin, *ttl)),
		distrlock.WithLogger(stderrLogger{a}),
	}
	if *wait > 0 {
		opts = append(opts, distrlock.WithWait(*wait))
	}
	waitStart := time.Now()
	lease, err := lock.Hold(ctx, c.db, opts...)
	switch {
	case errors.Is(err, distrlock.ErrWaitTimeout):
		return a.failf(exitWaitTimeout, "lock %q is still held by another after waiting %v", *key, *wait)
	case errors.Is(err, distrlock.ErrLockAlreadyAcquired):
		return a.failf(exitHeld, "%s", a.holder(ctx, c, *key))
	case err != nil:
		return a.explain(c, err)
	}
	waited := time.Since(waitStart)

	out := a.runUnderLease(lease, *grace, command)
	if !out.started {
		_ = lease.Release(context.Background())
		return out.exit
	}
	code, failure := out.exit, ""
	if out.lostCause != nil {
		failure = fmt.Sprintf("the lease of lock %q was lost while %s ran (%v); %s was stopped", *key, command[0], out.lostCause, command[0])
	}
	err = lease.Release(context.Background())
	switch {
	case err == nil:
	case errors.Is(err, distrlock.ErrLockLost):
		// Also when the command ended at the moment the lease was lost, before runUnderLease saw it.
		if code != exitLeaseLost {
			code, failure = exitLeaseLost, fmt.Sprintf("%v: the lease may have ended before %s did", err, command[0])
		}
	case errors.Is(err, distrlock.ErrLockAlreadyReleased):
		// Between two extends someone released or took the lock: part of the command ran unprotected.
		code, failure = exitLeaseLost, fmt.Sprintf("the lock was no longer held under this run's token when %s ended: it was released "+
			"(distrlock release --force?) or taken by another while the command ran, so part of its work was not protected", command[0])
	default:
		a.warnf("releasing the lock: %v (it will expire within %v)", err, *ttl)
	}
	if cf.json {
		line, _ := json.Marshal(runJSON{Key: *key, Fence: lease.Fence(), Owner: lock.Owner, ExitCode: code,
			CommandExitCode: out.command, LeaseLost: code == exitLeaseLost, WaitedMS: millis(waited), RanMS: millis(out.ran)})
		fmt.Fprintf(a.stdout, "%s\n", line)
	}
	if failure != "" {
		return a.failf(code, "%s", failure)
	}
	return code
}

// runJSON is what run --json prints when COMMAND has ended.
type runJSON struct {
	Key             string `json:"key"`
	Fence           int64  `json:"fence"`
	Owner           string `json:"owner"`
	ExitCode        int    `json:"exit_code"`         // distrlock's
	CommandExitCode int    `json:"command_exit_code"` // COMMAND's, 128+N if it died of signal N
	LeaseLost       bool   `json:"lease_lost"`
	WaitedMS        int64  `json:"waited_ms"` // from the first attempt to the acquisition
	RanMS           int64  `json:"ran_ms"`    // from COMMAND's start to its exit
}

// holder says who holds the lock, when that can be read.
func (a *app) holder(ctx context.Context, c *conn, key string) string {
	i, err := c.m.Get(ctx, c.db, key)
	if err != nil || !i.Held {
		return fmt.Sprintf("lock %q is held by another; use --wait D to wait for it", key)
	}
	return fmt.Sprintf("lock %q is held by %s (fence %d) for another %v; use --wait D to wait for it",
		key, orDash(i.Owner), i.Fence, i.Remaining.Round(time.Millisecond))
}

// outcome is how a command run under a lease ended.
type outcome struct {
	exit      int  // the code distrlock must end with
	started   bool // whether the command started
	command   int  // the command's exit code, 128+N if it died of signal N
	ran       time.Duration
	lostCause error // why the lease was lost while the command ran, if it was
}

// runUnderLease runs command until it exits, stopping it if the lease is lost.
func (a *app) runUnderLease(lease *distrlock.Lease, grace time.Duration, command []string) outcome {
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(),
		"DISTRLOCK_KEY="+lease.Key(),
		"DISTRLOCK_TOKEN="+lease.Token(),
		"DISTRLOCK_FENCE="+strconv.FormatInt(lease.Fence(), 10),
	)
	ownProcessGroup(cmd)
	// Catch signals before the command starts, so none is lost in between.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwardedSignals...)
	defer signal.Stop(sigs)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		code := 126
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			code = 127
		}
		return outcome{exit: a.failf(code, "cannot start %s: %v", command[0], err)}
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	lost := lease.Context().Done()
	var lostCause error
	var kill <-chan time.Time
	for {
		select {
		case sig := <-sigs:
			signalGroup(cmd, sig)
		case <-lost:
			lost = nil
			lostCause = context.Cause(lease.Context())
			a.warnf("%v\n  stopping %s: SIGTERM now, SIGKILL in %v", lostCause, command[0], grace)
			terminateGroup(cmd)
			kill = time.After(grace)
		case <-kill:
			kill = nil
			killGroup(cmd)
		case err := <-exited:
			restoreTerminal(cmd)
			out := outcome{exit: exitCodeOf(err), started: true, command: exitCodeOf(err), ran: time.Since(start)}
			if lostCause != nil {
				// The command has exited; what it started in its process group must not go on either.
				killGroup(cmd)
				out.exit, out.lostCause = exitLeaseLost, lostCause
			}
			return out
		}
	}
}

// exitCodeOf turns the command's end into distrlock's exit code, as a shell would.
func exitCodeOf(err error) int {
	if err == nil {
		return exitOK
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if sig, ok := signaled(ee); ok {
			return 128 + sig
		}
		return ee.ExitCode()
	}
	return exitInternal
}

// stderrLogger reports the heartbeat's failures on stderr.
type stderrLogger struct{ a *app }

func (l stderrLogger) Errorf(format string, args ...any) { l.a.warnf(format, args...) }

func defaultOwner() string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown-host"
	}
	return fmt.Sprintf("%s/pid-%d", host, os.Getpid())
}
