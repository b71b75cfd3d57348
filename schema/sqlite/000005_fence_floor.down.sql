DELETE FROM "distributed_locks" WHERE lock_key = '';
