-- Parameters: 1 the last key of the previous batch, 2 the last key of this batch (from prune_scan.sql),
-- 3 the fence floor just raised, 4 how long a row must have been free in microseconds, 5 the hand-over
-- grace in microseconds.
-- Deletes the batch's rows that are still prunable (see prune_scan.sql) and whose fence the floor covers:
-- a row acquired again since the scan is held, or freed too recently, or above the floor, and stays.
DELETE FROM "app"."my_locks"
WHERE lock_key > ?1
  AND lock_key <= ?2
  AND fence <= ?3
  AND (expire_at IS NULL OR expire_at <= CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000)
  AND COALESCE(expire_at, freed_at, -9223372036854775807) + ?4 <= CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000
  AND (queue_head = queue_tail
       OR COALESCE(expire_at, freed_at, -9223372036854775807) + ?5 * (queue_tail - queue_head) <= CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000)
