-- Parameters: 1 the largest fence of the batch prune_delete.sql is about to delete.
-- Raises the fence floor, the row of the empty key (which no lock can have), creating it the first time.
INSERT INTO "distributed_locks" (lock_key, fence)
VALUES ('', ?1)
ON CONFLICT (lock_key) DO UPDATE SET fence = max(fence, excluded.fence)
