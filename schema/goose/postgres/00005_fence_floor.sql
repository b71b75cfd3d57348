-- +goose Up
-- The fence floor (see queries/prune.sql or prune_scan.sql): the row of the empty key, which no lock can
-- have. Prune creates it too; made here, every migrated table has it, as on MySQL.
INSERT INTO "distributed_locks" (lock_key) VALUES ('') ON CONFLICT (lock_key) DO NOTHING;
-- +goose Down
DELETE FROM "distributed_locks" WHERE lock_key = '';
