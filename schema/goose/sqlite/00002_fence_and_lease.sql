-- +goose Up
ALTER TABLE "distributed_locks" ADD COLUMN fence INTEGER NOT NULL DEFAULT 0;
ALTER TABLE "distributed_locks" ADD COLUMN ttl_us INTEGER;
ALTER TABLE "distributed_locks" ADD COLUMN owner TEXT;
ALTER TABLE "distributed_locks" ADD COLUMN data BLOB;
ALTER TABLE "distributed_locks" ADD COLUMN acquired_at INTEGER;
-- +goose Down
ALTER TABLE "distributed_locks" DROP COLUMN acquired_at;
ALTER TABLE "distributed_locks" DROP COLUMN data;
ALTER TABLE "distributed_locks" DROP COLUMN owner;
ALTER TABLE "distributed_locks" DROP COLUMN ttl_us;
ALTER TABLE "distributed_locks" DROP COLUMN fence;
