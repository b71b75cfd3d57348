package distrlock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"time"
)

// Logger receives the errors DoExclusively cannot return: failed extensions and releases. go-dbkit's
// loggers, every logrus logger (a FieldLogger gets the fields distrlock_key and distrlock_fence) and
// [SlogLogger] satisfy it. No token is ever logged: it is a release credential.
type Logger interface {
	Errorf(format string, args ...any)
}

func newDoOptions(options []DoOption) (doOptions, error) {
	o := doOptions{lockTTL: DefaultLockTTL, releaseTimeout: DefaultReleaseTimeout}
	for _, opt := range options {
		opt(&o)
	}
	// go-dbkit reads 0 as "the default" for the TTL, the interval and the release timeout; negative
	// values are errors.
	if o.lockTTL == 0 {
		o.lockTTL = DefaultLockTTL
	}
	if o.releaseTimeout == 0 {
		o.releaseTimeout = DefaultReleaseTimeout
	}
	if err := validateTTL(o.lockTTL); err != nil {
		return o, err
	}
	if o.tokenSet {
		if err := validateToken(o.token); err != nil {
			return o, err
		}
	}
	if !o.marginSet {
		o.safetyMargin = o.lockTTL / DefaultSafetyMarginDivisor
	}
	if o.periodicExtendInterval == 0 {
		o.periodicExtendInterval = o.lockTTL / 2
	}
	switch {
	case o.safetyMargin < 0 || o.safetyMargin >= o.lockTTL:
		return o, fmt.Errorf("%w: safety margin %v must be in [0, TTL %v)", ErrInvalidOption, o.safetyMargin, o.lockTTL)
	case o.periodicExtendInterval < 0:
		return o, fmt.Errorf("%w: extend interval %v is negative", ErrInvalidOption, o.periodicExtendInterval)
	case o.releaseTimeout <= 0:
		return o, fmt.Errorf("%w: release timeout %v must be positive", ErrInvalidOption, o.releaseTimeout)
	case o.maxWait < 0:
		return o, fmt.Errorf("%w: maximum wait %v is negative", ErrInvalidOption, o.maxWait)
	case o.atLeast < 0 || o.atLeast > MaxTTL:
		return o, fmt.Errorf("%w: least hold %v must be in [0, %v]", ErrInvalidOption, o.atLeast, MaxTTL)
	case o.atLeast > 0 && o.tokenSet:
		// The kept lease stays under the token, and an acquire with the same token takes it back: the job
		// would run again within its period.
		return o, fmt.Errorf("%w: WithLockAtLeastFor cannot be combined with WithToken", ErrInvalidOption)
	case o.atLeast > 0 && o.maxWait > 0:
		// A waiter takes the lock when the kept lease ends, and runs the job a second time.
		return o, fmt.Errorf("%w: WithLockAtLeastFor cannot be combined with WithWait", ErrInvalidOption)
	}
	// go-dbkit accepted an interval as long as the TTL, or longer: the lease then runs out before the first
	// extend. The heartbeat's watchdog still cancels the work before that, so it is a warning, not an error.
	o.intervalTooLong = o.periodicExtendInterval >= o.lockTTL-o.safetyMargin
	return o, nil
}

// DoExclusively acquires the lock on db, runs fn while extending the lease in the background, and releases
// the lock when fn returns; fn's context carries ctx's values and is cancelled, with cause [ErrLockLost], as
// soon as the lease may have ended on the server. It returns the acquire error (matching
// [ErrLockAlreadyAcquired] when the lock is held), fn's error, an error matching ErrLockLost, or, when both,
// one that matches fn's error and ErrLockLost. The release runs on [context.WithoutCancel] of ctx, bounded by
// the release timeout, and a failed release is logged.
func (l *DBLock) DoExclusively(ctx context.Context, db *sql.DB, fn func(ctx context.Context) error, options ...DoOption) error {
	const op = "do exclusively"
	o, err := newDoOptions(options)
	if err != nil {
		return opError(op, l.Key, err)
	}
	workCtx, cancelWork := context.WithCancelCause(ctx)
	defer cancelWork(nil)
	hb, err := l.acquireAndBeat(ctx, op, db, o, cancelWork)
	if err != nil {
		return err
	}
	var fnErr, lost error
	func() {
		// Deferred so that a panic in fn also stops the heartbeat and frees the lock before it unwinds on.
		defer func() {
			lost = hb.stop()
			// Whatever fn left running on its context stops before the lock is free for another holder.
			cancelWork(context.Canceled)
			l.release(ctx, db, o)
		}()
		fnErr = fn(workCtx)
	}()
	switch {
	case lost != nil && fnErr != nil:
		return &lostError{fnErr: fnErr, lost: opError(op, l.Key, lost)}
	case lost != nil:
		return opError(op, l.Key, lost)
	}
	return fnErr
}

// lostError is what DoExclusively returns when fn failed after the lease was lost: fn's error, as go-dbkit
// returned it, which also matches [ErrLockLost].
type lostError struct{ fnErr, lost error }

func (e *lostError) Error() string   { return e.fnErr.Error() }
func (e *lostError) Unwrap() []error { return []error{e.fnErr, e.lost} }

