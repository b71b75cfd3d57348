-- +goose Up
CREATE TABLE IF NOT EXISTS `distributed_locks` (lock_key VARCHAR(40) PRIMARY KEY, token VARCHAR(36), expire_at BIGINT);
-- +goose Down
DROP TABLE IF EXISTS `distributed_locks`;
