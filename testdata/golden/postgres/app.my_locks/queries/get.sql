-- Parameters: 1 key. Times are microseconds since the epoch; the ninth column is the server's clock,
-- read in the same statement so that remaining time never mixes clocks. Then the tickets of waiters not yet
-- served (see acquire.sql).
SELECT lock_key, token, owner, data, fence, ttl_us,
       (extract(epoch FROM acquired_at) * 1000000)::bigint,
       (extract(epoch FROM expire_at) * 1000000)::bigint,
       (extract(epoch FROM statement_timestamp()) * 1000000)::bigint,
       greatest(queue_tail - queue_head, 0)
FROM "app"."my_locks"
WHERE lock_key = $1
