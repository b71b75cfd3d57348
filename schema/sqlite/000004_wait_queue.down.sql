ALTER TABLE "distributed_locks" DROP COLUMN freed_at;
ALTER TABLE "distributed_locks" DROP COLUMN queue_tail;
ALTER TABLE "distributed_locks" DROP COLUMN queue_head;
