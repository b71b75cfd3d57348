-- Parameters: 1 key, 2 token, 3 TTL in microseconds, 4 owner, 5 data.
-- Times are microseconds since the epoch, at millisecond resolution: SQLite keeps 'now' as whole
-- milliseconds of Julian day, fixed for the whole statement, and julianday() exists in every version
-- (unixepoch() needs 3.38, its 'subsec' 3.42, and gives NULL before). Rounding recovers those
-- milliseconds exactly: the double's error is under 0.05 ms until the year 9999.
-- A NULL clock must never admit an acquirer, since a NULL expire_at reads as released: it makes the
-- inserted fence NULL, and SQLite checks NOT NULL before the upsert, so the statement fails instead.
INSERT INTO "distributed_locks"
    (lock_key, token, expire_at, ttl_us, fence, owner, data, acquired_at)
VALUES
    (?1, ?2, CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000 + ?3, ?3,
     CASE WHEN julianday('now') IS NOT NULL THEN 1 END, ?4, ?5,
     CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000)
ON CONFLICT (lock_key) DO UPDATE
SET token       = excluded.token,
    expire_at   = excluded.expire_at,
    ttl_us      = excluded.ttl_us,
    fence       = fence + 1,
    owner       = excluded.owner,
    data        = excluded.data,
    acquired_at = excluded.acquired_at
WHERE expire_at IS NULL
   OR expire_at <= CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000
   OR token = excluded.token
RETURNING fence
