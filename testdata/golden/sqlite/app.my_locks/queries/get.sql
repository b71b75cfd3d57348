-- Parameters: 1 key. Times are microseconds since the epoch; the last column is the clock,
-- read in the same statement so that remaining time never mixes clocks.
SELECT lock_key, token, owner, data, fence, ttl_us, acquired_at, expire_at,
       CAST(unixepoch('subsec') * 1000000 AS INTEGER)
FROM "app"."my_locks"
WHERE lock_key = ?1
