// Package distrlock provides distributed locks stored in the SQL database a service already has:
// PostgreSQL, MySQL, MariaDB or SQLite, through database/sql and the driver of your choice. It is a
// drop-in replacement for go-dbkit's distrlock package; each acquire, extend and release is one SQL
// statement, every acquisition gets a growing fencing token, and leases are measured on the database's
// clock only.
//
// # Entry points
//
//   - [NewDBManager] makes a [DBManager] for one table and dialect; [DBManager.NewLock] makes a [DBLock].
//   - [DBLock.DoExclusively] (or the package-level [DoExclusively]) runs a function under the lock, with
//     the lease extended in the background and the function's context cancelled before it can end.
//   - [DBLock.Acquire], [DBLock.AcquireWait], [DBLock.Extend], [DBLock.Release] and [DBLock.Fence] are
//     the single operations, in autocommit mode or inside the caller's *sql.Tx.
//   - [DBLock.Hold] and [DBManager.Hold] return a [Lease], kept by a heartbeat until [Lease.Release];
//     [WithToken] resumes a lease after a restart, and [DBLock.Keep] keeps a lock acquired in a committed
//     transaction.
//   - [DBLock.Guard] guards the writes of the caller's transaction by the lock, in the lock's database.
//   - [DBManager.NewElection] makes an [Election]: campaign, lead, resign, observe the leader.
//   - [DBManager.Get] and [DBManager.List] read locks without taking them.
//   - [DBManager.CreateTable], [DBManager.Migrations], [DBManager.GolangMigrateFS] and
//     [DBManager.GooseFS] create or migrate the table.
//   - [WithNotifier] with a github.com/distrlock/distrlock/pgnotify Listener wakes waiters on PostgreSQL
//     as soon as another process releases.
//
// The guides in the repository's docs directory explain waiting, leader election, the guarantees and
// clock model, migrations from go-dbkit, operations and the proof under faults.
//
// # Concurrency
//
// A [DBManager], a [Lease] and an [Election] are safe for concurrent use. A [DBLock] is not: give each
// goroutine its own.
package distrlock
