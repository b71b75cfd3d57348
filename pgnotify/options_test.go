package pgnotify

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/distrlock/distrlock"
)

const testDSN = "postgres://postgres@127.0.0.1:5432/test"

func TestNewDefaults(t *testing.T) {
	l, err := New(testDSN)
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Channel(); got != DefaultChannel {
		t.Errorf("Channel() = %q, want %q", got, DefaultChannel)
	}
	if l.Listening() {
		t.Error("Listening() = true before Run")
	}
	o := l.opts
	if o.minDelay != DefaultReconnectMinDelay || o.maxDelay != DefaultReconnectMaxDelay || o.pingInterval != DefaultPingInterval {
		t.Errorf("defaults: delay [%v, %v], ping %v", o.minDelay, o.maxDelay, o.pingInterval)
	}
	if got := l.config.RuntimeParams["application_name"]; got != DefaultApplicationName {
		t.Errorf("application_name = %q, want %q", got, DefaultApplicationName)
	}
}

func TestNewKeepsApplicationName(t *testing.T) {
	l, err := New(testDSN + "?application_name=mine")
	if err != nil {
		t.Fatal(err)
	}
	if got := l.config.RuntimeParams["application_name"]; got != "mine" {
		t.Errorf("application_name = %q, want %q", got, "mine")
	}
}

func TestNewValidOptions(t *testing.T) {
	for _, name := range []string{"a", "_", "A_b9", "Release_Chan", strings.Repeat("x", 63)} {
		l, err := New(testDSN, WithChannel(name), WithReconnectDelay(time.Millisecond, time.Millisecond),
			WithPingInterval(time.Second), WithLogger(slog.Default()))
		if err != nil {
			t.Errorf("channel %q: %v", name, err)
			continue
		}
		if l.Channel() != name {
			t.Errorf("Channel() = %q, want %q", l.Channel(), name)
		}
	}
}

func TestNewInvalidOptions(t *testing.T) {
	tests := []struct {
		name string
		opt  Option
	}{
		{"empty channel", WithChannel("")},
		{"channel 64 bytes", WithChannel(strings.Repeat("x", 64))},
		{"channel starts with digit", WithChannel("1abc")},
		{"channel with dash", WithChannel("a-b")},
		{"channel with space", WithChannel("a b")},
		{"channel with quote", WithChannel(`a"b`)},
		{"channel with dot", WithChannel("s.c")},
		{"channel not ASCII", WithChannel("canal_é")},
		{"zero min delay", WithReconnectDelay(0, time.Second)},
		{"negative min delay", WithReconnectDelay(-time.Second, time.Second)},
		{"max below min", WithReconnectDelay(time.Second, time.Millisecond)},
		{"zero ping interval", WithPingInterval(0)},
		{"negative ping interval", WithPingInterval(-time.Second)},
		{"nil logger", WithLogger(nil)},
		{"nil option", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := New(testDSN, tt.opt)
			if !errors.Is(err, distrlock.ErrInvalidOption) {
				t.Fatalf("New: %v, want distrlock.ErrInvalidOption", err)
			}
			if l != nil {
				t.Error("New returned a Listener with its error")
			}
			if !strings.HasPrefix(err.Error(), "pgnotify: new listener ") {
				t.Errorf("error text %q", err)
			}
		})
	}
}

func TestNewInvalidConnString(t *testing.T) {
	l, err := New("postgres://postgres@127.0.0.1:notaport/test")
	if err == nil || l != nil {
		t.Fatalf("New = %v, %v; want an error", l, err)
	}
	if errors.Is(err, distrlock.ErrInvalidOption) {
		t.Errorf("connection string error %v matches ErrInvalidOption", err)
	}
}

func TestReconnectDelay(t *testing.T) {
	minDelay, maxDelay := 100*time.Millisecond, time.Second
	for failures, want := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		want *= time.Millisecond
		for range 50 {
			d := reconnectDelay(minDelay, maxDelay, failures)
			if d < want/2 || d > want {
				t.Fatalf("reconnectDelay(%d) = %v, want in [%v, %v]", failures, d, want/2, want)
			}
		}
	}
	// Doubling must not overflow into a negative or zero delay.
	huge := time.Duration(1<<62 + 1)
	if d := reconnectDelay(time.Nanosecond, huge, 200); d < huge/2 || d > huge {
		t.Errorf("reconnectDelay with a huge max = %v", d)
	}
}
