-- +goose Up
-- Upgrades go-dbkit's table in place; 000003 converts its expiry times.
-- Keys and tokens become byte strings: compared exactly, with no case folding and no trailing-space padding.
ALTER TABLE `distributed_locks`
    MODIFY lock_key VARBINARY(255) NOT NULL,
    MODIFY token VARBINARY(255),
    ADD COLUMN fence BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN contended BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN ttl_us BIGINT,
    ADD COLUMN owner VARCHAR(255) CHARACTER SET utf8mb4,
    ADD COLUMN data MEDIUMBLOB,
    ADD COLUMN acquired_at BIGINT;
-- +goose Down
-- Back to go-dbkit's columns: fails on keys longer than 40 bytes, on keys that differ only in case
-- (go-dbkit's collation folds them) and on tokens longer than 36 bytes, which those columns cannot hold.
ALTER TABLE `distributed_locks`
    DROP COLUMN acquired_at,
    DROP COLUMN data,
    DROP COLUMN owner,
    DROP COLUMN ttl_us,
    DROP COLUMN contended,
    DROP COLUMN fence,
    MODIFY token VARCHAR(36),
    MODIFY lock_key VARCHAR(40) NOT NULL;
