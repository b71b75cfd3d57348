// Command distrlock runs a command while holding a distributed lock stored in a SQL database, so that cron
// jobs, deploys and maintenance tasks on several hosts never overlap, and inspects and manages those locks.
//
// With no --dsn and no DISTRLOCK_DSN it uses a SQLite file in the user's state directory, created on first
// use, so it works on a single host with no set-up; postgres:// and mysql:// DSNs make it work across hosts.
// Run `distrlock help` for the commands, flags and exit codes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Exit codes. A command run by `distrlock run` exits with its own code, which may collide with these:
// scripts that must tell them apart should make their command avoid 64–78.
const (
	exitOK          = 0
	exitUsage       = 64 // bad flags or arguments (sysexits EX_USAGE)
	exitUnreachable = 69 // the database cannot be reached (EX_UNAVAILABLE)
	exitInternal    = 70 // an unexpected error (EX_SOFTWARE)
	exitHeld        = 75 // the lock is held by another (EX_TEMPFAIL: try again later)
	exitWaitTimeout = 76 // --wait ran out while another held the lock
	exitLeaseLost   = 77 // the lease was lost while the command ran; the command was stopped if still running
	exitNotFound    = 78 // release: the lock is not held under that token, or not held at all
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := newApp(os.Stdout, os.Stderr, os.Getenv).main(ctx, stop, os.Args[1:])
	stop()
	os.Exit(code)
}

// app is the tool with its outputs and environment, so that tests run it in-process too.
type app struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

func newApp(stdout, stderr io.Writer, getenv func(string) string) *app {
	return &app{stdout: stdout, stderr: stderr, getenv: getenv}
}

// main runs one command. stopSignals hands SIGINT and SIGTERM back to the caller's handling: `run` forwards
// them to its command instead of ending.
func (a *app) main(ctx context.Context, stopSignals func(), args []string) int {
	if len(args) == 0 {
		a.usage(a.stderr)
		return exitUsage
	}
	lead, args := leadingCommonFlags(args)
	if len(args) == 0 {
		a.errorf("no command after %s", strings.Join(lead, " "))
		a.usage(a.stderr)
		return exitUsage
	}
	// The command's own flag set parses the flags that came before it too.
	cmd, rest := args[0], append(lead, args[1:]...)
	switch cmd {
	case "run":
		stopSignals()
		return a.cmdRun(context.WithoutCancel(ctx), rest)
	case "migrate":
		return a.cmdMigrate(ctx, rest)
	case "list":
		return a.cmdList(ctx, rest)
	case "inspect":
		return a.cmdInspect(ctx, rest)
	case "release":
		return a.cmdRelease(ctx, rest)
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 {
			return a.main(ctx, stopSignals, []string{rest[0], "--help"})
		}
		a.usage(a.stdout)
		return exitOK
	default:
		a.errorf("unknown command %q", cmd)
		a.usage(a.stderr)
		return exitUsage
	}
}

func (a *app) usage(w io.Writer) {
	path, err := defaultSQLitePath()
	if err != nil {
		path = "(none: " + err.Error() + ")"
	}
	fmt.Fprintf(w, `distrlock runs a command while holding a distributed lock stored in a SQL database,
so that jobs on several hosts never overlap; and it lists, inspects and releases those locks.

Usage:
  distrlock run --key KEY [--ttl 1m] [--wait 30s] [--owner NAME] -- COMMAND [ARG...]
  distrlock migrate
  distrlock list [--prefix PREFIX] [--held]
  distrlock inspect KEY
  distrlock release KEY (--token TOKEN | --force)
  distrlock help [COMMAND]

Every command takes, before or after its name:
  --dsn DSN     the database: postgres://user@host:5432/db, mysql://user:pass@host:3306/db
                (MySQL and MariaDB) or sqlite:///path/to/file.db. Default: $DISTRLOCK_DSN,
                else the SQLite file %s (created on first use; one host only)
  --table NAME  the lock table (default distributed_locks)
  --json        print results as JSON

Exit codes:
  the command's own   run: the command ran (128+N if it died of signal N)
  64  bad usage                     69  database unreachable
  70  unexpected error              75  lock held by another (run without --wait)
  76  --wait ran out                77  lease lost while the command ran (stopped if still running)
  78  release: not held (under that token)
  126, 127  run: the command cannot be executed, or is not found
`, path)
}

// commonFlags are the flags every command takes.
type commonFlags struct {
	dsn   string
	table string
	json  bool
}

// leadingCommonFlags splits off the flags every command takes when they come before the command, as in
// `distrlock --dsn DSN list`. It stops at the first argument that is not one of them.
func leadingCommonFlags(args []string) (lead, rest []string) {
	for len(args) > 0 {
		name, _, hasValue := strings.Cut(strings.TrimLeft(args[0], "-"), "=")
		if !strings.HasPrefix(args[0], "-") || args[0] == "-" || args[0] == "--" {
			break
		}
		switch {
		case name == "json" || hasValue && (name == "dsn" || name == "table"):
			lead, args = append(lead, args[0]), args[1:]
		case (name == "dsn" || name == "table") && len(args) > 1:
			lead, args = append(lead, args[0], args[1]), args[2:]
		default:
			return lead, args
		}
	}
	return lead, args
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.dsn, "dsn", "", "database `DSN` (default $DISTRLOCK_DSN, else the local SQLite file)")
	fs.StringVar(&c.table, "table", "", "lock table `NAME` (default distributed_locks)")
	fs.BoolVar(&c.json, "json", false, "print results as JSON")
}

// newFlagSet returns a flag set for cmd whose errors and help go to the app's outputs.
func (a *app) newFlagSet(cmd, synopsis, about string) (*flag.FlagSet, *commonFlags) {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	c := &commonFlags{}
	c.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: distrlock %s\n\n%s\n\nFlags:\n", synopsis, about)
		fs.PrintDefaults()
	}
	return fs, c
}

// parse parses args; it reports an exit code when the command must stop (help or bad flags).
func (a *app) parse(fs *flag.FlagSet, args []string) (int, bool) {
	for _, arg := range args {
		if arg == "--" {
			break
		}
		if arg == "-h" || arg == "-help" || arg == "--help" {
			fs.SetOutput(a.stdout) // asked-for help is output, not an error
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	return 0, true
}

// parseInterleaved is parse for commands whose flags may come before or after their arguments
// (`release KEY --force`); it returns the arguments. A key that starts with "-" goes after "--".
func (a *app) parseInterleaved(fs *flag.FlagSet, args []string) ([]string, int, bool) {
	var positional []string
	for {
		if code, ok := a.parse(fs, args); !ok {
			return nil, code, false
		}
		if fs.NArg() == 0 {
			return positional, 0, true
		}
		positional, args = append(positional, fs.Arg(0)), fs.Args()[1:]
	}
}

// errorf prints a message on stderr, prefixed "distrlock: " once: the library's errors and log lines
// already begin with it.
func (a *app) errorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if !strings.HasPrefix(msg, "distrlock: ") {
		msg = "distrlock: " + msg
	}
	fmt.Fprintln(a.stderr, msg)
}
