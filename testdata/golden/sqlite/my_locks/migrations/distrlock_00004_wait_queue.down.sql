ALTER TABLE "my_locks" DROP COLUMN freed_at;

ALTER TABLE "my_locks" DROP COLUMN queue_tail;

ALTER TABLE "my_locks" DROP COLUMN queue_head;
