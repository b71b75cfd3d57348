-- Parameters: 1 key, 2 token, 3 the least time in microseconds the lock stays taken after its
-- acquisition (0: none), 4 whether the statement runs in autocommit. The row stays so that the next
-- holder's fence continues from this one.
-- A lock released before acquired_at + that time keeps its lease until then: a job guarded for a period
-- runs once in it across the fleet.
-- In autocommit the release commits without waiting for its WAL to reach the disk (asynchronous commit,
-- for this statement's transaction only), so the next holder can take the lock sooner. A crash may then
-- undo a release the caller saw succeed: the lock stays taken until its lease ends, by nobody else, and
-- the next acquisition's commit, which waits for all the WAL before it, makes the release durable. Inside
-- a caller's transaction its own durability stays as it is.
UPDATE "my_locks"
SET expire_at = CASE WHEN acquired_at + $3::bigint * interval '1 microsecond' > statement_timestamp()
                     THEN acquired_at + $3::bigint * interval '1 microsecond' END,
    freed_at  = statement_timestamp()
WHERE lock_key = $1
  AND token = $2
  AND expire_at > statement_timestamp()
  AND ($4::boolean IS NOT TRUE OR set_config('synchronous_commit', 'off', true) = 'off')
