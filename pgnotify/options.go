package pgnotify

import (
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/distrlock/distrlock"
)

// Defaults of the options of [New].
const (
	// DefaultChannel is the notification channel unless [WithChannel] says otherwise.
	DefaultChannel = "distrlock_release"

	// DefaultReconnectMinDelay and DefaultReconnectMaxDelay bound the pause before each attempt to reconnect
	// unless [WithReconnectDelay] says otherwise.
	DefaultReconnectMinDelay = 100 * time.Millisecond
	DefaultReconnectMaxDelay = 10 * time.Second

	// DefaultPingInterval is how long the connection may stay silent before it is checked, unless
	// [WithPingInterval] says otherwise.
	DefaultPingInterval = 15 * time.Second

	// DefaultApplicationName is the application_name the listener's session reports to the server when the
	// connection string sets none.
	DefaultApplicationName = "distrlock-pgnotify"
)

// channelPattern is what a notification channel may be: a PostgreSQL identifier that needs no case folding
// and fits NAMEDATALEN, the same rule distrlock.WithNotifier checks.
var channelPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// Option configures a [Listener] made by [New].
type Option func(*options)

type options struct {
	channel      string
	minDelay     time.Duration
	maxDelay     time.Duration
	pingInterval time.Duration
	logger       *slog.Logger
}

// WithChannel sets the notification channel: 1 to 63 ASCII letters, digits or underscores, not starting
// with a digit, matched case-sensitively. Default: [DefaultChannel].
func WithChannel(name string) Option {
	return func(o *options) { o.channel = name }
}

// WithReconnectDelay bounds the pause before each attempt to reconnect: the first waits about minDelay,
// each next one twice as long up to maxDelay, each with jitter; it needs 0 < minDelay <= maxDelay.
// Default: [DefaultReconnectMinDelay] and [DefaultReconnectMaxDelay].
func WithReconnectDelay(minDelay, maxDelay time.Duration) Option {
	return func(o *options) { o.minDelay, o.maxDelay = minDelay, maxDelay }
}

// WithPingInterval sets how long the connection may go without a notice before the listener pings the
// server; a ping not answered within the same interval counts as a lost connection. It must be positive.
// Default: [DefaultPingInterval].
func WithPingInterval(d time.Duration) Option {
	return func(o *options) { o.pingInterval = d }
}

// WithLogger sets the logger that receives connection losses and reconnects; it must not be nil.
// Default: none (nothing is logged).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// newOptions applies options over the defaults and validates the result.
func newOptions(opts []Option) (options, error) {
	o := options{
		channel:      DefaultChannel,
		minDelay:     DefaultReconnectMinDelay,
		maxDelay:     DefaultReconnectMaxDelay,
		pingInterval: DefaultPingInterval,
		logger:       slog.New(slog.DiscardHandler),
	}
	for _, opt := range opts {
		if opt == nil {
			return o, fmt.Errorf("%w: nil option", distrlock.ErrInvalidOption)
		}
		opt(&o)
	}
	switch {
	case !channelPattern.MatchString(o.channel):
		return o, fmt.Errorf("%w: notification channel %q: need 1 to 63 letters, digits or underscores, not starting with a digit",
			distrlock.ErrInvalidOption, o.channel)
	case o.minDelay <= 0 || o.maxDelay < o.minDelay:
		return o, fmt.Errorf("%w: reconnect delay [%v, %v]: need 0 < min <= max", distrlock.ErrInvalidOption, o.minDelay, o.maxDelay)
	case o.pingInterval <= 0:
		return o, fmt.Errorf("%w: ping interval %v: need a positive duration", distrlock.ErrInvalidOption, o.pingInterval)
	case o.logger == nil:
		return o, fmt.Errorf("%w: nil logger", distrlock.ErrInvalidOption)
	}
	return o, nil
}
