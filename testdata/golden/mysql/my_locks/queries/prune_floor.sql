-- Parameters: the largest fence of the batch prune_delete.sql is about to delete, twice.
-- Raises the fence floor, the row of the empty key (which no lock can have), creating it the first time.
INSERT INTO `my_locks` (lock_key, fence)
VALUES ('', ?)
ON DUPLICATE KEY UPDATE fence = GREATEST(fence, ?)
