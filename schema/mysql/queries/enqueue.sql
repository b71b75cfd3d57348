-- A waiter's ticket in the key's queue, taken once per wait: after a refused attempt, or without one when
-- waiters of its process queue already or its process just freed the lock for queued tickets (wait.go);
-- again only if it failed or was passed.
-- Parameters: key. LAST_INSERT_ID(…) hands the ticket back in the OK packet.
UPDATE `distributed_locks`
SET queue_tail = LAST_INSERT_ID(queue_tail + 1)
WHERE lock_key = ?
