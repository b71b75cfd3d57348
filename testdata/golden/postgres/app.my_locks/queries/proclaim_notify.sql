-- proclaim.sql for a manager with a notifier: the new value is also published to the observers of other
-- processes, by NOTIFY on the notifier's channel, which PostgreSQL delivers when the statement's
-- transaction commits; with push, observers read only on a notice or at the lease's end.
-- Parameters: 1 data, 2 key, 3 token, 4 the channel.
-- Returns one row when the leader's lease was found, none otherwise.
WITH proclaimed AS (
    UPDATE "app"."my_locks"
    SET data = $1
    WHERE lock_key = $2
      AND token = $3
      AND expire_at > statement_timestamp()
    RETURNING lock_key
)
SELECT pg_notify($4, proclaimed.lock_key)::text AS notified
FROM proclaimed
