-- The heartbeats' extend of several locks at once, each for the same TTL.
-- Parameters: 1 TTL in microseconds, 2 the locks as a JSON array of [key, token] pairs.
-- Returns the locks it extended: a lock missing from the result is no longer held under its token.
UPDATE "my_locks"
SET expire_at = statement_timestamp() + $1::bigint * interval '1 microsecond',
    ttl_us    = $1
WHERE (lock_key, token) IN (SELECT pair ->> 0, pair ->> 1 FROM jsonb_array_elements($2::jsonb) AS pair)
  AND expire_at > statement_timestamp()
RETURNING lock_key, token
