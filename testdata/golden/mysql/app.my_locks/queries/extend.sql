-- Parameters: TTL, TTL, key, token.
-- LAST_INSERT_ID(expire_at) reports success even when the new expiry equals the old one,
-- where the affected-rows count would be 0 without clientFoundRows.
-- The clock is acquire.sql's: in a session whose clock (SET timestamp) is ahead of SYSDATE(6) or more than
-- 10 minutes behind it, error 1690 names session_clock_moved and nothing changes. No acquired_at has to
-- stay exact here, so the new expiry always counts from the real time, UTC_TIMESTAMP(6) plus the lag of
-- SYSDATE(6) behind NOW(6), which a clock moved back cannot shorten; the held test keeps the statement's
-- start, which past the check is not later than the real time.
UPDATE `app`.`my_locks`
SET ttl_us    = ?,
    expire_at = LAST_INSERT_ID(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) + TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) + ?)
WHERE lock_key = ?
  AND token = ?
  AND (9223372036854775807 + (TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) NOT BETWEEN 0 AND 600000000 AND 'session_clock_moved' <> '') - 9223372036854775807) = 0
  AND expire_at > TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))
