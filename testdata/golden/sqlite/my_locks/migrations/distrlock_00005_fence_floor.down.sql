DELETE FROM "my_locks" WHERE lock_key = '';
