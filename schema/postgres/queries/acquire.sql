-- Parameters: 1 key, 2 token, 3 TTL in microseconds, 4 owner, 5 data, 6 the caller's ticket in the key's
-- wait queue (0: none), 7 the hand-over grace in microseconds.
-- statement_timestamp(), not now(): now() is the start of the caller's transaction,
-- which may be long past. A microsecond interval is exact; a day would follow DST.
-- A free lock goes first to the waiters queued for it (enqueue.sql): the ticket after queue_head at once,
-- each later ticket one grace later, and a caller without a ticket after up to four graces, so that a
-- releaser's next attempt does not take the lock back from other processes that wait. A ticket whose waiter
-- gave up delays the next ones by one grace, once.
-- An existing key's row is taken by the UPDATE, whose WHERE reads the row before locking it: when another
-- holds the lock, or it is not the caller's turn, nothing is locked or written. A caller that finds the row
-- free locks it and asks again of the latest row version, so two callers that both read the lock free
-- cannot both take it. A new key's row is made by the INSERT, which runs only when the key has no row; of
-- two callers that make it at once, the second inserts nothing and is refused. Its fence starts above the
-- fence floor, the row of the empty key, which prune.sql raises in the statement that deletes rows. The
-- floor is read FOR SHARE, which returns its latest version, not the snapshot's: a row of the key made and
-- pruned after this statement's snapshot was taken is in neither the snapshot nor the table, and only the
-- latest floor covers its fence. A prune that raises the floor after this read waits for this statement's
-- transaction, and its deletions with it. The floor is read only when the INSERT runs.
WITH taken AS (
    UPDATE "distributed_locks" AS l
    SET token       = $2::text,
        expire_at   = statement_timestamp() + $3::bigint * interval '1 microsecond',
        ttl_us      = $3::bigint,
        fence       = l.fence + 1,
        owner       = $4::text,
        data        = $5::bytea,
        acquired_at = statement_timestamp(),
        queue_head  = CASE WHEN l.expire_at > statement_timestamp() THEN l.queue_head
                           WHEN $6::bigint > 0 THEN GREATEST(l.queue_head, $6::bigint)
                           ELSE l.queue_tail END
    WHERE l.lock_key = $1::text
      AND (l.token = $2::text
           OR ((l.expire_at IS NULL OR l.expire_at <= statement_timestamp())
               AND COALESCE(l.expire_at, l.freed_at, '-infinity')
                   + $7::bigint * CASE WHEN $6::bigint > 0 THEN GREATEST($6::bigint - l.queue_head - 1, 0)
                                       ELSE LEAST(l.queue_tail - l.queue_head, 4) END * interval '1 microsecond'
                   <= statement_timestamp()))
    RETURNING l.fence
), created AS (
    INSERT INTO "distributed_locks" (lock_key, token, expire_at, ttl_us, fence, owner, data, acquired_at)
    SELECT $1::text, $2::text, statement_timestamp() + $3::bigint * interval '1 microsecond', $3::bigint,
           1 + COALESCE((SELECT f.fence FROM "distributed_locks" AS f WHERE f.lock_key = '' FOR SHARE), 0),
           $4::text, $5::bytea, statement_timestamp()
    WHERE NOT EXISTS (SELECT FROM "distributed_locks" WHERE lock_key = $1::text)
    ON CONFLICT (lock_key) DO NOTHING
    RETURNING fence
)
SELECT fence FROM taken
UNION ALL
SELECT fence FROM created
