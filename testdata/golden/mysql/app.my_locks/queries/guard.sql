-- Parameters: key, token.
-- Sent inside the caller's transaction: a locking read sees the latest committed row at every isolation
-- level, and LOCK IN SHARE MODE (which MariaDB and MySQL 8 both accept) keeps the row share-locked until
-- that transaction ends; the gate of acquire.sql reads the row FOR UPDATE and acquire_in_tx.sql updates it,
-- so any acquire waits.
-- The clock and its check are extend.sql's: a session whose clock was moved gets error 1690 naming
-- session_clock_moved, instead of a lease judged by a clock that is not the server's.
SELECT fence
FROM `app`.`my_locks`
WHERE lock_key = ?
  AND token = ?
  AND (9223372036854775807 + (TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) NOT BETWEEN 0 AND 600000000 AND 'session_clock_moved' <> '') - 9223372036854775807) = 0
  AND expire_at > TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))
LOCK IN SHARE MODE
