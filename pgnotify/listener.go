package pgnotify

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distrlock/distrlock"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

var _ distrlock.Notifier = (*Listener)(nil)

// closeTimeout bounds the closing of a connection, even after ctx ended: the goodbye sent to the server,
// or pgx's cleanup of a failed connection.
const closeTimeout = 5 * time.Second

// Listener receives the keys published on one PostgreSQL notification channel and hands each to the
// subscribers of that key; it implements [distrlock.Notifier]. Make it with [New] and run it with
// [Listener.Run]; its methods are safe for concurrent use.
type Listener struct {
	config *pgx.ConnConfig // parsed by New; each connection gets its own copy
	opts   options

	running   atomic.Bool
	listening atomic.Bool
	listens   atomic.Int64 // successful LISTENs, for tests

	mu   sync.Mutex
	subs map[string]map[*subscription]struct{} // by key
}

type subscription struct {
	ch chan struct{} // holds one notice; a full channel already tells the reader to look again
}

// New returns a Listener for the PostgreSQL server of connString (a pgx URL or keyword/value string),
// which it parses but does not connect to. An invalid option makes it return an error that matches
// [distrlock.ErrInvalidOption]; an unparsable connString, an error that wraps pgx's.
func New(connString string, options ...Option) (*Listener, error) {
	o, err := newOptions(options)
	if err != nil {
		return nil, fmt.Errorf("pgnotify: new listener %q: %w", o.channel, err)
	}
	config, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("pgnotify: new listener %q: %w", o.channel, err)
	}
	// Name the session so that operators can tell it in pg_stat_activity, unless the caller named it.
	if _, ok := config.RuntimeParams["application_name"]; !ok {
		config.RuntimeParams["application_name"] = DefaultApplicationName
	}
	return &Listener{config: config, opts: o, subs: make(map[string]map[*subscription]struct{})}, nil
}

// Channel returns the notification channel the listener listens on.
func (l *Listener) Channel() string { return l.opts.channel }

// Listening reports whether [Listener.Run] holds a connection that is listening, so that keys published
// now will be delivered.
func (l *Listener) Listening() bool { return l.listening.Load() }

// Subscribe returns a channel that receives a value after each notice of key and after each (re)connect;
// it holds one value and the listener never waits for its reader. stop unsubscribes, may be called more
// than once, and never closes the channel.
func (l *Listener) Subscribe(key string) (notices <-chan struct{}, stop func()) {
	s := &subscription{ch: make(chan struct{}, 1)}
	l.mu.Lock()
	set := l.subs[key]
	if set == nil {
		set = make(map[*subscription]struct{})
		l.subs[key] = set
	}
	set[s] = struct{}{}
	l.mu.Unlock()
	return s.ch, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		// Look the set up again: it is dropped when it empties and may have been made anew since.
		if set := l.subs[key]; set != nil {
			delete(set, s)
			if len(set) == 0 {
				delete(l.subs, key)
			}
		}
	}
}

// Run connects, listens and delivers notices until ctx ends, reconnecting after any failure; then it
// closes its connection (waiting at most a few seconds) and returns ctx.Err(). It returns [ErrRunning] at
// once if another Run of l has not returned; the caller owns the goroutine that runs it.
func (l *Listener) Run(ctx context.Context) error {
	if !l.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer l.running.Store(false)
	failures := 0
	for {
		listened, err := l.session(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if listened {
			failures = 0
		}
		delay := reconnectDelay(l.opts.minDelay, l.opts.maxDelay, failures)
		failures++
		l.opts.logger.WarnContext(ctx, "pgnotify: not listening, will reconnect",
			"channel", l.opts.channel, "error", err, "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// session opens one connection, listens and delivers notices until the connection fails or ctx ends. It
// reports whether LISTEN succeeded, and always returns an error.
func (l *Listener) session(ctx context.Context) (listened bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, l.config.Copy())
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer func() {
		l.listening.Store(false)
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
		if conn.IsClosed() {
			// pgx gave up on the connection and drains it in a goroutine of its own, which a connection whose
			// peer vanished would hold for long: cut the socket so that it ends.
			_ = conn.PgConn().Conn().Close()
		}
		_ = conn.Close(closeCtx)
		// Wait for that goroutine, so that none outlives Run.
		select {
		case <-conn.PgConn().CleanupDone():
		case <-closeCtx.Done():
		}
	}()
	// The channel was validated by New; quoting keeps its case, as pg_notify's text argument does.
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{l.opts.channel}.Sanitize()); err != nil {
		return false, fmt.Errorf("listen: %w", err)
	}
	// Keys released while no connection listened were never delivered: wake every subscriber, now that
	// any later release will be. Waking them before Listening turns true spares those who subscribe after
	// seeing it true a notice that stands for no release.
	l.notifyAll()
	l.listens.Add(1)
	l.listening.Store(true)
	l.opts.logger.InfoContext(ctx, "pgnotify: listening", "channel", l.opts.channel, "pid", conn.PgConn().PID())
	for {
		// A connection whose peer vanished without closing it would stay silent forever; after pingInterval
		// without a notice, a ping tells a quiet channel from a dead connection.
		waitCtx, cancel := context.WithTimeout(ctx, l.opts.pingInterval)
		n, err := conn.WaitForNotification(waitCtx)
		cancel()
		if n != nil && n.Channel == l.opts.channel {
			l.notify(n.Payload)
		}
		switch {
		case err == nil:
			continue
		case ctx.Err() != nil:
			return true, ctx.Err()
		case !pgconn.Timeout(err) || conn.IsClosed():
			return true, fmt.Errorf("wait for notification: %w", err)
		}
		pingCtx, cancel := context.WithTimeout(ctx, l.opts.pingInterval)
		err = conn.Ping(pingCtx)
		cancel()
		if err != nil {
			return true, fmt.Errorf("ping: %w", err)
		}
	}
}

// notify wakes the subscribers of key.
func (l *Listener) notify(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for s := range l.subs[key] {
		s.wake()
	}
}

// notifyAll wakes every subscriber.
func (l *Listener) notifyAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, set := range l.subs {
		for s := range set {
			s.wake()
		}
	}
}

// wake leaves a notice unless one is already waiting to be read.
func (s *subscription) wake() {
	select {
	case s.ch <- struct{}{}:
	default:
	}
}

// reconnectDelay returns the pause before the attempt that follows the given number of consecutive
// failures: minDelay doubled that many times, capped at maxDelay, then jittered into its upper half so that
// many processes cut off together do not reconnect in step.
func reconnectDelay(minDelay, maxDelay time.Duration, failures int) time.Duration {
	d := minDelay
	for i := 0; i < failures && d < maxDelay; i++ {
		d *= 2
	}
	if d > maxDelay || d <= 0 {
		d = maxDelay
	}
	half := d / 2
	return half + rand.N(d-half+1)
}
