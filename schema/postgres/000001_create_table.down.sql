DROP TABLE IF EXISTS "distributed_locks";
