-- A waiter's ticket in the key's queue, taken once per wait after a refused attempt (see acquire.sql).
-- Parameters: 1 key. Returns the ticket.
UPDATE "app"."my_locks"
SET queue_tail = queue_tail + 1
WHERE lock_key = ?1
RETURNING queue_tail
