// Command distrlock runs a command while holding a distributed lock stored in a SQL database, so that cron
// jobs, deploys and maintenance tasks on several hosts never overlap, and inspects and manages those locks.
//
// With no --dsn and no DISTRLOCK_DSN it uses a SQLite file in the user's state directory, created on first
// use, so it works on a single host with no set-up; postgres:// and mysql:// DSNs make it work across hosts.
// Run `distrlock help` for the commands, flags and exit codes.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Exit codes. A command run by `distrlock run` exits with its own code, which may collide with these:
// scripts that must tell them apart should make their command avoid 64–78.
const (
	exitOK          = 0
	exitUsage       = 64 // bad flags or arguments (sysexits EX_USAGE)
	exitConfig      = 65 // the database answered but refused the DSN or lacks the table (EX_DATAERR; 78 was taken)
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
	json           bool // --json: errors are JSON objects too
}

func newApp(stdout, stderr io.Writer, getenv func(string) string) *app {
	return &app{stdout: stdout, stderr: stderr, getenv: getenv}
}

// main runs one command. stopSignals hands SIGINT and SIGTERM back to the caller's handling: `run` forwards
// them to its command instead of ending.
func (a *app) main(ctx context.Context, stopSignals func(), args []string) int {
	a.json = wantsJSON(args)
	if len(args) == 0 {
		a.usage(a.stderr)
		return exitUsage
	}
	lead, args, err := leadingCommonFlags(args)
	if err != nil {
		return a.failf(exitUsage, "%v; see `distrlock help`", err)
	}
	if len(args) == 0 {
		if n := len(lead); n >= 2 && isCommand(lead[n-1]) && (lead[n-2] == "--dsn" || lead[n-2] == "-dsn" ||
			lead[n-2] == "--table" || lead[n-2] == "-table") {
			return a.failf(exitUsage, "%s needs a value before the command (%q was read as its value); see `distrlock help`",
				lead[n-2], lead[n-1])
		}
		return a.failf(exitUsage, "no command after %s; see `distrlock help`", strings.Join(lead, " "))
	}
	cmd := args[0]
	if isHelp(cmd) {
		// The common flags do not matter to help: `distrlock --dsn DSN help list` is list's help.
		return a.help(ctx, args[1:])
	}
	if !isCommand(cmd) {
		return a.failf(exitUsage, "unknown command %q; see `distrlock help`", cmd)
	}
	// The command's own flag set parses the flags that came before it too.
	return a.dispatch(ctx, stopSignals, cmd, append(lead, args[1:]...))
}

// commands are the commands main dispatches, in the order help lists them.
var commands = []string{"run", "migrate", "list", "inspect", "release", "prune"}

func isCommand(name string) bool {
	for _, c := range commands {
		if name == c {
			return true
		}
	}
	return false
}

func isHelp(arg string) bool {
	return arg == "help" || arg == "-h" || arg == "-help" || arg == "--help"
}

// dispatch runs cmd, one of commands, with its arguments.
func (a *app) dispatch(ctx context.Context, stopSignals func(), cmd string, args []string) int {
	switch cmd {
	case "run":
		stopSignals()
		return a.cmdRun(context.WithoutCancel(ctx), args)
	case "migrate":
		return a.cmdMigrate(ctx, args)
	case "list":
		return a.cmdList(ctx, args)
	case "inspect":
		return a.cmdInspect(ctx, args)
	case "prune":
		return a.cmdPrune(ctx, args)
	default:
		return a.cmdRelease(ctx, args)
	}
}

// help prints the help of the first command named in args, or the tool's when there is none (or it is
// help itself); flags in args are ignored.
func (a *app) help(ctx context.Context, args []string) int {
	topic := ""
	for _, arg := range args {
		if arg == "--" {
			break
		}
		if !strings.HasPrefix(arg, "-") {
			topic = arg
			break
		}
	}
	switch {
	case topic == "" || topic == "help":
		a.usage(a.stdout)
		return exitOK
	case isCommand(topic):
		return a.dispatch(ctx, func() {}, topic, []string{"--help"})
	default:
		return a.failf(exitUsage, "no help for unknown command %q; see `distrlock help`", topic)
	}
}

