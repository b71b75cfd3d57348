-- Parameters: key, token. The row stays so that the next holder's fence continues from this one.
UPDATE `my_locks`
SET expire_at = NULL
WHERE lock_key = ?
  AND token = ?
  AND expire_at > TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))
