-- Parameters: 1 key, 2 token, 3 TTL in microseconds, 4 owner, 5 data.
-- Times are microseconds since the epoch; 'now' is fixed for the whole statement.
INSERT INTO "app"."my_locks"
    (lock_key, token, expire_at, ttl_us, fence, owner, data, acquired_at)
VALUES
    (?1, ?2, CAST(unixepoch('subsec') * 1000000 AS INTEGER) + ?3, ?3, 1, ?4, ?5, CAST(unixepoch('subsec') * 1000000 AS INTEGER))
ON CONFLICT (lock_key) DO UPDATE
SET token       = excluded.token,
    expire_at   = excluded.expire_at,
    ttl_us      = excluded.ttl_us,
    fence       = fence + 1,
    owner       = excluded.owner,
    data        = excluded.data,
    acquired_at = excluded.acquired_at
WHERE expire_at IS NULL
   OR expire_at <= CAST(unixepoch('subsec') * 1000000 AS INTEGER)
   OR token = excluded.token
RETURNING fence
