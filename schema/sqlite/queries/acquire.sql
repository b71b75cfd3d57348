-- Parameters: 1 key, 2 token, 3 TTL in microseconds, 4 owner, 5 data, 6 the caller's ticket in the key's
-- wait queue (0: none), 7 the hand-over grace in microseconds.
-- Times are microseconds since the epoch, at millisecond resolution: SQLite keeps 'now' as whole
-- milliseconds of Julian day, fixed for the whole statement, and julianday() exists in every version
-- (unixepoch() needs 3.38, its 'subsec' 3.42, and gives NULL before). Rounding recovers those
-- milliseconds exactly: the double's error is under 0.05 ms until the year 9999.
-- A NULL clock must never admit an acquirer, since a NULL expire_at reads as released: it makes the
-- inserted fence NULL, and SQLite checks NOT NULL before the upsert, so the statement fails instead.
-- The queue is PostgreSQL's (see its acquire.sql): a free lock goes first to the ticket after queue_head,
-- each later ticket one grace later, a caller without a ticket after up to four graces. When another holds
-- the lock, or it is not the caller's turn, the NOT EXISTS inserts nothing and nothing is written; the
-- WHERE of the upsert asks again. A new row's fence starts above the fence floor, the row of the empty key
-- that prune_floor.sql raises before prune_delete.sql deletes rows whose fence is not above it; SQLite runs
-- one writer at a time, so the statement that finds the key without a row sees every raise before it.
INSERT INTO "distributed_locks"
    (lock_key, token, expire_at, ttl_us, fence, owner, data, acquired_at)
SELECT ?1, ?2, CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000 + ?3, ?3,
       CASE WHEN julianday('now') IS NOT NULL
            THEN 1 + COALESCE((SELECT f.fence FROM "distributed_locks" AS f WHERE f.lock_key = ''), 0) END,
       ?4, ?5,
       CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000
WHERE NOT EXISTS (
    SELECT 1 FROM "distributed_locks" AS c
    WHERE c.lock_key = ?1
      AND c.token IS NOT ?2
      AND NOT ((c.expire_at IS NULL OR c.expire_at <= CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000)
               AND COALESCE(c.expire_at, c.freed_at, -9223372036854775807)
                   + ?7 * CASE WHEN ?6 > 0 THEN MAX(?6 - c.queue_head - 1, 0)
                               ELSE MIN(c.queue_tail - c.queue_head, 4) END
                   <= CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000))
ON CONFLICT (lock_key) DO UPDATE
SET token       = excluded.token,
    expire_at   = excluded.expire_at,
    ttl_us      = excluded.ttl_us,
    fence       = fence + 1,
    owner       = excluded.owner,
    data        = excluded.data,
    acquired_at = excluded.acquired_at,
    queue_head  = CASE WHEN expire_at > CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000 THEN queue_head
                       WHEN ?6 > 0 THEN MAX(queue_head, ?6)
                       ELSE queue_tail END
WHERE token = excluded.token
   OR ((expire_at IS NULL OR expire_at <= CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000)
       AND COALESCE(expire_at, freed_at, -9223372036854775807)
           + ?7 * CASE WHEN ?6 > 0 THEN MAX(?6 - queue_head - 1, 0)
                       ELSE MIN(queue_tail - queue_head, 4) END
           <= CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000)
RETURNING fence
