-- Which of the locks of a batched extend are still held under their tokens, after that extend.
-- Parameters: a key and its token per lock (the pair list below is sent with one (?, ?) per lock),
-- then the batch's TTL in microseconds. A lock the extend did not find can be held again only if a holder sharing
-- its static token took it since, and then counts as extended only with a lease at least as long.
-- The clock is extend.sql's.
SELECT lock_key, token
FROM `distributed_locks` FORCE INDEX (PRIMARY)
WHERE (lock_key, token) IN ((?, ?))
  AND ttl_us >= ?
  AND (9223372036854775807 + (TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) NOT BETWEEN 0 AND 600000000 AND 'session_clock_moved' <> '') - 9223372036854775807) = 0
  AND expire_at > TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))
