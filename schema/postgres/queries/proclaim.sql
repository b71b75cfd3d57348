-- Parameters: 1 data, 2 key, 3 token. An elected leader's new value (Election.Proclaim): the fence, the
-- owner and the lease stay as they are, so the term does not change.
UPDATE "distributed_locks"
SET data = $1
WHERE lock_key = $2
  AND token = $3
  AND expire_at > statement_timestamp()
