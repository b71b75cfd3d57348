// Package distrlock provides distributed locks stored in the SQL database a service already has:
// PostgreSQL, MySQL, MariaDB or SQLite, through database/sql and the driver of your choice.
//
// It is a drop-in replacement for go-dbkit's distrlock package: the same [DBManager], [DBLock],
// [DoExclusively], options and errors, so moving over changes an import path and a dialect constant.
// Beyond go-dbkit it gives:
//
//   - one SQL statement per operation: acquire (which also creates the key's row), extend and release each
//     run as a single statement, in autocommit mode or inside the caller's *sql.Tx;
//   - fencing tokens: [DBLock.Fence] grows with every acquisition of a key, so stale holders can be refused
//     downstream;
//   - leases measured on the database's clock only, independent of session time zones and of the start time
//     of the caller's transaction, for any TTL from [MinTTL] to [MaxTTL];
//   - a [DBLock.DoExclusively] that cancels the work's context before the lease can end, not only once the
//     database says the lock is gone;
//   - validated input: keys, tokens, TTLs and table names are checked before anything is sent, and table
//     names are quoted.
//
// # Clock model
//
// A lease starts when the server begins the acquiring statement and lasts TTL by the server's clock.
// PostgreSQL uses statement_timestamp() and timestamptz; MySQL and MariaDB use microseconds since the epoch
// from UTC_TIMESTAMP(6), checked against SYSDATE(6) so that a session's SET timestamp cannot move it;
// SQLite uses julianday('now'), present in every version. Clients never compare their clocks with the
// server's: a holder measures its own remaining lease from the moment it sent the acquire or extend, which
// is never later than the moment the server started counting.
//
// # Concurrency
//
// A [DBManager] is safe for concurrent use. A [DBLock] is not: give each goroutine its own.
package distrlock