// acquireAndBeat takes the lock as o says (once, or waiting) and starts its heartbeat, which calls
// cancelWork when the lease may be lost. If the acquire's outcome was lost, it frees the lock in case it
// was taken.
func (l *DBLock) acquireAndBeat(ctx context.Context, op string, db *sql.DB, o doOptions, cancelWork context.CancelCauseFunc) (*heartbeat, error) {
	if db == nil {
		return nil, opError(op, l.Key, ErrNilExecutor)
	}
	if o.logger != nil {
		// The acquire's events go to the call's logger.
		l.logger = o.logger
		defer func() { l.logger = nil }()
	}
	if o.ownerSet || o.dataSet {
		// The options apply to this acquisition only: the caller's DBLock keeps its own Owner and Data.
		owner, data := l.Owner, l.Data
		defer func() { l.Owner, l.Data = owner, data }()
		if o.ownerSet {
			l.Owner = o.owner
		}
		if o.dataSet {
			l.Data = o.data
		}
	}
	// The lease is counted from the start of the statement that took the lock: after a wait, the last one.
	start := time.Now()
	var err error
	switch {
	case o.maxWait > 0:
		start, err = l.acquireWait(ctx, db, "acquire wait", o.token, o.lockTTL, o.maxWait)
	case o.tokenSet:
		// The same token takes back the lease it holds (a restarted process); if the outcome is lost, the
		// release below frees that lease too.
		err = l.AcquireWithStaticToken(ctx, db, o.token, o.lockTTL)
	default:
		err = l.Acquire(ctx, db, o.lockTTL)
	}
	if err != nil {
		if l.pending != "" {
			// The outcome was lost: free the lock in case this attempt (or an earlier lost one, whose
			// token it sent again) took it. A hold the DBLock had before the call is the caller's business.
			relCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.releaseTimeout)
			relErr := l.releaseToken(relCtx, db, l.pending)
			cancel()
			switch {
			case relErr == nil || errors.Is(relErr, ErrLockAlreadyReleased):
				l.pending = ""
			default:
				logError(ctx, o.logger, l, "release after a lost acquire outcome failed: %v", relErr)
			}
		}
		return nil, err
	}
	if o.intervalTooLong {
		logError(ctx, o.logger, l, "extend interval %v is not shorter than TTL %v less safety margin %v: "+
			"the lease will be lost before it is extended, and the function's context cancelled",
			o.periodicExtendInterval, o.lockTTL, o.safetyMargin)
	}
	return startHeartbeat(ctx, *l, db, o, cancelWork, start), nil
}

func (l *DBLock) release(ctx context.Context, db *sql.DB, o doOptions) {
	relCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.releaseTimeout)
	defer cancel()
	owner := l.Owner
	if o.ownerSet {
		l.Owner = o.owner // for the release's event: the acquisition's owner
	}
	l.minHold, l.logger = o.atLeast, o.logger
	defer func() { l.minHold, l.logger, l.Owner = 0, nil, owner }()
	if err := l.Release(relCtx, db); err != nil {
		logLegacyError(ctx, o.logger, l, "release failed: %v", errors.Unwrap(err))
	}
}

// logError reports what a call cannot return to logger, or else to l's manager's logger: a [SlogLogger] gets
// it at Error with ctx and the lock's attributes.
func logError(ctx context.Context, logger Logger, l *DBLock, format string, args ...any) {
	if logger == nil && l.manager != nil {
		logger = l.manager.logger
	}
	switch lg := logger.(type) {
	case nil:
	case *slogLogger:
		lg.log(ctx, slog.LevelError, l.Key, l.fence, l.Owner, "distrlock: "+fmt.Sprintf(format, args...))
	default:
		if fl, ok := withFields(lg, map[string]any{"distrlock_key": l.Key, "distrlock_fence": l.fence}); ok {
			fl.Errorf("distrlock: "+format, args...)
			return
		}
		lg.Errorf("distrlock: key %q, fence %d: "+format, append([]any{l.Key, l.fence}, args...)...)
	}
}

// withFields returns logger.WithFields(fields) when logger has such a method that takes a map[string]any
// type and returns a Logger: logrus's FieldLogger (Logger and Entry), recognised by its shape so that
// users who do not log with logrus do not build it.
func withFields(logger Logger, fields map[string]any) (Logger, bool) {
	method := reflect.ValueOf(logger).MethodByName("WithFields")
	if !method.IsValid() {
		return nil, false
	}
	t := method.Type()
	if t.NumIn() != 1 || t.NumOut() != 1 || t.IsVariadic() || !reflect.TypeOf(fields).ConvertibleTo(t.In(0)) ||
		t.In(0).Kind() != reflect.Map {
		return nil, false
	}
	out := method.Call([]reflect.Value{reflect.ValueOf(fields).Convert(t.In(0))})[0]
	if !out.CanInterface() || (out.Kind() == reflect.Pointer || out.Kind() == reflect.Interface) && out.IsNil() {
		return nil, false
	}
	fl, ok := out.Interface().(Logger)
	return fl, ok
}

// logLegacyError is logError for what an [Event] also reports: a [SlogLogger] logs the event instead.
func logLegacyError(ctx context.Context, logger Logger, l *DBLock, format string, args ...any) {
	if logger == nil && l.manager != nil {
		logger = l.manager.logger
	}
	if _, ok := logger.(*slogLogger); ok {
		return
	}
	logError(ctx, logger, l, format, args...)
}
