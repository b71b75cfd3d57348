ALTER TABLE "app"."my_locks" ADD COLUMN fence INTEGER NOT NULL DEFAULT 0;

ALTER TABLE "app"."my_locks" ADD COLUMN ttl_us INTEGER;

ALTER TABLE "app"."my_locks" ADD COLUMN owner TEXT;

ALTER TABLE "app"."my_locks" ADD COLUMN data BLOB;

ALTER TABLE "app"."my_locks" ADD COLUMN acquired_at INTEGER;
