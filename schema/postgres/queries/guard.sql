-- Parameters: 1 key, 2 token.
-- Sent inside the caller's transaction: FOR SHARE keeps the row locked until that transaction ends, and every
-- acquire that could take the lock from this token is an upsert that must lock the row first, so it waits.
-- Under READ COMMITTED a row another transaction is changing is read again in its latest version once that
-- transaction ends; under REPEATABLE READ and SERIALIZABLE such a row fails the statement with a
-- serialization error instead.
-- statement_timestamp(), not now(): the caller's transaction may have started long before.
SELECT fence
FROM "distributed_locks"
WHERE lock_key = $1
  AND token = $2
  AND expire_at > statement_timestamp()
FOR SHARE
