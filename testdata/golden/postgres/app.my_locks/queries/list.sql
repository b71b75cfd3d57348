-- Parameters: 1 key prefix (empty for every key), 2 only held locks, 3 maximum number of rows.
-- The empty key is the fence floor (see prune*.sql), not a lock.
SELECT lock_key, token, owner, data, fence, ttl_us,
       (extract(epoch FROM acquired_at) * 1000000)::bigint,
       (extract(epoch FROM expire_at) * 1000000)::bigint,
       (extract(epoch FROM statement_timestamp()) * 1000000)::bigint,
       greatest(queue_tail - queue_head, 0)
FROM "app"."my_locks"
WHERE left(lock_key, char_length($1)) = $1
  AND lock_key <> ''
  AND (NOT $2 OR expire_at > statement_timestamp())
ORDER BY lock_key
LIMIT $3
