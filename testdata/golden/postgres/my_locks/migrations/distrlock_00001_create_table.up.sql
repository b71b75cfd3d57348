CREATE TABLE IF NOT EXISTS "my_locks" (lock_key varchar(40) PRIMARY KEY, token uuid, expire_at timestamp);
