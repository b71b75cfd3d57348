-- Parameters: data, key, token. An elected leader's new value (Election.Proclaim): the fence, the owner
-- and the lease stay as they are, so the term does not change.
-- LAST_INSERT_ID(expire_at) leaves the expiry as it is and reports the row found even when the value is
-- unchanged, where the affected-rows count would be 0 without clientFoundRows.
-- The guard is extend.sql's: in a session whose clock (SET timestamp) is ahead of SYSDATE(6) or more than
-- 10 minutes behind it, error 1690 names session_clock_moved and nothing changes; the held test keeps the
-- statement's start, which past the check is not later than the real time.
UPDATE `distributed_locks`
SET data      = ?,
    expire_at = LAST_INSERT_ID(expire_at)
WHERE lock_key = ?
  AND token = ?
  AND (9223372036854775807 + (TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) NOT BETWEEN 0 AND 600000000 AND 'session_clock_moved' <> '') - 9223372036854775807) = 0
  AND expire_at > TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))
