-- +goose Up
CREATE TABLE IF NOT EXISTS "distributed_locks" (lock_key varchar(40) PRIMARY KEY, token uuid, expire_at timestamp);
-- +goose Down
DROP TABLE IF EXISTS "distributed_locks";
