-- The waiters' read between attempts: who holds the key and for how much longer. A plain SELECT takes no
-- row lock and writes nothing, where a refused acquire bumps contended and commits.
-- Parameters: key. Returns the token and the lease left in microseconds (NULL once released).
-- The clock is get.sql's: the real time, refused with error 1690 naming session_clock_moved in a session
-- whose clock was moved.
SELECT token,
       expire_at - (TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) + TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) + (9223372036854775807 + (TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) NOT BETWEEN 0 AND 600000000 AND 'session_clock_moved' <> '') - 9223372036854775807))
FROM `my_locks`
WHERE lock_key = ?
