-- +goose Up
-- The fence floor (see queries/prune_scan.sql): the row of the empty key, which no lock can have. It must
-- exist before an acquire in a caller's transaction reads it with a share lock, which on a missing row would
-- lock the gap before the first key until that transaction ends.
INSERT IGNORE INTO `distributed_locks` (lock_key) VALUES ('');
-- +goose Down
DELETE FROM `distributed_locks` WHERE lock_key = '';
