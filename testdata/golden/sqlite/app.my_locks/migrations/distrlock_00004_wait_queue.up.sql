-- The waiters' queue (queue_head, queue_tail: see queries/acquire.sql) and when the lock was last released.
ALTER TABLE "app"."my_locks" ADD COLUMN queue_head INTEGER NOT NULL DEFAULT 0;

ALTER TABLE "app"."my_locks" ADD COLUMN queue_tail INTEGER NOT NULL DEFAULT 0;

ALTER TABLE "app"."my_locks" ADD COLUMN freed_at INTEGER;
