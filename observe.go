package distrlock

// Observability: the Observer hook, the events it receives, and the log/slog logger.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// Observer receives every [Event] of the locks, waits and elections of a manager made with [WithObserver].
// ObserveLock is called synchronously, on the goroutine that did the operation (a heartbeat's for extends and
// losses), with the caller's context: it must be safe for concurrent use and return quickly.
type Observer interface {
	ObserveLock(ctx context.Context, e Event)
}

// SpanObserver is an [Observer] that also opens a scope, such as a trace span, around each acquire
// statement, wait and release, so that what the driver records for the statements nests in it. StartSpan
// gets the event that opens the scope (EventAcquire with Key alone before the statement, EventWaitStarted,
// or EventRelease with Key, Fence and Owner before the statement); the context it returns carries the
// operation's statements and is the one ObserveLock gets with the event that ends it (EventAcquire,
// EventWaitEnded, EventRelease). For EventWaitStarted, ObserveLock gets that context too.
type SpanObserver interface {
	Observer
	StartSpan(ctx context.Context, e Event) context.Context
}

// JoinObservers returns an observer that gives every event to each of observers in turn, and opens the
// scopes of those that are [SpanObserver]s, so that several adapters can watch one manager.
func JoinObservers(observers ...Observer) SpanObserver {
	return joined(slices.DeleteFunc(slices.Clone(observers), func(o Observer) bool { return o == nil }))
}

type joined []Observer

func (j joined) ObserveLock(ctx context.Context, e Event) {
	for _, o := range j {
		o.ObserveLock(ctx, e)
	}
}

// StartSpan opens each SpanObserver's scope inside the previous one's; each finds its own in the context
// ObserveLock gets.
func (j joined) StartSpan(ctx context.Context, e Event) context.Context {
	for _, o := range j {
		if s, ok := o.(SpanObserver); ok {
			ctx = s.StartSpan(ctx, e)
		}
	}
	return ctx
}

// ObserverFunc makes a function an [Observer].
type ObserverFunc func(ctx context.Context, e Event)

// ObserveLock calls f.
func (f ObserverFunc) ObserveLock(ctx context.Context, e Event) { f(ctx, e) }

// EventKind says what an [Event] reports.
type EventKind int

// The kinds of [Event]; which fields each sets is said at [Event].
const (
	// EventAcquire is one acquire statement: of Acquire, AcquireWithStaticToken, or an attempt of a wait.
	EventAcquire EventKind = iota + 1
	// EventWaitStarted is a waiting acquire whose first attempt was refused, or that queued without one: it
	// now waits for the holder.
	EventWaitStarted
	// EventWaitEnded is the end of a wait that EventWaitStarted reported, with or without the lock.
	EventWaitEnded
	// EventExtend is one extend of a lease: by a heartbeat (Shared when the statement extended other
	// locks too) or by Extend and ExtendTTL.
	EventExtend
	// EventLeaseLost is a heartbeat's lease that may have ended on the server; the work's context is
	// cancelled with Err as its cause.
	EventLeaseLost
	// EventRelease is one Release statement.
	EventRelease
	// EventNewLeader is a new term or value read by [Election.Observe] (or Run's OnNewLeader).
	EventNewLeader
	// EventStartedLeading is this candidate starting a term ([Election.Campaign] won).
	EventStartedLeading
	// EventStoppedLeading is the end of this candidate's term: resigned, or lost.
	EventStoppedLeading
)

var eventKindNames = [...]string{
	EventAcquire: "acquire", EventWaitStarted: "wait_started", EventWaitEnded: "wait_ended", EventExtend: "extend",
	EventLeaseLost: "lease_lost", EventRelease: "release", EventNewLeader: "new_leader",
	EventStartedLeading: "started_leading", EventStoppedLeading: "stopped_leading",
}

