-- Parameters: 1 data, 2 key, 3 token. An elected leader's new value (Election.Proclaim): the fence, the
-- owner and the lease stay as they are, so the term does not change. The clock is acquire.sql's.
UPDATE "my_locks"
SET data = ?1
WHERE lock_key = ?2
  AND token = ?3
  AND expire_at > CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000
