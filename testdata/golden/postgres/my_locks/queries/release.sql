-- Parameters: 1 key, 2 token, 3 the least time in microseconds the lock stays taken after its
-- acquisition (0: none). The row stays so that the next holder's fence continues from this one.
-- A lock released before acquired_at + that time keeps its lease until then: a job guarded for a period
-- runs once in it across the fleet.
UPDATE "my_locks"
SET expire_at = CASE WHEN acquired_at + $3::bigint * interval '1 microsecond' > statement_timestamp()
                     THEN acquired_at + $3::bigint * interval '1 microsecond' END,
    freed_at  = statement_timestamp()
WHERE lock_key = $1
  AND token = $2
  AND expire_at > statement_timestamp()
