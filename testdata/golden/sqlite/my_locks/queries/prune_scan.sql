-- Parameters: 1 the last key of the previous batch ('' for the first), 2 how long a row must have been
-- free in microseconds, 3 the hand-over grace in microseconds, 4 the batch size.
-- Pruning runs three statements a batch, each its own transaction when sent outside one: this read, which
-- finds the batch and its largest fence; prune_floor.sql, which raises the fence floor to that fence; and
-- prune_delete.sql, which deletes the batch's rows that are still prunable and whose fence is not above
-- it. Raising the floor before deleting is what keeps a pruned key's fences going up: see acquire.sql. A
-- row is prunable when it is free (released, or expired) since at least ?2 ago, and its wait queue is
-- empty or abandoned: a live waiter with ticket t takes a free lock within (t - queue_head - 1) graces of
-- its freeing, so once the lock has been free for (queue_tail - queue_head) graces no waiter of its queue
-- is still alive. The empty key is the floor's.
SELECT count(*), COALESCE(max(c.fence), 0), COALESCE(max(c.lock_key), '')
FROM (
    SELECT lock_key, fence
    FROM "my_locks"
    WHERE lock_key > ?1
      AND (expire_at IS NULL OR expire_at <= CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000)
      AND COALESCE(expire_at, freed_at, -9223372036854775807) + ?2 <= CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000
      AND (queue_head = queue_tail
           OR COALESCE(expire_at, freed_at, -9223372036854775807) + ?3 * (queue_tail - queue_head) <= CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000)
    ORDER BY lock_key
    LIMIT ?4
) AS c
