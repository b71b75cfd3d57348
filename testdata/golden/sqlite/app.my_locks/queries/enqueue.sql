-- A waiter's ticket in the key's queue, taken once per wait: after a refused attempt, or without one when
-- waiters of its process queue already or its process just freed the lock for queued tickets (wait.go);
-- again only if it failed or was passed.
-- Parameters: 1 key. Returns the ticket.
UPDATE "app"."my_locks"
SET queue_tail = queue_tail + 1
WHERE lock_key = ?1
RETURNING queue_tail
