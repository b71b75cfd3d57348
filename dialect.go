package distrlock

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// Dialect names the SQL dialect of the database that stores the locks. Its values equal go-dbkit's, so a
// dbkit.Dialect converts with Dialect(d).
type Dialect string

// The supported dialects. The library imports no driver: open the *sql.DB with the driver of your choice.
const (
	// DialectPostgres is PostgreSQL through github.com/lib/pq or any other driver.
	DialectPostgres Dialect = "postgres"
	// DialectPgx is PostgreSQL through github.com/jackc/pgx/v5/stdlib; the SQL is DialectPostgres's.
	DialectPgx Dialect = "pgx"
	// DialectMySQL is MySQL 8 (and MariaDB) through github.com/go-sql-driver/mysql.
	DialectMySQL Dialect = "mysql"
	// DialectMariaDB is MariaDB 10.5 or later; it runs the same SQL as DialectMySQL, which avoids the
	// MySQL-only row alias and the VALUES() function that MySQL deprecates.
	DialectMariaDB Dialect = "mariadb"
	// DialectSQLite is SQLite 3.35 or later (for RETURNING), for example through the pure-Go
	// modernc.org/sqlite. Its clock is the host's: use it for processes on one machine.
	DialectSQLite Dialect = "sqlite3"
)

// dialectSpec holds what differs between databases besides the SQL text in schema/.
type dialectSpec struct {
	dir       string // folder under schema/
	quote     byte   // identifier quote character
	migrateID string // the driver name golang-migrate and sql-migrate know the dialect by

	// acquire runs the acquire statement and reports the new fence, or errAcquireRefused.
	acquire func(ctx context.Context, exec SQLExecutor, query string, a acquireArgs) (int64, error)
	// extendArgs and releaseArgs order the bound values for the statement.
	extendArgs func(key, token string, ttlMicros int64) []any
	// autocommit says that exec is a *sql.DB: the statement is its own transaction.
	releaseArgs func(key, token string, minHoldMicros int64, autocommit bool) []any
	listArgs    func(prefix string, heldOnly bool, limit int64) []any
	// extended reads whether the extend statement found the lock.
	extended func(sql.Result) (bool, error)
	// extendBatch runs the batched extend for pairs (at least two, distinct, each for ttlMicros) and
	// returns true for those it extended and false for those it skipped because another transaction
	// holds their row; a pair it does not return is not held under its token.
	extendBatch func(ctx context.Context, db batchExecutor, q *queries, ttlMicros int64, pairs []lockPair) (map[lockPair]bool, error)
	// pairList: the batched statements hold pairListMarker (MySQL) instead of taking a JSON document.
	pairList bool
	// notify: the dialect has release_notify.sql, for a manager with a Notifier.
	notify bool
	// gapLocks: the gate of acquire.sql takes gap locks, so a caller's transaction gets acquire_in_tx.sql.
	gapLocks bool
	// syncWait: the dialect has sync_wait.sql, for a manager WithGalera.
	syncWait bool
	// prepare: the manager prepares its hot statements once per connection (stmtcache.go).
	prepare bool
	// dequeueArgs orders the bound values of dequeue.sql.
	dequeueArgs func(key string, ticket int64) []any
	// enqueue runs enqueue.sql and returns the caller's ticket.
	enqueue func(ctx context.Context, exec SQLExecutor, query, key string) (int64, error)
	// pruneInOne: prune.sql deletes a batch and raises the fence floor in one statement (PostgreSQL);
	// otherwise pruneBatchSteps runs prune_scan.sql, prune_floor.sql and prune_delete.sql.
	pruneInOne bool
	// pruneFloorArgs and pruneDeleteArgs order the bound values of prune_floor.sql and prune_delete.sql.
	pruneFloorArgs  func(floor int64) []any
	pruneDeleteArgs func(after, last string, floor, freeForMicros, graceMicros int64) []any
}

// acquireArgs are the values the acquire statement binds.
type acquireArgs struct {
	key, token string
	ttlMicros  int64
	owner      any // string or nil
	data       any // []byte or nil
	// ticket is the caller's place in the key's wait queue, 0 for none; graceMicros is how long a free
	// lock waits for each ticket before it (see schema/postgres/queries/acquire.sql).
	ticket, graceMicros int64
	// ungated: the statement is MySQL's acquire_in_tx.sql, which binds no gate.
	ungated bool
}

// errAcquireRefused is internal: the statement ran and found the lock held under another token.
var errAcquireRefused = errors.New("acquire refused")

// boolInt binds a flag for the dialects whose drivers have no boolean type.
func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func specFor(d Dialect) (*dialectSpec, error) {
	switch d {
	case DialectPostgres, DialectPgx:
		return postgresSpec, nil
	case DialectMySQL, DialectMariaDB:
		return mysqlSpec, nil
	case DialectSQLite:
		return sqliteSpec, nil
	default:
		return nil, fmt.Errorf("%w %q", ErrUnsupportedDialect, string(d))
	}
}

// acquireReturning runs an upsert whose RETURNING clause yields the fence only when the lock was taken
// (PostgreSQL, SQLite).
func acquireReturning(ctx context.Context, exec SQLExecutor, query string, a acquireArgs) (int64, error) {
	var fence int64
	err := exec.QueryRowContext(ctx, query, a.key, a.token, a.ttlMicros, a.owner, a.data, a.ticket, a.graceMicros).Scan(&fence)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, errAcquireRefused
	}
	return fence, err
}

// enqueueReturning takes a ticket with an UPDATE … RETURNING (SQLite; PostgreSQL's enqueuePostgres also
// binds whether the statement runs in autocommit).
func enqueueReturning(ctx context.Context, exec SQLExecutor, query, key string) (int64, error) {
	var ticket int64
	err := exec.QueryRowContext(ctx, query, key).Scan(&ticket)
	return ticket, err
}

func oneRowAffected(res sql.Result) (bool, error) {
	n, err := res.RowsAffected()
	return n == 1, err
}

// lockPair names a lease: a key and the token that holds it.
type lockPair struct{ key, token string }

// batchExecutor runs the batched extend: a *sql.DB.
type batchExecutor interface {
	SQLExecutor
	SQLQueryer
}

// pairDocument is the JSON array of [key, token] pairs the batched extends of PostgreSQL and SQLite bind.
// Keys and tokens are valid UTF-8 without NUL, so JSON carries them exactly.
func pairDocument(pairs []lockPair) (string, error) {
	doc := make([][2]string, len(pairs))
	for i, p := range pairs {
		doc[i] = [2]string{p.key, p.token}
	}
	b, err := json.Marshal(doc)
	return string(b), err
}

// scanPairs reads (key, token) rows and closes them.
func scanPairs(rows *sql.Rows, capacity int) (map[lockPair]bool, error) {
	defer rows.Close()
	held := make(map[lockPair]bool, capacity)
	for rows.Next() {
		var p lockPair
		if err := rows.Scan(&p.key, &p.token); err != nil {
			return nil, err
		}
		held[p] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return held, nil
}
