-- Parameters: 1 key, 2 token, 3 the least time in microseconds the lock stays taken after its
-- acquisition (0: none). The row stays so that the next holder's fence continues from this one.
-- A lock released before acquired_at + that time keeps its lease until then.
UPDATE "app"."my_locks"
SET expire_at = CASE WHEN acquired_at + ?3 > CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000 THEN acquired_at + ?3 END,
    freed_at  = CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000
WHERE lock_key = ?1
  AND token = ?2
  AND expire_at > CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000
