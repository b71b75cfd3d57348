-- Parameters: 1 key, 2 token, 3 TTL in microseconds, 4 owner, 5 data.
-- statement_timestamp(), not now(): now() is the start of the caller's transaction,
-- which may be long past. A microsecond interval is exact; a day would follow DST.
INSERT INTO "my_locks" AS l
    (lock_key, token, expire_at, ttl_us, fence, owner, data, acquired_at)
VALUES
    ($1, $2, statement_timestamp() + $3::bigint * interval '1 microsecond', $3, 1, $4, $5, statement_timestamp())
ON CONFLICT (lock_key) DO UPDATE
SET token       = excluded.token,
    expire_at   = excluded.expire_at,
    ttl_us      = excluded.ttl_us,
    fence       = l.fence + 1,
    owner       = excluded.owner,
    data        = excluded.data,
    acquired_at = excluded.acquired_at
WHERE l.expire_at IS NULL
   OR l.expire_at <= statement_timestamp()
   OR l.token = excluded.token
RETURNING l.fence
