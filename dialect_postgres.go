package distrlock

// PostgreSQL (DialectPostgres and DialectPgx): its dialectSpec and the Go code only it runs; the SQL is in
// schema/postgres/.

import (
	"context"
)

var postgresSpec = &dialectSpec{
	dir: "postgres", quote: '"', migrateID: "postgres",
	acquire:     acquireReturning,
	extendArgs:  func(key, token string, ttl int64) []any { return []any{ttl, key, token} },
	releaseArgs: func(key, token string, hold int64, auto bool) []any { return []any{key, token, hold, auto} },
	listArgs:    func(p string, held bool, n int64) []any { return []any{p, held, n} },
	extended:    oneRowAffected,
	extendBatch: extendBatchPostgres,
	notify:      true,
	enqueue:     enqueuePostgres,
	dequeueArgs: func(key string, t int64) []any { return []any{key, t} },
	pruneInOne:  true,
}

// enqueuePostgres takes a ticket with enqueue.sql, committed asynchronously in autocommit.
func enqueuePostgres(ctx context.Context, exec SQLExecutor, query, key string) (int64, error) {
	var ticket int64
	err := exec.QueryRowContext(ctx, query, key, autocommit(exec)).Scan(&ticket)
	return ticket, err
}

// extendBatchPostgres runs an UPDATE that takes the pairs as one JSON document, skips the rows another
// transaction holds, and returns a row per pair it extended or skipped.
func extendBatchPostgres(ctx context.Context, db batchExecutor, q *queries, ttlMicros int64, pairs []lockPair) (map[lockPair]bool, error) {
	doc, err := pairDocument(pairs)
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, q.extendBatch, ttlMicros, doc)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	held := make(map[lockPair]bool, len(pairs))
	for rows.Next() {
		var p lockPair
		var extended bool
		if err := rows.Scan(&p.key, &p.token, &extended); err != nil {
			return nil, err
		}
		held[p] = extended
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return held, nil
}

// postgresStates classifies the SQLSTATEs of pgx's and lib/pq's errors.
var postgresStates = map[string]failure{
	"40001": failTransient, // serialization_failure
	"40P01": failTransient, // deadlock_detected
	"55P03": failTransient, // lock_not_available (lock_timeout)
	"25006": failReadOnly,  // read_only_sql_transaction: a standby, or a read-only transaction or session
	"42703": failSchema,    // undefined_column
	"42P01": failSchema,    // undefined_table
	// duplicate_prepared_statement and invalid_sql_statement_name: pgx's statement cache behind PgBouncer's
	// transaction pooling (prepared statement "stmtcache_…" already exists, or does not exist).
	"42P05": failPreparedStatement,
	"26000": failPreparedStatement,
}
