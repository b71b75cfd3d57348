ALTER TABLE "app"."my_locks" DROP COLUMN acquired_at;

ALTER TABLE "app"."my_locks" DROP COLUMN data;

ALTER TABLE "app"."my_locks" DROP COLUMN owner;

ALTER TABLE "app"."my_locks" DROP COLUMN ttl_us;

ALTER TABLE "app"."my_locks" DROP COLUMN fence;
