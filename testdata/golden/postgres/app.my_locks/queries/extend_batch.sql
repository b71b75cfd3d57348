-- The heartbeats' extend of several locks at once, each for the same TTL.
-- Parameters: 1 TTL in microseconds, 2 the locks as a JSON array of [key, token] pairs.
-- Returns a row per lock it extended (extended true) and per lock it skipped because another
-- transaction holds its row (extended false: held as far as this statement can see, so it is
-- extended alone with extend.sql, which waits for the row). A lock missing from the result is
-- no longer held under its token.
-- The rows are locked in key order and a locked row is skipped, not waited for: the statement
-- can neither deadlock with a caller's transaction nor make every lock wait for one row.
-- locked is computed once, so that the UPDATE and the skipped rows agree on what was locked.
WITH pairs AS (
    SELECT pair ->> 0 AS lock_key, pair ->> 1 AS token
    FROM jsonb_array_elements($2::jsonb) AS pair
), locked AS MATERIALIZED (
    SELECT lock_key
    FROM "app"."my_locks"
    WHERE (lock_key, token) IN (SELECT lock_key, token FROM pairs)
      AND expire_at > statement_timestamp()
    ORDER BY lock_key
    FOR NO KEY UPDATE SKIP LOCKED
), renewed AS (
    UPDATE "app"."my_locks" AS l
    SET expire_at = statement_timestamp() + $1::bigint * interval '1 microsecond',
        ttl_us    = $1
    FROM locked
    WHERE l.lock_key = locked.lock_key
    RETURNING l.lock_key, l.token
)
SELECT lock_key, token, true AS extended
FROM renewed
UNION ALL
SELECT lock_key, token, false
FROM "app"."my_locks"
WHERE (lock_key, token) IN (SELECT lock_key, token FROM pairs)
  AND expire_at > statement_timestamp()
  AND lock_key NOT IN (SELECT lock_key FROM locked)
