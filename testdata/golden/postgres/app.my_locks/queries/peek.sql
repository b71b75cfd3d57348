-- The waiters' read between attempts: who holds the key and for how much longer. It locks and writes
-- nothing, where a refused acquire locks the row and commits.
-- Parameters: 1 key. Returns the token and the lease left in microseconds (NULL once released).
SELECT token,
       (extract(epoch FROM expire_at - statement_timestamp()) * 1000000)::bigint
FROM "app"."my_locks"
WHERE lock_key = $1
