-- The waiters' queue (queue_head, queue_tail: see queries/acquire.sql) and when the lock was last released.
ALTER TABLE `app`.`my_locks`
    ADD COLUMN queue_head BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN queue_tail BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN freed_at BIGINT;
