-- Parameters: key prefix (empty for every key) twice, only held locks (0 or 1), maximum number of rows.
-- The empty key is the fence floor (see prune*.sql), not a lock.
-- LENGTH and SUBSTRING count bytes, as lock_key is VARBINARY.
-- The clock is get.sql's, read once in a derived table that LIMIT keeps from being merged, so that the
-- held filter and the last column agree on every row although SYSDATE(6) moves during the statement.
SELECT lock_key, token, owner, data, fence, ttl_us, acquired_at, expire_at, clock.now_us,
       GREATEST(queue_tail - queue_head, 0)
FROM `app`.`my_locks`,
     (SELECT TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) + TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) + (9223372036854775807 + (TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) NOT BETWEEN 0 AND 600000000 AND 'session_clock_moved' <> '') - 9223372036854775807) AS now_us LIMIT 1) AS clock
WHERE SUBSTRING(lock_key, 1, LENGTH(?)) = ?
  AND lock_key <> ''
  AND (? = 0 OR expire_at > clock.now_us)
ORDER BY lock_key
LIMIT ?
