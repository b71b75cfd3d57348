-- The heartbeats' extend of several locks at once, each for the same TTL.
-- Parameters: 1 TTL in microseconds, 2 the locks as a JSON array of [key, token] pairs.
-- Returns the locks it extended: a lock missing from the result is no longer held under its token.
UPDATE "app"."my_locks"
SET expire_at = CAST(unixepoch('subsec') * 1000000 AS INTEGER) + ?1,
    ttl_us    = ?1
WHERE (lock_key, token) IN (SELECT pair.value ->> 0, pair.value ->> 1 FROM json_each(?2) AS pair)
  AND expire_at > CAST(unixepoch('subsec') * 1000000 AS INTEGER)
RETURNING lock_key, token
