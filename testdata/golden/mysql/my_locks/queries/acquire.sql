-- Parameters: key, token, TTL, TTL, owner, data; then in the update, for each column, the token the
-- test compares with and the value the column takes.
-- Times are microseconds since the epoch on the server's UTC clock, whatever the session time_zone.
-- Every assignment asks the row the same question, whether it is free or held by this caller's token. MySQL
-- assigns left to right and later assignments see earlier ones, MariaDB too unless sql_mode has
-- SIMULTANEOUS_ASSIGNMENT. The answer is the same either way because expire_at, which the question
-- reads, is assigned last, and token changes only to this caller's token, only when the answer is yes.
-- LAST_INSERT_ID(fence + 1) hands the new fence back in the OK packet; a fresh row reports 0 and one
-- affected row (fence 1). A refused attempt bumps contended, so the row always changes and the
-- affected-rows count is 2 with or without clientFoundRows.
INSERT INTO `my_locks`
    (lock_key, token, expire_at, ttl_us, fence, owner, data, acquired_at)
VALUES
    (?, ?, TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) + ?, ?, 1, ?, ?, TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)))
ON DUPLICATE KEY UPDATE
    token       = IF(expire_at IS NULL OR expire_at <= TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) OR token = ?, ?, token),
    fence       = IF(expire_at IS NULL OR expire_at <= TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) OR token = ?, LAST_INSERT_ID(fence + 1), fence),
    contended   = IF(expire_at IS NULL OR expire_at <= TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) OR token = ?, contended, contended + 1),
    ttl_us      = IF(expire_at IS NULL OR expire_at <= TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) OR token = ?, ?, ttl_us),
    owner       = IF(expire_at IS NULL OR expire_at <= TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) OR token = ?, ?, owner),
    data        = IF(expire_at IS NULL OR expire_at <= TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) OR token = ?, ?, data),
    acquired_at = IF(expire_at IS NULL OR expire_at <= TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) OR token = ?, TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)), acquired_at),
    expire_at   = IF(expire_at IS NULL OR expire_at <= TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) OR token = ?, TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) + ?, expire_at)
