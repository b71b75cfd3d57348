-- Parameters: 1 key, 2 token.
-- SQLite has no row locks: a write transaction holds the whole database's write lock until it ends, so the
-- caller's transaction must be one already (BEGIN IMMEDIATE, e.g. the DSN's _txlock=immediate, or a write
-- before this statement). Then no other connection can take the lock before it commits.
SELECT fence
FROM "my_locks"
WHERE lock_key = ?1
  AND token = ?2
  AND expire_at > CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000
