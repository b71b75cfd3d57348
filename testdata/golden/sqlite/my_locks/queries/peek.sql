-- The waiters' read between attempts: who holds the key and for how much longer, writing nothing.
-- Parameters: 1 key. Returns the token and the lease left in microseconds (NULL once released).
-- The clock is acquire.sql's.
SELECT token,
       expire_at - CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000
FROM "my_locks"
WHERE lock_key = ?1
