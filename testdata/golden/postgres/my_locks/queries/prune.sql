-- Parameters: 1 how long a row must have been free, in microseconds; 2 the hand-over grace in
-- microseconds; 3 the last key of the previous batch ('' for the first); 4 the batch size.
-- Returns how many keys the batch read, the last of them, and how many rows it deleted.
-- A batch reads the next $4 keys after $3 in the primary key's order (span: a range the index serves,
-- where an ORDER BY … LIMIT filtered on the lock's state was planned as a sequential scan and a sort of the
-- whole table) and deletes those whose lock is free (released, or expired on the database's clock) since at
-- least $1 ago and whose wait queue is empty or abandoned: a live waiter with ticket t takes a free lock
-- within (t - queue_head - 1) graces of its freeing (see acquire.sql), so once the lock has been free for
-- (queue_tail - queue_head) graces no waiter of its queue is still alive.
-- The empty key, which no lock can have, is the fence floor: the same statement raises its fence to the
-- largest fence deleted, so acquire.sql starts a pruned key's new row above every fence it had. Rows that
-- another transaction holds locked (an acquire in progress) are skipped, not waited for; a row locked here
-- is taken again from its latest version, so one acquired since the statement began is kept.
WITH span AS (
    SELECT lock_key
    FROM "my_locks"
    WHERE lock_key > $3::text
    ORDER BY lock_key
    LIMIT $4::bigint
), doomed AS (
    SELECT l.lock_key
    FROM "my_locks" AS l
    WHERE l.lock_key > $3::text
      AND l.lock_key <= (SELECT max(lock_key) FROM span)
      AND (l.expire_at IS NULL OR l.expire_at <= statement_timestamp())
      AND COALESCE(l.expire_at, l.freed_at, '-infinity') + $1::bigint * interval '1 microsecond' <= statement_timestamp()
      AND (l.queue_head = l.queue_tail
           OR COALESCE(l.expire_at, l.freed_at, '-infinity')
              + $2::bigint * (l.queue_tail - l.queue_head) * interval '1 microsecond' <= statement_timestamp())
    FOR UPDATE SKIP LOCKED
), deleted AS (
    DELETE FROM "my_locks" AS l
    USING doomed
    WHERE l.lock_key = doomed.lock_key
    RETURNING l.fence
), raised AS (
    INSERT INTO "my_locks" AS f (lock_key, fence)
    SELECT '', max(fence) FROM deleted HAVING count(*) > 0
    ON CONFLICT (lock_key) DO UPDATE SET fence = GREATEST(f.fence, excluded.fence)
)
SELECT (SELECT count(*) FROM span), (SELECT COALESCE(max(lock_key), '') FROM span), (SELECT count(*) FROM deleted)
