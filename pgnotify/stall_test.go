package pgnotify

import (
	"context"
	"errors"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// stallingProxy forwards TCP connections to a server. After stall, the connections it carries then drop
// everything in both directions without closing, as a peer that vanished would (a half-open connection);
// connections made later are forwarded again.
type stallingProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	pairs []*proxyPair
}

type proxyPair struct {
	client, server net.Conn
	stalled        atomic.Bool
}

func newStallingProxy(t testing.TB, target string) *stallingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallingProxy{ln: ln, target: target}
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *stallingProxy) port() uint16 { return uint16(p.ln.Addr().(*net.TCPAddr).Port) }

func (p *stallingProxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		pair := &proxyPair{client: client, server: server}
		p.mu.Lock()
		p.pairs = append(p.pairs, pair)
		p.mu.Unlock()
		p.wg.Go(func() { pair.forward(client, server) })
		p.wg.Go(func() { pair.forward(server, client) })
	}
}

// forward copies src to dst until either fails, dropping what it reads while the pair is stalled.
func (pair *proxyPair) forward(src, dst net.Conn) {
	defer func() {
		_ = pair.client.Close()
		_ = pair.server.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if pair.stalled.Load() {
			continue
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

// stall makes every current connection drop its traffic.
func (p *stallingProxy) stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pair := range p.pairs {
		pair.stalled.Store(true)
	}
}

// close stops the proxy and waits for its goroutines.
func (p *stallingProxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	for _, pair := range p.pairs {
		_ = pair.client.Close()
		_ = pair.server.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func TestDetectsHalfOpenConnection(t *testing.T) {
	db := openDB(t)
	config, err := pgx.ParseConfig(postgresDSN())
	if err != nil {
		t.Fatal(err)
	}
	if len(config.Host) > 0 && config.Host[0] == '/' {
		t.Skipf("the test database is reached through a Unix socket (%s); this test needs TCP", config.Host)
	}
	before := runtime.NumGoroutine()
	proxy := newStallingProxy(t, net.JoinHostPort(config.Host, strconv.Itoa(int(config.Port))))

	const ping = 100 * time.Millisecond
	l := newListener(t, WithPingInterval(ping))
	l.config.Host, l.config.Port, l.config.Fallbacks = "127.0.0.1", proxy.port(), nil
	stop := run(t, l)
	waitFor(t, "Listening() = true", l.Listening)
	ch, unsubscribe := l.Subscribe("k")
	defer unsubscribe()
	publish(t, db, l.Channel(), "k")
	expectNotice(t, ch, "subscriber through the proxy")
	pid := listenerPID(t, db, l.Channel())

	// The server still sends, the listener still waits; nothing arrives. Only the ping can tell.
	stalled := time.Now()
	proxy.stall()
	publish(t, db, l.Channel(), "k") // lost in the stalled connection
	waitFor(t, "Listening() = false after the connection stalled", func() bool { return !l.Listening() })
	detected := time.Since(stalled)
	expectNotice(t, ch, "subscriber after the reconnect")
	waitFor(t, "Listening() = true after the reconnect", l.Listening)
	t.Logf("stalled connection detected after %v (ping interval %v), listening again after %v",
		detected, ping, time.Since(stalled))
	if detected < ping {
		t.Errorf("stall detected after %v, before one ping interval %v passed", detected, ping)
	}
	if newPID := listenerPID(t, db, l.Channel()); newPID == pid {
		// Both sessions carry the channel's name; the query returns one of them. The stalled one lingers on
		// the server until the proxy closes it, so look for one that is not it.
		var other int
		if err := db.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND pid <> $2`,
			l.Channel(), pid).Scan(&other); err != nil || other != 1 {
			t.Errorf("sessions besides the stalled one: %d, %v", other, err)
		}
	}
	publish(t, db, l.Channel(), "k")
	expectNotice(t, ch, "subscriber after the reconnect, for a new release")

	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	// Not even pgx's cleanup of the stalled connection outlives Run: once its socket is closed, the proxy
	// drops the stalled pair, so that only the proxy's accept loop is left.
	waitFor(t, "goroutines back to their number before Run, plus the proxy's accept loop", func() bool {
		return runtime.NumGoroutine() <= before+1
	})
	proxy.close()
	waitFor(t, "goroutines back to their number before the proxy", func() bool { return runtime.NumGoroutine() <= before })
}
