package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"
)

// proc is a worker process seen from the parent. Its acquisitions are collected by a reader goroutine
// that wait waits for; the other messages arrive on msgs.
type proc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	cancel context.CancelFunc // kills the process
	msgs   chan message
	read   chan struct{} // closed when stdout has been read to its end
	acqs   []acquisition // owned by the reader until read is closed
	bad    error         // a line that was no message; read after read is closed

	waitOnce sync.Once
	waitErr  error
}

// startWorker runs this binary as a worker with a. The process is killed when ctx ends or by kill.
func startWorker(ctx context.Context, a workerArgs) (*proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(pctx, self, a.list()...)
	cmd.Stderr = os.Stderr
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		cancel()
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, err
	}
	p := &proc{cmd: cmd, stdin: stdin, cancel: cancel, msgs: make(chan message, 16), read: make(chan struct{})}
	go p.readMessages(stdout)
	return p, nil
}

func (p *proc) readMessages(r io.Reader) {
	defer close(p.read)
	defer close(p.msgs)
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		var m message
		if err := json.Unmarshal(s.Bytes(), &m); err != nil {
			p.bad = fmt.Errorf("worker wrote %q: %w", s.Text(), err)
			continue
		}
		if m.Acq != nil {
			p.acqs = append(p.acqs, *m.Acq)
			continue
		}
		p.msgs <- m
	}
}

// next returns the worker's next control message, waiting at most timeout.
func (p *proc) next(timeout time.Duration) (message, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case m, ok := <-p.msgs:
		if !ok {
			return message{}, errors.New("worker ended before answering")
		}
		return m, nil
	case <-t.C:
		return message{}, fmt.Errorf("worker did not answer within %v", timeout)
	}
}

// send writes a command line to the worker's stdin.
func (p *proc) send(cmd string) error {
	_, err := io.WriteString(p.stdin, cmd+"\n")
	return err
}

// wait waits for the worker to exit by itself, or kills it after timeout, and returns its failure. Later
// calls return the first call's result.
func (p *proc) wait(timeout time.Duration) error {
	p.waitOnce.Do(func() { p.waitErr = p.waitExit(timeout) })
	return p.waitErr
}

func (p *proc) waitExit(timeout time.Duration) error {
	t := time.AfterFunc(timeout, p.cancel)
	defer t.Stop()
	// Drain the control messages nobody asked for, so that the reader never blocks.
	go func() {
		for range p.msgs {
		}
	}()
	<-p.read
	err := p.cmd.Wait()
	p.cancel()
	_ = p.stdin.Close()
	if p.bad != nil {
		return errors.Join(err, p.bad)
	}
	return err
}

// stop closes the worker's stdin, which ends it, and waits for it as wait does.
func (p *proc) stop(timeout time.Duration) error {
	_ = p.stdin.Close()
	return p.wait(timeout)
}

// kill ends the worker at once and reaps it; it is safe after wait or stop.
func (p *proc) kill() {
	p.cancel()
	_ = p.wait(0)
}
