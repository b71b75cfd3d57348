-- proclaim.sql for a manager with a notifier: a new value is also published to the observers of other
-- processes, by NOTIFY on the notifier's channel, which PostgreSQL delivers when the statement's
-- transaction commits; with push, observers read on a notice, at the lease's end and every half TTL. The
-- notice's payload is the observers' key for proclaims (Election), not the lock's key, so that standbys,
-- which wait for releases only, sleep on.
-- Parameters: 1 data, 2 key, 3 token, 4 the channel, 5 the payload, 6 whether to publish (the value
-- changed). Returns one row when the leader's lease was found, none otherwise.
WITH proclaimed AS (
    UPDATE "distributed_locks"
    SET data = $1
    WHERE lock_key = $2
      AND token = $3
      AND expire_at > statement_timestamp()
    RETURNING lock_key
)
-- CASE, unlike AND or OR, evaluates pg_notify only when its condition holds.
SELECT CASE WHEN $6::boolean THEN pg_notify($4, $5)::text END AS notified
FROM proclaimed