func (a *app) usage(w io.Writer) {
	path, err := defaultSQLitePath()
	if err != nil {
		path = "(none: " + err.Error() + ")"
	}
	fmt.Fprintf(w, `distrlock runs a command while holding a distributed lock stored in a SQL database,
so that jobs on several hosts never overlap; and it lists, inspects, releases and prunes those locks.

Usage:
  distrlock run --key KEY [--ttl 1m] [--wait D] [--owner NAME] [--grace D] -- COMMAND [ARG...]
  distrlock migrate
  distrlock list [--prefix PREFIX] [--held]
  distrlock inspect KEY
  distrlock release KEY (--token TOKEN | --force)
  distrlock prune --free-for D [--batch N]
  distrlock help [COMMAND]

run fails at once if another holds the lock; --wait D makes it wait for the lock for up to D.

Every command takes, before or after its name:
  --dsn DSN     the database: postgres://user@host:5432/db, mysql://user:pass@host:3306/db
                (MySQL and MariaDB) or sqlite:///path/to/file.db. Default: $DISTRLOCK_DSN,
                else the SQLite file %s (created on first use; one host only).
                A SQLite file named in a DSN (sqlite://relative.db is relative to the working
                directory) is created only by distrlock migrate
  --table NAME  the lock table (default distributed_locks)
  --json        print results as JSON on stdout, and errors as one JSON object a line on stderr:
                {"error": "…", "hint": "…", "code": 69, "kind": "unreachable"} (hint may be absent;
                notices that do not end the command are {"warning": "…"}). Durations are whole
                milliseconds, in fields named *_ms. run prints one line when COMMAND has ended:
                {"key", "fence", "owner", "exit_code" (distrlock's), "command_exit_code",
                "lease_lost", "waited_ms", "ran_ms"}

Exit codes:
  the command's own   run: the command ran (128+N if it died of signal N)
  64  bad usage
  65  the database answered but refused the DSN (user, password, database name, privileges),
      or has no lock table (create it with distrlock migrate); a SQLite file that is missing
  69  database unreachable: connection refused or timed out, unknown host
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
// `distrlock --dsn DSN list`. It stops at the first argument that is not one of them, and fails when
// --dsn or --table has no value.
func leadingCommonFlags(args []string) (lead, rest []string, err error) {
	for len(args) > 0 {
		name, _, hasValue := strings.Cut(strings.TrimLeft(args[0], "-"), "=")
		if !strings.HasPrefix(args[0], "-") || args[0] == "-" || args[0] == "--" {
			break
		}
		switch {
		case name == "json" || hasValue && (name == "dsn" || name == "table"):
			lead, args = append(lead, args[0]), args[1:]
		case name == "dsn" || name == "table":
			// No DSN or table name starts with "-": a flag there means the value was left out.
			if len(args) == 1 || strings.HasPrefix(args[1], "-") {
				return nil, nil, fmt.Errorf("--%s needs a value", name)
			}
			lead, args = append(lead, args[0], args[1]), args[2:]
		default:
			return lead, args, nil
		}
	}
	return lead, args, nil
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.dsn, "dsn", "", "database `DSN` (default $DISTRLOCK_DSN, else the local SQLite file)")
	fs.StringVar(&c.table, "table", "", "lock table `NAME` (default distributed_locks)")
	fs.BoolVar(&c.json, "json", false, "print results as JSON")
}

// newFlagSet returns a flag set for cmd. The flag package's own messages are silenced: parse prints the
// help on stdout when asked, and one line naming the flag otherwise.
func (a *app) newFlagSet(cmd, synopsis, about string) (*flag.FlagSet, *commonFlags) {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
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
	err := fs.Parse(args)
	switch {
	case err == nil:
		return 0, true
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(a.stdout) // asked-for help is output, not an error
		fs.Usage()
		return exitOK, false
	default:
		return a.failf(exitUsage, "%s: %s; see `distrlock %s --help`", fs.Name(), flagProblem(err), fs.Name()), false
	}
}

// The flag package's messages, which name flags with one dash.
var (
	flagBadValue = regexp.MustCompile(`^invalid (?:boolean )?value ("(?:[^"\\]|\\.)*") for (?:flag )?-(\S+): (.*)$`)
	flagNoValue  = regexp.MustCompile(`^flag needs an argument: -(\S+)$`)
	flagUnknown  = regexp.MustCompile(`^flag provided but not defined: -(\S+)$`)
)

