-- The waiters' read between attempts, writing nothing. The clock is acquire.sql's.
-- Parameters: 1 key. Returns the token; the lease left, how long the lock has been free and how long
-- it has been held, in microseconds (each NULL when it does not apply); the queue's head and tail.
SELECT token,
       expire_at - CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000,
       CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000 - COALESCE(expire_at, freed_at),
       CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000 - acquired_at,
       queue_head,
       queue_tail
FROM "app"."my_locks"
WHERE lock_key = ?1
