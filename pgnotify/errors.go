package pgnotify

import "errors"

// Errors returned by this package besides [distrlock.ErrInvalidOption], which [New] wraps for an invalid
// option. Match them with [errors.Is].
var (
	// ErrRunning is returned by [Listener.Run] when another call of Run on the same Listener has not returned.
	ErrRunning = errors.New("pgnotify: listener already running")
)
