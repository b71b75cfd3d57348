-- Parameters: key. Times are microseconds since the epoch; the last column is the server's clock,
-- read in the same statement so that remaining time never mixes clocks.
SELECT lock_key, token, owner, data, fence, ttl_us, acquired_at, expire_at,
       TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))
FROM `my_locks`
WHERE lock_key = ?