// flagProblem rewrites a flag package error to name the flag as the help does, with two dashes.
func flagProblem(err error) string {
	msg := err.Error()
	if m := flagBadValue.FindStringSubmatch(msg); m != nil {
		if strings.HasPrefix(msg, "invalid boolean") {
			m[3] = "want true or false"
		}
		return fmt.Sprintf("bad value %s for --%s: %s", m[1], m[2], m[3])
	}
	if m := flagNoValue.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("--%s needs a value", m[1])
	}
	if m := flagUnknown.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("unknown flag --%s", m[1])
	}
	return msg
}

// durationFlag is a flag.Value for a time.Duration whose parse errors say what a duration looks like.
type durationFlag struct{ d *time.Duration }

func newDurationFlag(fs *flag.FlagSet, name string, value time.Duration, usage string) *time.Duration {
	d := value
	fs.Var(durationFlag{&d}, name, usage)
	return &d
}

func (f durationFlag) String() string {
	if f.d == nil || *f.d == 0 {
		return ""
	}
	return f.d.String()
}

func (f durationFlag) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("want a number with a unit (ms, s, m, h), like 500ms, 30s, 10m or 1h30m")
	}
	*f.d = d
	return nil
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

// warnf prints a notice that does not end the command on stderr: a line prefixed "distrlock: " once (the
// library's errors and log lines already begin with it), or {"warning": …} under --json.
func (a *app) warnf(format string, args ...any) {
	msg := strings.TrimPrefix(fmt.Sprintf(format, args...), "distrlock: ")
	if a.json {
		a.printLine(map[string]string{"warning": msg})
		return
	}
	fmt.Fprintln(a.stderr, "distrlock: "+msg)
}

// failf reports an error that ends the command, and returns code, the exit code to end with.
func (a *app) failf(code int, format string, args ...any) int {
	return a.fail(code, fmt.Sprintf(format, args...), "")
}

// errorJSON is an error under --json.
type errorJSON struct {
	Error string `json:"error"`
	Hint  string `json:"hint,omitempty"` // what to do about it
	Code  int    `json:"code"`           // the exit code
	Kind  string `json:"kind"`
}

// fail reports msg, and what to do about it (hint, if not empty), on stderr and returns code: as text, or
// under --json as one line of JSON.
func (a *app) fail(code int, msg, hint string) int {
	msg = strings.TrimPrefix(msg, "distrlock: ")
	if a.json {
		a.printLine(errorJSON{Error: msg, Hint: hint, Code: code, Kind: kindOf(code)})
		return code
	}
	if hint != "" {
		msg += "\n  " + hint
	}
	fmt.Fprintln(a.stderr, "distrlock: "+msg)
	return code
}

// printLine prints v on stderr as one line of JSON.
func (a *app) printLine(v any) {
	enc := json.NewEncoder(a.stderr)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// kindOf names an exit code in JSON errors.
func kindOf(code int) string {
	switch code {
	case exitUsage:
		return "usage"
	case exitConfig:
		return "config"
	case exitUnreachable:
		return "unreachable"
	case exitHeld:
		return "held"
	case exitWaitTimeout:
		return "wait_timeout"
	case exitLeaseLost:
		return "lease_lost"
	case exitNotFound:
		return "not_held"
	case 126:
		return "cannot_execute"
	case 127:
		return "command_not_found"
	default:
		return "internal"
	}
}

// wantsJSON reports whether args ask for --json anywhere before COMMAND's "--", so that errors found
// before the flags are parsed are JSON too.
func wantsJSON(args []string) bool {
	on := false
	for _, arg := range args {
		if arg == "--" {
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		if !strings.HasPrefix(arg, "-") || name != "json" {
			continue
		}
		on = true
		if hasValue {
			on, _ = strconv.ParseBool(value)
		}
	}
	return on
}
