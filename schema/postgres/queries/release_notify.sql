-- release.sql for a manager with a notifier: a release that frees a lock other processes queued for
-- (tickets after the head, enqueue.sql), or that is told to announce itself, also tells them, by NOTIFY
-- on the notifier's channel, which PostgreSQL delivers when the statement's transaction commits. Any other
-- release publishes nothing, nor does one that keeps the lease until its least time: a NOTIFY wakes every
-- listening connection of the database, and its commit takes twice as long. A waiter that queues after
-- the release reads the row a few milliseconds after its ticket, before it sleeps for a notice (wait.go),
-- so it cannot miss it.
-- Parameters: 1 key, 2 token, 3 the least time in microseconds the lock stays taken after its
-- acquisition (0: none), 4 whether the statement runs in autocommit (see release.sql), 5 the channel,
-- 6 whether to notify when no ticket waits (an election's standbys wait without one).
-- Returns one row when the lock was released, none otherwise: NULL unless it notified, and whether it
-- freed the lock for queued tickets, so that the releaser's next wait can let their waiter take it first.
WITH released AS (
    UPDATE "distributed_locks"
    SET expire_at = CASE WHEN acquired_at + $3::bigint * interval '1 microsecond' > statement_timestamp()
                         THEN acquired_at + $3::bigint * interval '1 microsecond' END,
        freed_at  = statement_timestamp()
    WHERE lock_key = $1
      AND token = $2
      AND expire_at > statement_timestamp()
      AND ($4::boolean IS NOT TRUE OR set_config('synchronous_commit', 'off', true) = 'off')
    RETURNING lock_key,
              expire_at IS NULL AND queue_tail > queue_head AS queued,
              expire_at IS NULL AND (queue_tail > queue_head OR $6::boolean) AS awaited
)
-- CASE, unlike AND or OR, evaluates pg_notify only when its condition holds.
SELECT CASE WHEN released.awaited THEN pg_notify($5, released.lock_key)::text END AS notified,
       released.queued
FROM released
