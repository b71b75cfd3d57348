ALTER TABLE "app"."my_locks" DROP COLUMN freed_at;

ALTER TABLE "app"."my_locks" DROP COLUMN queue_tail;

ALTER TABLE "app"."my_locks" DROP COLUMN queue_head;
