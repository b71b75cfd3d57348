package distrlock

// Notifier delivers the releases that other processes publish, so that a manager's waiters wake at once
// instead of at their next poll. Releases through a manager made [WithNotifier] publish the key on the
// notifier's channel (PostgreSQL NOTIFY, sent at commit) when waiters queued for it, and always for an
// election's term or [DBManager.ReleaseWithToken]; package github.com/distrlock/distrlock/pgnotify
// implements it with pgx. A Notifier must be safe for concurrent use.
type Notifier interface {
	// Channel returns the notification channel releases publish on: 1 to 63 ASCII letters, digits or
	// underscores, not starting with a digit.
	Channel() string
	// Subscribe returns a channel that receives a value (without blocking the notifier: it holds one) after
	// each published release of key, and after a reconnect that may have missed some; stop unsubscribes.
	Subscribe(key string) (notices <-chan struct{}, stop func())
	// Listening reports whether notices are being delivered now. While it is false, waiters poll.
	Listening() bool
}
