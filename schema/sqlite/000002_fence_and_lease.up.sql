ALTER TABLE "distributed_locks" ADD COLUMN fence INTEGER NOT NULL DEFAULT 0;
ALTER TABLE "distributed_locks" ADD COLUMN ttl_us INTEGER;
ALTER TABLE "distributed_locks" ADD COLUMN owner TEXT;
ALTER TABLE "distributed_locks" ADD COLUMN data BLOB;
ALTER TABLE "distributed_locks" ADD COLUMN acquired_at INTEGER;
