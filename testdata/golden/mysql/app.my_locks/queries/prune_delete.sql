-- Parameters: the last key of the previous batch, the last key of this batch (from prune_scan.sql), the
-- fence floor just raised, how long a row must have been free in microseconds, the hand-over grace in
-- microseconds.
-- Deletes the batch's rows that are still prunable (see prune_scan.sql) and whose fence the floor covers:
-- a row acquired again since the scan is held, or freed too recently, or above the floor, and stays.
-- The session clock's check is acquire.sql's: a clock moved ahead would make a held lock look free.
DELETE FROM `app`.`my_locks`
WHERE lock_key > ?
  AND lock_key <= ?
  AND fence <= ?
  AND (expire_at IS NULL OR expire_at <= TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)))
  AND COALESCE(expire_at, freed_at, -9223372036854775807) + ? <= TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))
  AND (queue_head = queue_tail
       OR COALESCE(expire_at, freed_at, -9223372036854775807) + ? * (queue_tail - queue_head) <= TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)))
  AND (9223372036854775807 + (TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) NOT BETWEEN 0 AND 600000000 AND 'session_clock_moved' <> '') - 9223372036854775807) = 0
