package pgnotify

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// defaultPostgresDSN is the database of the integration tests; DISTRLOCK_POSTGRES_DSN overrides it.
const defaultPostgresDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// noticeTimeout bounds every wait for something that should happen promptly.
const noticeTimeout = 5 * time.Second

func postgresDSN() string {
	if v := os.Getenv("DISTRLOCK_POSTGRES_DSN"); v != "" {
		return v
	}
	return defaultPostgresDSN
}

// openDB opens the test database through pgx's database/sql driver, the way releases reach it. An
// unreachable database skips the test, except in CI (CI=true), where it fails.
func openDB(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", postgresDSN())
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), noticeTimeout)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("postgres unreachable at %s (CI=true, so this fails instead of skipping): %v", postgresDSN(), err)
		}
		t.Skipf("postgres unreachable at %s: %v", postgresDSN(), err)
	}
	return db
}

// uniqueChannel returns a channel name of its own for a test; its capitals check that LISTEN quotes it.
func uniqueChannel(t testing.TB) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "PgNotify_Test_" + hex.EncodeToString(b)
}

// run starts l.Run in a goroutine that the test owns: cleanup cancels it and waits for it. The returned
// stop does the same at once and returns Run's error.
func run(t testing.TB, l *Listener) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	var err error
	stopped := false
	stop = func() error {
		if stopped {
			return err
		}
		stopped = true
		cancel()
		select {
		case err = <-done:
		case <-time.After(noticeTimeout):
			t.Fatalf("Run did not return within %v after its context was cancelled", noticeTimeout)
		}
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// newListener makes a listener on a channel of the test's own, with short reconnect delays. Its session
// is named after the channel, so that listenerPID finds it even when other tests listen on the server.
func newListener(t testing.TB, opts ...Option) *Listener {
	t.Helper()
	opts = append([]Option{WithChannel(uniqueChannel(t)), WithReconnectDelay(20*time.Millisecond, 100*time.Millisecond)}, opts...)
	l, err := New(postgresDSN(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	l.config.RuntimeParams["application_name"] = l.Channel()
	return l
}

// startListener makes a listener with newListener, runs it and waits until it listens.
func startListener(t testing.TB, opts ...Option) *Listener {
	t.Helper()
	l := newListener(t, opts...)
	run(t, l)
	waitFor(t, "Listening() = true", l.Listening)
	return l
}

// waitFor polls cond until it holds, failing the test after noticeTimeout.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(noticeTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", noticeTimeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// publish sends key on channel the way a release does.
func publish(t testing.TB, db *sql.DB, channel, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), noticeTimeout)
	defer cancel()
	if _, err := db.ExecContext(ctx, "SELECT pg_notify($1, $2)", channel, key); err != nil {
		t.Fatalf("pg_notify(%q, %q): %v", channel, key, err)
	}
}

func expectNotice(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(noticeTimeout):
		t.Fatalf("no notice for %s within %v", what, noticeTimeout)
	}
}

func expectNoNotice(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("unexpected notice for %s", what)
	default:
	}
}

func TestDeliversToSubscribersOfTheKey(t *testing.T) {
	db := openDB(t)
	l := startListener(t)
	key := `o'k "ключ" \x`
	a, stopA := l.Subscribe(key)
	defer stopA()
	b, stopB := l.Subscribe(key)
	defer stopB()
	other, stopOther := l.Subscribe("other")
	defer stopOther()

	for i := range 3 {
		publish(t, db, l.Channel(), key)
		expectNotice(t, a, "first subscriber")
		expectNotice(t, b, "second subscriber")
		// The notice of key was dispatched in full before a received it: a wrong wake of other would show.
		expectNoNotice(t, other, "another key")
		if i == 0 {
			// A channel of another letter case is another channel.
			publish(t, db, "pgnotify_test_"+l.Channel()[len("PgNotify_Test_"):], key)
		}
	}
	publish(t, db, l.Channel(), "other")
	expectNotice(t, other, "other")
	expectNoNotice(t, a, "first subscriber after a notice of another key")
}

