-- A waiter's ticket in the key's queue, taken once per wait: after a refused attempt, or without one when
-- waiters of its process queue already or its process just freed the lock for queued tickets (wait.go);
-- again only if it failed or was passed.
-- Parameters: 1 key, 2 whether the statement runs in autocommit. Returns the ticket.
-- In autocommit the ticket commits without waiting for its WAL to reach the disk, so that the row lock
-- it takes ends sooner for the next waiter's acquire; a crash that undoes it costs only fairness: the
-- tickets order waiters, the lease alone decides who may hold the lock.
UPDATE "my_locks"
SET queue_tail = queue_tail + 1
WHERE lock_key = $1
  AND ($2::boolean IS NOT TRUE OR set_config('synchronous_commit', 'off', true) = 'off')
RETURNING queue_tail
