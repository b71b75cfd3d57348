-- The waiters' read between attempts. A plain SELECT takes no row lock and writes nothing.
-- Parameters: key. Returns the token; the lease left, how long the lock has been free and how long it has
-- been held, in microseconds (each NULL when it does not apply); the queue's head and tail.
-- The clock is get.sql's: the real time, refused with error 1690 naming session_clock_moved in a session
-- whose clock was moved.
SELECT token,
       expire_at - (TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) + TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) + (9223372036854775807 + (TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) NOT BETWEEN 0 AND 600000000 AND 'session_clock_moved' <> '') - 9223372036854775807)),
       (TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) + TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6))) - COALESCE(expire_at, freed_at),
       (TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) + TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6))) - acquired_at,
       queue_head,
       queue_tail
FROM `app`.`my_locks`
WHERE lock_key = ?
