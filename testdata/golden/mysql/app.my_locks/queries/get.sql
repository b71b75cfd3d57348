-- Parameters: key. Times are microseconds since the epoch; the ninth column is the server's clock,
-- read in the same statement so that remaining time never mixes clocks. Then the tickets of waiters not yet
-- served (see acquire.sql).
-- That clock is the real time, UTC_TIMESTAMP(6) plus the lag of SYSDATE(6) behind NOW(6), which stays right
-- when a session moves UTC_TIMESTAMP (SET timestamp); with acquire.sql's check, error 1690 names
-- session_clock_moved.
SELECT lock_key, token, owner, data, fence, ttl_us, acquired_at, expire_at,
       TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) + TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) + (9223372036854775807 + (TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) NOT BETWEEN 0 AND 600000000 AND 'session_clock_moved' <> '') - 9223372036854775807),
       GREATEST(queue_tail - queue_head, 0)
FROM `app`.`my_locks`
WHERE lock_key = ?
