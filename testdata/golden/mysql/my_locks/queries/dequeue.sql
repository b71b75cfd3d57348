-- A waiter that gives up without the lock leaves the key's queue where it can: as the next ticket, the
-- queue's head moves past it; as the last one, the tail moves back. A ticket in the middle stays, and
-- delays the next ones by one grace (see acquire.sql). A ticket the head has passed changes nothing.
-- Parameters: the ticket four times, then the key and the ticket three times.
-- queue_tail is assigned first, so that it reads queue_head as it was (MySQL assigns left to right).
UPDATE `my_locks`
SET queue_tail = IF(queue_tail = ? AND queue_head < ? - 1, queue_tail - 1, queue_tail),
    queue_head = IF(queue_head = ? - 1, ?, queue_head)
WHERE lock_key = ?
  AND (queue_head = ? - 1 OR queue_tail = ? AND queue_head < ? - 1)
