ALTER TABLE "my_locks" DROP COLUMN acquired_at;

ALTER TABLE "my_locks" DROP COLUMN data;

ALTER TABLE "my_locks" DROP COLUMN owner;

ALTER TABLE "my_locks" DROP COLUMN ttl_us;

ALTER TABLE "my_locks" DROP COLUMN fence;
