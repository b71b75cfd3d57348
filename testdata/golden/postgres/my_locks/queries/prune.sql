-- Parameters: 1 how long a row must have been free, in microseconds; 2 the hand-over grace in
-- microseconds; 3 the last key of the previous batch ('' for the first); 4 the batch size.
-- Deletes up to a batch of rows, in key order after $3, that are free (released, or expired on the
-- database's clock) since at least $1 ago and whose wait queue is empty or abandoned: a live waiter with
-- ticket t takes a free lock within (t - queue_head - 1) graces of its freeing (see acquire.sql), so once
-- the lock has been free for (queue_tail - queue_head) graces no waiter of its queue is still alive.
-- The empty key, which no lock can have, is the fence floor: the same statement raises its fence to the
-- largest fence deleted, so acquire.sql starts a pruned key's new row above every fence it had. Rows that
-- another transaction holds locked (an acquire in progress) are skipped, not waited for; a row locked here
-- is taken again from its latest version, so one acquired since the statement began is kept.
WITH doomed AS (
    SELECT lock_key
    FROM "my_locks"
    WHERE lock_key > $3::text
      AND (expire_at IS NULL OR expire_at <= statement_timestamp())
      AND COALESCE(expire_at, freed_at, '-infinity') + $1::bigint * interval '1 microsecond' <= statement_timestamp()
      AND (queue_head = queue_tail
           OR COALESCE(expire_at, freed_at, '-infinity')
              + $2::bigint * (queue_tail - queue_head) * interval '1 microsecond' <= statement_timestamp())
    ORDER BY lock_key
    LIMIT $4::bigint
    FOR UPDATE SKIP LOCKED
), deleted AS (
    DELETE FROM "my_locks" AS l
    USING doomed
    WHERE l.lock_key = doomed.lock_key
    RETURNING l.lock_key, l.fence
), raised AS (
    INSERT INTO "my_locks" AS f (lock_key, fence)
    SELECT '', max(fence) FROM deleted HAVING count(*) > 0
    ON CONFLICT (lock_key) DO UPDATE SET fence = GREATEST(f.fence, excluded.fence)
)
SELECT count(*), COALESCE(max(lock_key), '') FROM deleted
