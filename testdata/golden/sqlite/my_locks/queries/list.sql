-- Parameters: 1 key prefix (empty for every key), 2 only held locks (0 or 1), 3 maximum number of rows.
SELECT lock_key, token, owner, data, fence, ttl_us, acquired_at, expire_at,
       CAST(unixepoch('subsec') * 1000000 AS INTEGER)
FROM "my_locks"
WHERE substr(lock_key, 1, length(?1)) = ?1
  AND (?2 = 0 OR expire_at > CAST(unixepoch('subsec') * 1000000 AS INTEGER))
ORDER BY lock_key
LIMIT ?3
