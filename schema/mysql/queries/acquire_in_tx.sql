-- acquire.sql for a caller's transaction, which it sends instead: the same statement without the gate, and
-- so without the queue's order. The gate's read of a key that has no row yet would take a gap lock that
-- blocks the first acquire of other keys until the caller's transaction ends.
-- Parameters: key, token, TTL, TTL, owner, data; then in the update, for each column, the token the
-- test compares with and the value the column takes, and for queue_head the ticket twice.
-- Times are microseconds since the epoch on the server's UTC clock, whatever the session time_zone.
-- Every assignment asks the row the same question, whether it is free or held by this caller's token. MySQL
-- assigns left to right and later assignments see earlier ones, MariaDB too unless sql_mode has
-- SIMULTANEOUS_ASSIGNMENT. The answer is the same either way because expire_at, which the question
-- reads, is assigned last, token changes only to this caller's token, only when the answer is yes, and
-- the question's clock, UTC_TIMESTAMP(6), is fixed for the whole statement.
-- A session can move that clock, and NOW(6), with SET timestamp (replication appliers and tests do).
-- SYSDATE(6) it cannot move, but SYSDATE is read anew at each call, so it cannot be the question's clock,
-- and it is a local time with no UTC twin, which UNIX_TIMESTAMP converts ambiguously in the hour a zone
-- falls back. Its lag behind NOW(6), both local times in the session's zone, is how far the session's
-- clock is from the real one wherever the zone's offset is the same at both instants; in an unmoved
-- session it is the time the statement has taken so far. The fence of the inserted row, evaluated once and
-- before any row lock wait, checks that lag. Below 0 (a clock moved ahead, or an offset that fell back
-- during the statement) or above 10 minutes (moved far back, or an offset that sprang forward: daylight
-- saving moves clocks by 30 minutes or more), 9223372036854775807 + (the check) overflows: error 1690
-- whatever the sql_mode, and nothing is written. The string only names the check in the error's text.
-- Past the check UTC_TIMESTAMP is not later than the real time, so the takeover test never frees a live
-- lease early.
-- The new lease counts from UTC_TIMESTAMP while the lag is at most 10 ms, so that acquired_at + TTL =
-- expire_at exactly in an unmoved session; beyond that from the real time, UTC_TIMESTAMP plus the lag, so
-- that a clock moved back does not shorten it (one moved back by less than 10 ms shortens it by that much).
-- The check misses a session in a zone with daylight saving time whose clock was moved across a change of
-- the zone's offset by about that change, and a server run with --sysdate-is-now, where SYSDATE is NOW.
-- LAST_INSERT_ID(fence + 1) hands the new fence back in the OK packet; a fresh row's fence, also through
-- LAST_INSERT_ID, starts above the fence floor, the row of the empty key that prune_floor.sql raises before
-- prune_delete.sql deletes any row whose fence is not above it. The floor is read with a share lock: a
-- raise waits for this statement, or this statement reads the raised floor, so a key found without a row
-- starts above every fence it had. acquire.sql reads the floor only for a key without a row, which takes
-- a locking read of the key: here that read would take the gap lock this file avoids, so the floor is read
-- for every key, and stays share-locked until the caller's transaction ends (a prune batch waits for it).
-- A held row's update calls LAST_INSERT_ID(0) to report 0 again, since the inserted row's value came first. A refused attempt bumps contended, so the row always changes and the
-- affected-rows count is 2 with or without clientFoundRows.
INSERT INTO `distributed_locks`
    (lock_key, token, expire_at, ttl_us, fence, owner, data, acquired_at)
SELECT ?, ?,
       TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) + IF(TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) > 10000, TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)), 0) + ?,
       ?,
       LAST_INSERT_ID(1 + COALESCE((SELECT f.fence FROM `distributed_locks` AS f WHERE f.lock_key = '' LOCK IN SHARE MODE), 0) + (9223372036854775807 + (TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) NOT BETWEEN 0 AND 600000000 AND 'session_clock_moved' <> '') - 9223372036854775807)),
       ?, ?,
       TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) + IF(TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) > 10000, TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)), 0)
FROM DUAL
ON DUPLICATE KEY UPDATE
    token       = IF(expire_at IS NULL OR expire_at <= TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) OR token = ?, ?, token),
    fence       = IF(expire_at IS NULL OR expire_at <= TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) OR token = ?, LAST_INSERT_ID(fence + 1), fence + LAST_INSERT_ID(0)),
    contended   = IF(expire_at IS NULL OR expire_at <= TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) OR token = ?, contended, contended + 1),
    ttl_us      = IF(expire_at IS NULL OR expire_at <= TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) OR token = ?, ?, ttl_us),
    owner       = IF(expire_at IS NULL OR expire_at <= TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) OR token = ?, ?, owner),
    data        = IF(expire_at IS NULL OR expire_at <= TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) OR token = ?, ?, data),
    acquired_at = IF(expire_at IS NULL OR expire_at <= TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) OR token = ?, TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) + IF(TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) > 10000, TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)), 0), acquired_at),
    queue_head  = IF(expire_at IS NULL OR expire_at <= TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)), IF(? > 0, GREATEST(queue_head, ?), queue_tail), queue_head),
    expire_at   = IF(expire_at IS NULL OR expire_at <= TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) OR token = ?, TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) + IF(TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) > 10000, TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)), 0) + ?, expire_at)
