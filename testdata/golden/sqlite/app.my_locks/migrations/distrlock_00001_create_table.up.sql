CREATE TABLE IF NOT EXISTS "app"."my_locks" (lock_key TEXT NOT NULL PRIMARY KEY, token TEXT, expire_at INTEGER);