// String returns the kind's name in snake case ("acquire", "wait_ended", "lease_lost"…).
func (k EventKind) String() string {
	if k > 0 && int(k) < len(eventKindNames) {
		return eventKindNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is one thing that happened to a lock. Key is set for every kind (an election's name for the
// election kinds); the token is never part of an event, as it releases the lock.
//
//   - EventAcquire: Fence and Owner when taken; Err nil when taken, else the acquire's error (matching
//     [ErrLockAlreadyAcquired] when held by another); Duration is the statement's latency.
//   - EventWaitStarted: Attempts counts the acquire statements sent so far: 1, or 0 when waiters of the
//     same manager were queued already or its release had just freed the lock for queued waiters.
//   - EventWaitEnded: Err as the wait returns it; Duration since the wait began (its first attempt, or
//     the pause before it after a release of its manager, see docs/design.md);
//     Attempts counts the acquire statements of the whole wait; Fence and Owner when taken.
//   - EventExtend: Fence, Owner; Err nil when extended; Shared when the heartbeat's statement extended other
//     locks too; Duration is the statement's latency.
//   - EventLeaseLost: Fence, Owner; Err matches [ErrLockLost] and holds the cause.
//   - EventRelease: Fence, Owner; Err nil when released, else the release's error (matching
//     [ErrLockAlreadyReleased] when the lock was not held any more); Duration is the statement's latency.
//   - EventNewLeader: Fence is the term (0: no leader), Owner the leader's identity.
//   - EventStartedLeading, EventStoppedLeading: Fence is the term, Owner this candidate's identity;
//     EventStoppedLeading's Err matches ErrLockLost when the term's lease was lost.
type Event struct {
	Kind     EventKind
	Key      string
	Fence    int64
	Owner    string
	Err      error
	Duration time.Duration
	Attempts int
	Shared   bool
}

// Outcomes returned by [Event.Outcome], a bounded label for metrics.
const (
	OutcomeOK        = "ok"
	OutcomeContended = "contended" // ErrLockAlreadyAcquired: another holder
	OutcomeTimeout   = "timeout"   // a wait that ran out (ErrWaitTimeout) or whose context ended
	OutcomeNotHeld   = "not_held"  // ErrLockAlreadyReleased
	OutcomeLost      = "lost"      // ErrLockLost
	OutcomeError     = "error"     // anything else: the database failed
)

// Outcome classifies e.Err into one of the Outcome constants.
func (e Event) Outcome() string {
	switch err := e.Err; {
	case err == nil:
		return OutcomeOK
	case errors.Is(err, ErrLockLost):
		return OutcomeLost
	case errors.Is(err, ErrWaitTimeout), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return OutcomeTimeout
	case errors.Is(err, ErrLockAlreadyAcquired):
		return OutcomeContended
	case errors.Is(err, ErrLockAlreadyReleased):
		return OutcomeNotHeld
	default:
		return OutcomeError
	}
}

// WithObserver makes every lock, wait and election of the manager report its events to o; see [Event]
// and, for scopes around the operations, [SpanObserver]. Default: none, and then no event is built.
func WithObserver(o Observer) DBManagerOption {
	return func(mo *dbManagerOptions) { mo.observer = o }
}

// WithManagerLogger sets the logger of every lock, wait and election of the manager that is not given one
// with [WithLogger] or [WithElectionLogger]; a [SlogLogger] also gets the Debug, Warn and Error records
// described at [SlogLogger]. Default: nothing is logged.
func WithManagerLogger(logger Logger) DBManagerOption {
	return func(mo *dbManagerOptions) { mo.logger = logger }
}

// SlogLogger returns a [Logger] for [WithLogger], [WithElectionLogger] and [WithManagerLogger] that writes
// to l with the caller's context and the attributes distrlock.key, distrlock.fence and distrlock.owner:
// acquires, waits and releases at Debug, a failed extend that will be retried and an acquire the database
// failed at Warn, a lost lease and a failed release at Error. A nil l makes a Logger that logs nothing.
func SlogLogger(l *slog.Logger) Logger { return &slogLogger{l: l} }

// slogLogger is what SlogLogger returns; the package logs through log, its Errorf is for callers that
// use it as a plain Logger.
type slogLogger struct{ l *slog.Logger }

func (s *slogLogger) Errorf(format string, args ...any) {
	if s.l != nil {
		s.l.Error(fmt.Sprintf(format, args...))
	}
}

func (s *slogLogger) log(ctx context.Context, level slog.Level, key string, fence int64, owner string, msg string, attrs ...slog.Attr) {
	if s.l == nil || !s.l.Enabled(ctx, level) {
		return
	}
	base := []slog.Attr{slog.String("distrlock.key", key)}
	if fence != 0 {
		base = append(base, slog.Int64("distrlock.fence", fence))
	}
	if owner != "" {
		base = append(base, slog.String("distrlock.owner", owner))
	}
	s.l.LogAttrs(ctx, level, msg, append(base, attrs...)...)
}

// observing reports whether events of the call with logger (nil: the manager's) go anywhere, so that
// none is built otherwise.
func (m *DBManager) observing(logger Logger) bool {
	if m.observer != nil {
		return true
	}
	if logger == nil {
		logger = m.logger
	}
	_, ok := logger.(*slogLogger)
	return ok
}

// startSpan opens the observer's scope for e when it is a SpanObserver, and returns the context the
// operation runs under.
func (m *DBManager) startSpan(ctx context.Context, e Event) context.Context {
	if m.spans == nil {
		return ctx
	}
	return m.spans.StartSpan(ctx, e)
}

// emit gives e to the manager's observer and logs it to a slog logger (logger, or else the manager's).
func (m *DBManager) emit(ctx context.Context, logger Logger, e Event) {
	if m.observer != nil {
		m.observer.ObserveLock(ctx, e)
	}
	if logger == nil {
		logger = m.logger
	}
	s, ok := logger.(*slogLogger)
	if !ok || s.l == nil {
		return
	}
	level, msg := slog.LevelDebug, ""
	switch e.Kind {
	case EventAcquire:
		if e.Outcome() == OutcomeError {
			// Not contention: the database failed, which an operator wants to see.
			level = slog.LevelWarn
		}
	case EventLeaseLost:
		level, msg = slog.LevelError, "distrlock: lease lost"
	case EventExtend:
		if e.Err != nil {
			// A heartbeat retries a failed extend while the lease is safe, and reports EventLeaseLost when
			// it is not; a caller's own Extend decides for itself. Either way the lock may still be held.
			level, msg = slog.LevelWarn, "distrlock: extend failed"
		}
	case EventRelease:
		if e.Err != nil && !errors.Is(e.Err, ErrLockAlreadyReleased) {
			level = slog.LevelError
		}
	case EventNewLeader, EventStartedLeading, EventStoppedLeading:
		level = slog.LevelInfo
	}
	// Nothing is built for a level the handler drops.
	if !s.l.Enabled(ctx, level) {
		return
	}
	if msg == "" {
		msg = eventMessages[e.Kind]
	}
	var attrs []slog.Attr
	if e.Duration != 0 {
		attrs = append(attrs, slog.Duration("duration", e.Duration))
	}
	if e.Attempts != 0 {
		attrs = append(attrs, slog.Int("attempts", e.Attempts))
	}
	if e.Err != nil {
		attrs = append(attrs, slog.String("outcome", e.Outcome()), slog.Any("error", e.Err))
	}
	if e.Kind == EventExtend && e.Err == nil {
		attrs = append(attrs, slog.Bool("shared", e.Shared))
	}
	s.log(ctx, level, e.Key, e.Fence, e.Owner, msg, attrs...)
}

// eventMessages are the log messages of the event kinds: "distrlock: " and the kind's name.
var eventMessages = func() [len(eventKindNames)]string {
	var ms [len(eventKindNames)]string
	for k, name := range eventKindNames {
		ms[k] = "distrlock: " + name
	}
	return ms
}()
