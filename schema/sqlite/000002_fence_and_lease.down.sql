ALTER TABLE "distributed_locks" DROP COLUMN acquired_at;
ALTER TABLE "distributed_locks" DROP COLUMN data;
ALTER TABLE "distributed_locks" DROP COLUMN owner;
ALTER TABLE "distributed_locks" DROP COLUMN ttl_us;
ALTER TABLE "distributed_locks" DROP COLUMN fence;
