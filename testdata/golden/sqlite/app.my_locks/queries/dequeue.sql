-- A waiter that gives up without the lock leaves the key's queue where it can: as the next ticket, the
-- queue's head moves past it; as the last one, the tail moves back. A ticket in the middle stays, and
-- delays the next ones by one grace (see acquire.sql). A ticket the head has passed changes nothing.
-- Parameters: 1 key, 2 the ticket.
UPDATE "app"."my_locks"
SET queue_head = CASE WHEN queue_head = ?2 - 1 THEN ?2 ELSE queue_head END,
    queue_tail = CASE WHEN queue_tail = ?2 AND queue_head < ?2 - 1 THEN ?2 - 1 ELSE queue_tail END
WHERE lock_key = ?1
  AND (queue_head = ?2 - 1 OR queue_tail = ?2 AND queue_head < ?2 - 1)
