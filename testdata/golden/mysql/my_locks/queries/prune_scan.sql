-- Parameters: how long a row must have been free in microseconds, the hand-over grace in microseconds,
-- the last key of the previous batch ('' for the first), the batch size.
-- Reads the batch, the next keys after the last one in key order (the primary key's order, whether they
-- are free or not, so that a batch reads and locks a bounded range), and returns how many keys it read,
-- the largest fence among those prunable (NULL if none), and the last key.
-- Pruning runs three statements a batch, each in its own transaction when sent outside one: this read, which
-- finds the batch and its largest fence without locking; prune_floor.sql, which raises the fence floor to
-- that fence; and prune_delete.sql, which deletes the batch's rows that are still prunable and whose fence
-- is not above it. Raising the floor before deleting is what keeps a pruned key's fences going up: see
-- acquire.sql. A row is prunable when it is free (released, or expired on the server's clock) since at least
-- the given time, and its wait queue is empty or abandoned: a live waiter with ticket t takes a free lock
-- within (t - queue_head - 1) graces of its freeing, so once the lock has been free for
-- (queue_tail - queue_head) graces no waiter of its queue is still alive. The empty key is the floor's.
SELECT COUNT(*), MAX(CASE WHEN (c.expire_at IS NULL OR c.expire_at <= TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)))
                        AND COALESCE(c.expire_at, c.freed_at, -9223372036854775807) + ? <= TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))
                        AND (c.queue_head = c.queue_tail
                             OR COALESCE(c.expire_at, c.freed_at, -9223372036854775807) + ? * (c.queue_tail - c.queue_head) <= TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)))
                   THEN c.fence END),
       COALESCE(MAX(c.lock_key), '')
FROM (
    SELECT lock_key, fence, expire_at, freed_at, queue_head, queue_tail
    FROM `my_locks`
    WHERE lock_key > ?
    ORDER BY lock_key
    LIMIT ?
) AS c
