-- Parameters: key, token, TTL, TTL, key, owner, data; then the gate's key, token, hand-over grace and the
-- caller's ticket twice (0: none); then in the update, for each column, the token the test compares with
-- and the value the column takes, and for queue_head the ticket twice.
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
-- session it is the time the statement has taken so far. The gate's WHERE, evaluated once and before any
-- row lock wait, checks that lag, and so does the fence of the inserted row. Below 0 (a clock moved ahead, or an offset that fell back
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
-- The queue is PostgreSQL's (see its acquire.sql): a free lock goes first to the ticket after queue_head,
-- each later ticket one grace later, a caller without a ticket after up to four graces. The gate, NOT
-- EXISTS, reads the row: when another holds the lock, or it is not the caller's turn, the SELECT yields no
-- row, nothing is inserted or updated, and the affected-rows count is 0. Otherwise the update asks again of
-- the row under its lock. The gate reads FOR UPDATE: InnoDB's INSERT … SELECT would otherwise take a
-- shared lock on the row, and two callers that both passed it would deadlock upgrading it. The exclusive
-- lock of a refused attempt writes nothing (no redo) and ends with the statement in autocommit.
-- LAST_INSERT_ID(fence + 1) hands the new fence back in the OK packet; a fresh row's fence, also through
-- LAST_INSERT_ID, starts above the fence floor, the row of the empty key that prune_floor.sql raises before
-- prune_delete.sql deletes any row whose fence is not above it. The floor is read only when a locking
-- read finds the key without a row (and locks its row, or the gap where it would be, so that it stays so),
-- and then with a share lock: a raise waits for this statement, or this statement reads the raised floor,
-- so the new row starts above every fence the key had. A key with a row reads and locks no floor. A held
-- row's update calls LAST_INSERT_ID(0) to report 0 again, since the inserted row's value came first. An attempt that passed the gate but finds the lock held bumps contended, so the
-- row always changes and the affected-rows count is 2 with or without clientFoundRows.
INSERT INTO `app`.`my_locks`
    (lock_key, token, expire_at, ttl_us, fence, owner, data, acquired_at)
SELECT ?, ?,
       TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) + IF(TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) > 10000, TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)), 0) + ?,
       ?,
       LAST_INSERT_ID(IF(EXISTS (SELECT 1 FROM `app`.`my_locks` AS k WHERE k.lock_key = ? FOR UPDATE), 1, 1 + COALESCE((SELECT f.fence FROM `app`.`my_locks` AS f WHERE f.lock_key = '' LOCK IN SHARE MODE), 0)) + (9223372036854775807 + (TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) NOT BETWEEN 0 AND 600000000 AND 'session_clock_moved' <> '') - 9223372036854775807)),
       ?, ?,
       TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) + IF(TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) > 10000, TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)), 0)
FROM DUAL
WHERE (9223372036854775807 + (TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) NOT BETWEEN 0 AND 600000000 AND 'session_clock_moved' <> '') - 9223372036854775807) = 0
  AND NOT EXISTS (
    SELECT 1 FROM `app`.`my_locks` AS c
    WHERE c.lock_key = ?
      AND NOT (c.token <=> ?)
      AND NOT ((c.expire_at IS NULL OR c.expire_at <= TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)))
               AND COALESCE(c.expire_at, c.freed_at, -9223372036854775807)
                   + ? * IF(? > 0, GREATEST(? - c.queue_head - 1, 0), LEAST(c.queue_tail - c.queue_head, 4))
                   <= TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)))
    FOR UPDATE)
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
