-- Parameters: the least time in microseconds the lock stays taken after its acquisition (0: none) twice,
-- key, token. The row stays so that the next holder's fence continues from this one.
-- A lock released before acquired_at + that time keeps its lease until then: a job guarded for a period
-- runs once in it across the fleet. That time and freed_at follow the real clock, UTC_TIMESTAMP(6) plus the
-- lag of SYSDATE(6) behind NOW(6) (see acquire.sql).
-- Freeing a lock its own token holds is safe on any clock, so a session whose clock was moved (SET
-- timestamp, see acquire.sql) still releases, with no check: the held test takes the earlier of the
-- statement's start, UTC_TIMESTAMP(6), and the real time, that start plus the lag of SYSDATE(6) behind
-- NOW(6). A clock moved ahead thus frees the live lease it holds, and an unmoved session tests as before.
UPDATE `my_locks`
SET expire_at = IF(acquired_at + ? > TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) + TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)), acquired_at + ?, NULL),
    freed_at  = TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) + TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6))
WHERE lock_key = ?
  AND token = ?
  AND expire_at > TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) + LEAST(TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)), 0)
