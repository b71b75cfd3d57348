-- The fence floor (see queries/prune.sql or prune_scan.sql): the row of the empty key, which no lock can
-- have. Prune creates it too; made here, every migrated table has it, as on MySQL.
INSERT OR IGNORE INTO "app"."my_locks" (lock_key) VALUES ('');
