package distrlock

// SQLite (DialectSQLite): its dialectSpec and the Go code only it runs; the SQL is in schema/sqlite/.

import (
	"context"
)

var sqliteSpec = &dialectSpec{
	dir: "sqlite", quote: '"', migrateID: "sqlite3",
	acquire:        acquireReturning,
	extendArgs:     func(key, token string, ttl int64) []any { return []any{ttl, key, token} },
	releaseArgs:    func(key, token string, hold int64, _ bool) []any { return []any{key, token, hold} },
	listArgs:       func(p string, held bool, n int64) []any { return []any{p, boolInt(held), n} },
	extended:       oneRowAffected,
	extendBatch:    extendBatchReturning,
	enqueue:        enqueueReturning,
	dequeueArgs:    func(key string, t int64) []any { return []any{key, t} },
	pruneFloorArgs: func(floor int64) []any { return []any{floor} },
	pruneDeleteArgs: func(after, last string, floor, freeFor, grace int64) []any {
		return []any{after, last, floor, freeFor, grace}
	},
}

// extendBatchReturning runs an UPDATE that takes the pairs as one JSON document and returns the rows it
// changed (SQLite, which has no row locks to skip).
func extendBatchReturning(ctx context.Context, db batchExecutor, q *queries, ttlMicros int64, pairs []lockPair) (map[lockPair]bool, error) {
	doc, err := pairDocument(pairs)
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, q.extendBatch, ttlMicros, doc)
	if err != nil {
		return nil, err
	}
	return scanPairs(rows, len(pairs))
}

// sqliteCodes classifies the primary result codes of modernc's and mattn's SQLite errors.
var sqliteCodes = map[int64]failure{
	5: failTransient, // SQLITE_BUSY
	6: failTransient, // SQLITE_LOCKED
	8: failReadOnly,  // SQLITE_READONLY
}
