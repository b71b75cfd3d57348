-- Parameters: 1 TTL in microseconds, 2 key, 3 token.
UPDATE "my_locks"
SET expire_at = CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000 + ?1,
    ttl_us    = ?1
WHERE lock_key = ?2
  AND token = ?3
  AND expire_at > CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000
