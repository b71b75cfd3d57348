-- release.sql for a manager with a notifier: the release also tells the waiters of other processes, by
-- NOTIFY on the notifier's channel, which PostgreSQL delivers when the statement's transaction commits.
-- Parameters: 1 key, 2 token, 3 the least time in microseconds the lock stays taken after its
-- acquisition (0: none), 4 whether the statement runs in autocommit (see release.sql), 5 the channel.
-- Returns one row when the lock was released, none otherwise.
WITH released AS (
    UPDATE "app"."my_locks"
    SET expire_at = CASE WHEN acquired_at + $3::bigint * interval '1 microsecond' > statement_timestamp()
                         THEN acquired_at + $3::bigint * interval '1 microsecond' END,
        freed_at  = statement_timestamp()
    WHERE lock_key = $1
      AND token = $2
      AND expire_at > statement_timestamp()
      AND ($4::boolean IS NOT TRUE OR set_config('synchronous_commit', 'off', true) = 'off')
    RETURNING lock_key
)
SELECT released.lock_key FROM released, pg_notify($5, released.lock_key) AS notified
