// Package faultproxy is a TCP proxy for tests that puts faults between a database client and its server:
// it forwards bytes until told to black-hole, delay or reset the connections that pass through it.
package faultproxy

import (
	"context"
	"net"
	"sync"
	"time"
)

// Mode is what the proxy does to traffic.
type Mode int

// The modes of a Proxy.
const (
	// Forward passes bytes both ways.
	Forward Mode = iota
	// Blackhole keeps every connection open but passes nothing, as a dead network does: clients see no
	// error, only silence, until their own deadlines.
	Blackhole
)

// Proxy listens on a loopback port and forwards each connection to a target address. It is safe for
// concurrent use; Close stops it and waits for its goroutines.
type Proxy struct {
	target string
	ln     net.Listener

	mu    sync.Mutex
	mode  Mode
	delay time.Duration
	conns map[net.Conn]struct{}
	wake  chan struct{} // closed and replaced whenever the mode changes

	wg sync.WaitGroup
}

// Start listens on 127.0.0.1 on a free port and forwards to target.
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, ln: ln, conns: make(map[net.Conn]struct{}), wake: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the host:port clients connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetMode switches every connection, open and future, to m.
func (p *Proxy) SetMode(m Mode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
	close(p.wake)
	p.wake = make(chan struct{})
}

// SetDelay delays every chunk of bytes forwarded from now on by d (0 for none).
func (p *Proxy) SetDelay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = d
}

// ResetAll closes every open connection abruptly (with RST where the platform allows it); new
// connections are still accepted.
func (p *Proxy) ResetAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = c.Close()
	}
}

// Close stops accepting, closes every connection and waits for the proxy's goroutines.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.ResetAll()
	p.SetMode(Forward) // wakes any pump waiting in Blackhole, which then finds its connection closed
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.serve(client)
	}
}

func (p *Proxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	p.track(client, true)
	defer p.track(client, false)
	defer client.Close()
	// A new connection in Blackhole mode is accepted but never reaches the server, like a SYN that is
	// answered by a middlebox and then dropped.
	if !p.waitForward(client) {
		return
	}
	var d net.Dialer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	server, err := d.DialContext(ctx, "tcp", p.target)
	cancel()
	if err != nil {
		return
	}
	p.track(server, true)
	defer p.track(server, false)
	defer server.Close()

	var pumps sync.WaitGroup
	pumps.Add(2)
	go func() { defer pumps.Done(); p.pump(server, client) }()
	go func() { defer pumps.Done(); p.pump(client, server) }()
	pumps.Wait()
}

// waitForward blocks while the proxy black-holes; it reports false once c is closed.
func (p *Proxy) waitForward(c net.Conn) bool {
	for {
		p.mu.Lock()
		mode, wake := p.mode, p.wake
		_, open := p.conns[c]
		p.mu.Unlock()
		if !open {
			return false
		}
		if mode == Forward {
			return true
		}
		<-wake
	}
}

// pump copies src to dst chunk by chunk, holding chunks back while the proxy black-holes.
func (p *Proxy) pump(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.waitForward(src) {
				return
			}
			p.mu.Lock()
			delay := p.delay
			p.mu.Unlock()
			if delay > 0 {
				time.Sleep(delay)
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // EOF or a closed connection: either way this direction is done
			return
		}
	}
}
