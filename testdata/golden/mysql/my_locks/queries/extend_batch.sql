-- The heartbeats' extend of several locks at once, each for the same TTL.
-- Parameters: TTL, TTL, then a key and its token per lock: the pair list below is sent
-- with one (?, ?) per lock. FORCE INDEX keeps a long list a set of primary-key lookups: a scan
-- would lock every row it reads until the statement ends.
-- The affected-rows count says how many locks were extended; when it falls short,
-- extend_batch_held.sql tells which.
-- The clock is extend.sql's.
UPDATE `my_locks` FORCE INDEX (PRIMARY)
SET ttl_us    = ?,
    expire_at = TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) + TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) + ?
WHERE (lock_key, token) IN ((?, ?))
  AND (9223372036854775807 + (TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) NOT BETWEEN 0 AND 600000000 AND 'session_clock_moved' <> '') - 9223372036854775807) = 0
  AND expire_at > TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))
