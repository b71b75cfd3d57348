-- Parameters: key, token, TTL, TTL, owner, data, then in the update the token, the values it sets, and the TTL.
-- Times are microseconds since the epoch on the server's UTC clock, whatever the session time_zone.
-- MySQL assigns left to right and later assignments see earlier ones, so token goes first, tested on
-- the row as it was; every later assignment asks whether token now holds this caller's token.
-- LAST_INSERT_ID(fence + 1) hands the new fence back in the OK packet; a fresh row reports 0 and one
-- affected row (fence 1). A refused attempt bumps contended, so the row always changes and the
-- affected-rows count is 2 with or without clientFoundRows.
INSERT INTO `distributed_locks`
    (lock_key, token, expire_at, ttl_us, fence, owner, data, acquired_at)
VALUES
    (?, ?, TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) + ?, ?, 1, ?, ?, TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)))
ON DUPLICATE KEY UPDATE
    token       = IF(expire_at IS NULL OR expire_at <= TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) OR token = ?, ?, token),
    fence       = IF(token = ?, LAST_INSERT_ID(fence + 1), fence),
    contended   = IF(token = ?, contended, contended + 1),
    expire_at   = IF(token = ?, TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) + ?, expire_at),
    ttl_us      = IF(token = ?, ?, ttl_us),
    owner       = IF(token = ?, ?, owner),
    data        = IF(token = ?, ?, data),
    acquired_at = IF(token = ?, TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)), acquired_at)
