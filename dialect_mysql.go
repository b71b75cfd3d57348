package distrlock

// MySQL and MariaDB (DialectMySQL and DialectMariaDB): their dialectSpec and the Go code only they run; the
// SQL is in schema/mysql/.

import (
	"context"
	"database/sql"
)

var mysqlSpec = &dialectSpec{
	dir: "mysql", quote: '`', migrateID: "mysql",
	acquire:        acquireMySQL,
	extendArgs:     func(key, token string, ttl int64) []any { return []any{ttl, ttl, key, token} },
	releaseArgs:    func(key, token string, hold int64, _ bool) []any { return []any{hold, hold, key, token} },
	listArgs:       func(p string, held bool, n int64) []any { return []any{p, p, boolInt(held), n} },
	enqueue:        enqueueMySQL,
	dequeueArgs:    func(key string, t int64) []any { return []any{t, t, t, t, key, t, t, t} },
	gapLocks:       true,
	prepare:        true,
	extended:       lastInsertIDSet,
	extendBatch:    extendBatchMySQL,
	pairList:       true,
	syncWait:       true,
	pruneFloorArgs: func(floor int64) []any { return []any{floor, floor} },
	pruneDeleteArgs: func(after, last string, floor, freeFor, grace int64) []any {
		return []any{after, last, floor, freeFor, grace}
	},
}

// acquireMySQL runs INSERT … SELECT … ON DUPLICATE KEY UPDATE (see schema/mysql/queries/acquire.sql for why
// it is correct whatever the order of assignment) and reads the outcome from the OK packet: the new fence
// in LastInsertId when the lock was taken, whether its row existed or was created above the fence floor;
// no affected row when the gate found the lock held or not the caller's turn; and LastInsertId 0 and two
// affected rows when the update found it held (the statement bumps the contended counter so that the row
// changes under either clientFoundRows setting). LastInsertId 0 and one affected row, a created row whose
// fence the server did not report, reads as fence 1, as before the floor existed.
func acquireMySQL(ctx context.Context, exec SQLExecutor, query string, a acquireArgs) (int64, error) {
	t := a.token
	var args []any
	if a.ungated {
		args = []any{a.key, t, a.ttlMicros, a.ttlMicros, a.owner, a.data} // the inserted row
	} else {
		args = []any{a.key, t, a.ttlMicros, a.ttlMicros, a.key, a.owner, a.data, // the inserted row
			a.key, t, a.graceMicros, a.ticket, a.ticket} // the gate
	}
	res, err := exec.ExecContext(ctx, query, append(args,
		t, t, // token
		t,              // fence
		t,              // contended
		t, a.ttlMicros, // ttl_us
		t, a.owner, // owner
		t, a.data, // data
		t,                  // acquired_at
		a.ticket, a.ticket, // queue_head
		t, a.ttlMicros, // expire_at
	)...)
	if err != nil {
		return 0, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, err
	}
	if id > 0 {
		return id, nil
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	if n == 1 {
		return 1, nil
	}
	return 0, errAcquireRefused
}

// enqueueMySQL takes a ticket with an UPDATE that hands it back through LAST_INSERT_ID.
func enqueueMySQL(ctx context.Context, exec SQLExecutor, query, key string) (int64, error) {
	res, err := exec.ExecContext(ctx, query, key)
	if err != nil {
		return 0, err
	}
	ticket, err := res.LastInsertId()
	if err == nil && ticket == 0 {
		err = sql.ErrNoRows
	}
	return ticket, err
}

// lastInsertIDSet reads MySQL's LAST_INSERT_ID(expr), which the statement evaluates only for a found row.
func lastInsertIDSet(res sql.Result) (bool, error) {
	id, err := res.LastInsertId()
	return id > 0, err
}

// extendBatchMySQL runs an UPDATE with one (?, ?) per pair. MySQL's UPDATE returns no rows, only how many
// it changed: when that is fewer than the pairs, a SELECT tells which are still held for at least the TTL.
// A pair the UPDATE did not find is held afterwards only if a holder sharing its static token took the
// lock since, with a lease at least as long; so every pair the SELECT finds has its lease until at least
// the statement's start plus the TTL.
func extendBatchMySQL(ctx context.Context, db batchExecutor, q *queries, ttlMicros int64, pairs []lockPair) (map[lockPair]bool, error) {
	args := make([]any, 0, 2+2*len(pairs))
	args = append(args, ttlMicros, ttlMicros)
	for _, p := range pairs {
		args = append(args, p.key, p.token)
	}
	res, err := db.ExecContext(ctx, withPairList(q.extendBatch, len(pairs)), args...)
	if err != nil {
		return nil, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return nil, err
	}
	if n == int64(len(pairs)) {
		held := make(map[lockPair]bool, len(pairs))
		for _, p := range pairs {
			held[p] = true
		}
		return held, nil
	}
	// The same values but the first TTL: the pairs, then the TTL the held locks' leases must have at least.
	rows, err := db.QueryContext(ctx, withPairList(q.extendBatchHeld, len(pairs)), append(args[2:], ttlMicros)...)
	if err != nil {
		return nil, err
	}
	return scanPairs(rows, len(pairs))
}

// mysqlNumbers classifies the Numbers of go-sql-driver's MySQLErrors.
var mysqlNumbers = map[int64]failure{
	1205: failTransient, // ER_LOCK_WAIT_TIMEOUT: InnoDB rolls back the statement
	1213: failTransient, // ER_LOCK_DEADLOCK: InnoDB rolls back the transaction; also a Galera certification conflict
	1047: failTransient, // ER_UNKNOWN_COM_ERROR: a Galera node outside the primary component refuses it unrun
	1792: failReadOnly,  // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
	1836: failReadOnly,  // ER_READ_ONLY_MODE (innodb_read_only)
	1054: failSchema,    // ER_BAD_FIELD_ERROR: unknown column
	1146: failSchema,    // ER_NO_SUCH_TABLE
}

// mysqlOutOfRange is ER_DATA_OUT_OF_RANGE, which the MySQL statements raise on purpose, naming
// mysqlClockMovedMark, in a session whose clock was moved.
const (
	mysqlOutOfRange     = 1690
	mysqlClockMovedMark = "session_clock_moved"
)

// mysqlOptionPrevents is ER_OPTION_PREVENTS_STATEMENT, a read-only server when its message names read_only
// or super_read_only (it also stands for other options that forbid a statement).
const mysqlOptionPrevents = 1290