func TestNoticesCoalesce(t *testing.T) {
	db := openDB(t)
	l := startListener(t)
	ch, stop := l.Subscribe("k")
	defer stop()
	control, stopControl := l.Subscribe("k")
	defer stopControl()
	for range 5 {
		publish(t, db, l.Channel(), "k")
		expectNotice(t, control, "control")
	}
	expectNotice(t, ch, "unread subscriber")
	expectNoNotice(t, ch, "unread subscriber after one read (it holds one notice)")
}

func TestUnsubscribeStopsDelivery(t *testing.T) {
	db := openDB(t)
	l := startListener(t)
	stopped, stop := l.Subscribe("k")
	kept, stopKept := l.Subscribe("k")
	defer stopKept()
	stop()
	stop() // idempotent

	publish(t, db, l.Channel(), "k")
	expectNotice(t, kept, "remaining subscriber")
	expectNoNotice(t, stopped, "stopped subscriber")

	// Stopping the last subscriber of a key drops the key; a new one is then delivered to.
	stopKept()
	l.mu.Lock()
	n := len(l.subs)
	l.mu.Unlock()
	if n != 0 {
		t.Errorf("%d keys subscribed after every stop", n)
	}
	again, stopAgain := l.Subscribe("k")
	defer stopAgain()
	stop() // a late stop of an old subscription leaves the new one alone
	publish(t, db, l.Channel(), "k")
	expectNotice(t, again, "new subscriber")
	expectNoNotice(t, stopped, "stopped subscriber")
}

func TestSlowSubscriberDoesNotBlockOthers(t *testing.T) {
	db := openDB(t)
	l := startListener(t)
	_, stopSlow := l.Subscribe("k") // never read
	defer stopSlow()
	fast, stopFast := l.Subscribe("k")
	defer stopFast()
	otherKey, stopOther := l.Subscribe("j")
	defer stopOther()

	const n = 20
	for range n {
		publish(t, db, l.Channel(), "k")
		expectNotice(t, fast, "fast subscriber of the same key")
	}
	publish(t, db, l.Channel(), "j")
	expectNotice(t, otherKey, "subscriber of another key")
}

// listenerPID returns the backend of the listener made by newListener for channel, or 0 if none is
// connected.
func listenerPID(t testing.TB, db *sql.DB, channel string) int {
	t.Helper()
	var pid int
	err := db.QueryRow(`SELECT pid FROM pg_stat_activity WHERE application_name = $1`, channel).Scan(&pid)
	if errors.Is(err, sql.ErrNoRows) {
		return 0
	}
	if err != nil {
		t.Fatalf("find the listener's backend: %v", err)
	}
	return pid
}

func TestReconnectsAfterBackendTerminated(t *testing.T) {
	db := openDB(t)
	l := startListener(t)
	ch, stop := l.Subscribe("k")
	defer stop()
	all, stopAll := l.Subscribe("unrelated")
	defer stopAll()

	for round := range 2 {
		pid := listenerPID(t, db, l.Channel())
		if pid == 0 {
			t.Fatal("no backend listens on the channel")
		}
		listens := l.listens.Load()
		var ok bool
		if err := db.QueryRow("SELECT pg_terminate_backend($1)", pid).Scan(&ok); err != nil || !ok {
			t.Fatalf("pg_terminate_backend(%d) = %v, %v", pid, ok, err)
		}
		waitFor(t, "Listening() = false after the backend was terminated", func() bool { return !l.Listening() })
		// After the new LISTEN every subscriber hears of it, whatever its key.
		expectNotice(t, ch, "subscriber after the reconnect")
		expectNotice(t, all, "subscriber of another key after the reconnect")
		waitFor(t, "Listening() = true after the reconnect", l.Listening)
		if got := l.listens.Load(); got != listens+1 {
			t.Errorf("round %d: %d LISTENs, want %d", round, got, listens+1)
		}
		if newPID := listenerPID(t, db, l.Channel()); newPID == 0 || newPID == pid {
			t.Errorf("round %d: listener's backend %d after the reconnect, was %d", round, newPID, pid)
		}

		publish(t, db, l.Channel(), "k")
		expectNotice(t, ch, "subscriber after the reconnect, for a new release")
		expectNoNotice(t, all, "subscriber of another key")
	}
}

