-- Parameters: 1 how long a row must have been free in microseconds, 2 the hand-over grace in
-- microseconds, 3 the last key of the previous batch ('' for the first), 4 the batch size.
-- Reads the batch, the next keys after the last one in key order (whether they are free or not, so that a
-- batch reads a bounded range), and returns how many keys it read, the largest fence among those
-- prunable (NULL if none), and the last key.
-- Pruning runs three statements a batch, each its own transaction when sent outside one: this read, which
-- finds the batch and its largest fence; prune_floor.sql, which raises the fence floor to that fence; and
-- prune_delete.sql, which deletes the batch's rows that are still prunable and whose fence is not above
-- it. Raising the floor before deleting is what keeps a pruned key's fences going up: see acquire.sql. A
-- row is prunable when it is free (released, or expired) since at least ?2 ago, and its wait queue is
-- empty or abandoned: a live waiter with ticket t takes a free lock within (t - queue_head - 1) graces of
-- its freeing, so once the lock has been free for (queue_tail - queue_head) graces no waiter of its queue
-- is still alive. The empty key is the floor's.
SELECT count(*), max(CASE WHEN (c.expire_at IS NULL OR c.expire_at <= CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000)
                        AND COALESCE(c.expire_at, c.freed_at, -9223372036854775807) + ?1 <= CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000
                        AND (c.queue_head = c.queue_tail
                             OR COALESCE(c.expire_at, c.freed_at, -9223372036854775807) + ?2 * (c.queue_tail - c.queue_head) <= CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) * 1000)
                   THEN c.fence END),
       COALESCE(max(c.lock_key), '')
FROM (
    SELECT lock_key, fence, expire_at, freed_at, queue_head, queue_tail
    FROM "distributed_locks"
    WHERE lock_key > ?3
    ORDER BY lock_key
    LIMIT ?4
) AS c
