-- The waiters' read between attempts. It locks and writes nothing.
-- Parameters: 1 key. Returns the token; the lease left, how long the lock has been free and how long
-- it has been held, in microseconds (each NULL when it does not apply); the queue's head and tail.
SELECT token,
       (extract(epoch FROM expire_at - statement_timestamp()) * 1000000)::bigint,
       (extract(epoch FROM statement_timestamp() - COALESCE(expire_at, freed_at)) * 1000000)::bigint,
       (extract(epoch FROM statement_timestamp() - acquired_at) * 1000000)::bigint,
       queue_head,
       queue_tail
FROM "my_locks"
WHERE lock_key = $1
