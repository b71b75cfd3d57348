-- The heartbeats' extend of several locks at once, each for the same TTL.
-- Parameters: 1 TTL in microseconds, 2 the locks as a JSON array of [key, token] pairs.
-- Returns the locks it extended: a lock missing from the result is no longer held under its token.
-- json_extract rather than ->>, which needs SQLite 3.38; RETURNING (3.35) is the floor.
UPDATE "distributed_locks"
SET expire_at = CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000 + ?1,
    ttl_us    = ?1
WHERE (lock_key, token) IN (SELECT json_extract(pair.value, '$[0]'), json_extract(pair.value, '$[1]') FROM json_each(?2) AS pair)
  AND expire_at > CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000
RETURNING lock_key, token