func TestRunStopsWithContextAndLeavesNothing(t *testing.T) {
	db := openDB(t)
	before := runtime.NumGoroutine()
	l := newListener(t)
	for round := range 2 { // a Listener runs again after Run returned
		stop := run(t, l)
		waitFor(t, "Listening() = true", l.Listening)
		if err := l.Run(context.Background()); !errors.Is(err, ErrRunning) {
			t.Fatalf("second concurrent Run = %v, want ErrRunning", err)
		}
		ch, unsubscribe := l.Subscribe("k")
		publish(t, db, l.Channel(), "k")
		expectNotice(t, ch, "subscriber")
		unsubscribe()

		start := time.Now()
		if err := stop(); !errors.Is(err, context.Canceled) {
			t.Fatalf("round %d: Run = %v, want context.Canceled", round, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("round %d: Run took %v to return after cancel", round, d)
		}
		if l.Listening() {
			t.Errorf("round %d: Listening() = true after Run returned", round)
		}
		waitFor(t, "the listener's backend to end", func() bool { return listenerPID(t, db, l.Channel()) == 0 })
	}
	waitFor(t, "goroutines back to their number before Run", func() bool { return runtime.NumGoroutine() <= before })
}

func TestRunReturnsAtOnceWithEndedContext(t *testing.T) {
	l, err := New(postgresDSN())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
}

// countingHandler counts the records logged at Warn.
type countingHandler struct{ warnings atomic.Int64 }

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn {
		h.warnings.Add(1)
	}
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

func TestRetriesWhileUnreachable(t *testing.T) {
	h := &countingHandler{}
	// Port 1 refuses connections at once.
	l, err := New("postgres://postgres@127.0.0.1:1/test?connect_timeout=2", WithLogger(slog.New(h)),
		WithReconnectDelay(time.Millisecond, 5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ch, unsubscribe := l.Subscribe("k")
	defer unsubscribe()
	stop := run(t, l)
	waitFor(t, "three failed attempts logged", func() bool { return h.warnings.Load() >= 3 })
	if l.Listening() {
		t.Error("Listening() = true with no server")
	}
	expectNoNotice(t, ch, "subscriber while never connected")
	start := time.Now()
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Run took %v to return after cancel", d)
	}
}

func TestPingKeepsAQuietConnection(t *testing.T) {
	db := openDB(t)
	l := startListener(t, WithPingInterval(20*time.Millisecond))
	ch, stop := l.Subscribe("k")
	defer stop()
	// Several ping intervals pass with no notice; the connection must stay the same one.
	pid := listenerPID(t, db, l.Channel())
	if pid == 0 {
		t.Fatal("no backend serves the listener")
	}
	deadline := time.After(200 * time.Millisecond)
	for done := false; !done; {
		select {
		case <-ch:
			t.Fatal("notice while the channel was quiet")
		case <-deadline:
			done = true
		}
	}
	if !l.Listening() || l.listens.Load() != 1 {
		t.Fatalf("after quiet pings: Listening() = %v, %d LISTENs", l.Listening(), l.listens.Load())
	}
	// The same backend still serves the listener, and its last query is a ping, not LISTEN.
	var query string
	if err := db.QueryRow(`SELECT query FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&query); err != nil || query != "-- ping" {
		t.Fatalf("listener's backend %d: last query %q, %v; want a ping", pid, query, err)
	}
	publish(t, db, l.Channel(), "k")
	expectNotice(t, ch, "subscriber after quiet pings")
}

func TestNoticeLatency(t *testing.T) {
	db := openDB(t)
	l := startListener(t)
	ch, stop := l.Subscribe("k")
	defer stop()

	const n = 100
	arrivals := make(chan time.Time)
	go func() {
		for range n {
			select {
			case <-ch:
				arrivals <- time.Now()
			case <-time.After(noticeTimeout):
				close(arrivals)
				return
			}
		}
	}()
	latencies := make([]time.Duration, 0, n)
	for range n {
		sent := time.Now()
		publish(t, db, l.Channel(), "k")
		got, ok := <-arrivals
		if !ok {
			t.Fatalf("notice %d did not arrive within %v", len(latencies), noticeTimeout)
		}
		latencies = append(latencies, got.Sub(sent))
	}
	slices.Sort(latencies)
	t.Logf("pg_notify sent → subscriber woken, %d notices: p50 %v, p90 %v, p99 %v, max %v",
		n, latencies[n/2], latencies[n*9/10], latencies[n*99/100], latencies[n-1])
}
