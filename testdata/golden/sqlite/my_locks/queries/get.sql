-- Parameters: 1 key. Times are microseconds since the epoch; the ninth column is the clock,
-- read in the same statement so that remaining time never mixes clocks. Then the tickets of waiters not yet
-- served (see acquire.sql).
SELECT lock_key, token, owner, data, fence, ttl_us, acquired_at, expire_at,
       CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000,
       max(queue_tail - queue_head, 0)
FROM "my_locks"
WHERE lock_key = ?1
