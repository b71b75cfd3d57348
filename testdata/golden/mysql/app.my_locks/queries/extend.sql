-- Parameters: TTL, TTL, key, token.
-- LAST_INSERT_ID(expire_at) reports success even when the new expiry equals the old one,
-- where the affected-rows count would be 0 without clientFoundRows.
UPDATE `app`.`my_locks`
SET ttl_us    = ?,
    expire_at = LAST_INSERT_ID(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) + ?)
WHERE lock_key = ?
  AND token = ?
  AND expire_at > TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))
