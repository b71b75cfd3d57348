-- Parameters: 1 key prefix (empty for every key), 2 only held locks (0 or 1), 3 maximum number of rows.
-- The empty key is the fence floor (see prune*.sql), not a lock.
SELECT lock_key, token, owner, data, fence, ttl_us, acquired_at, expire_at,
       CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000,
       max(queue_tail - queue_head, 0)
FROM "app"."my_locks"
WHERE substr(lock_key, 1, length(?1)) = ?1
  AND lock_key <> ''
  AND (?2 = 0 OR expire_at > CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000)
ORDER BY lock_key
LIMIT ?3
