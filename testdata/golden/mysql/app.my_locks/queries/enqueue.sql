-- A waiter's ticket in the key's queue, taken once per wait after a refused attempt (see acquire.sql).
-- Parameters: key. LAST_INSERT_ID(…) hands the ticket back in the OK packet.
UPDATE `app`.`my_locks`
SET queue_tail = LAST_INSERT_ID(queue_tail + 1)
WHERE lock_key = ?
