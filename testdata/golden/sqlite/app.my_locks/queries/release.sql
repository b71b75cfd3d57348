-- Parameters: 1 key, 2 token. The row stays so that the next holder's fence continues from this one.
UPDATE "app"."my_locks"
SET expire_at = NULL
WHERE lock_key = ?1
  AND token = ?2
  AND expire_at > CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000
