-- +goose Up
CREATE TABLE IF NOT EXISTS "distributed_locks" (lock_key TEXT NOT NULL PRIMARY KEY, token TEXT, expire_at INTEGER);
-- +goose Down
DROP TABLE IF EXISTS "distributed_locks";
