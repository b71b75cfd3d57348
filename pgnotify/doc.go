// Package pgnotify implements [distrlock.Notifier] with PostgreSQL LISTEN/NOTIFY over pgx, so that the
// waiters of a [distrlock.DBManager] wake as soon as another process releases their key.
//
// A [Listener] holds one dedicated connection (a session: not through a transaction-pooling proxy), listens
// on one channel and hands each notice, whose payload is a lock key, to the subscribers of that key. The
// caller runs it and owns its goroutine:
//
//	l, err := pgnotify.New(dsn)
//	if err != nil { … }
//	go l.Run(ctx) // until ctx ends; reconnects by itself
//	m, err := distrlock.NewDBManager(distrlock.DialectPgx, distrlock.WithNotifier(l))
//
// Releases through m of a lock that others wait for then publish its key on l's channel, [DefaultChannel]
// unless [WithChannel] names another. While the listener is disconnected, [Listener.Listening] reports false and waiters poll; after
// each reconnect every subscriber gets a notice, since releases may have been missed meanwhile.
package pgnotify
