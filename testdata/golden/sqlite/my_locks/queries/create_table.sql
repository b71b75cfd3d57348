CREATE TABLE IF NOT EXISTS "my_locks" (
    lock_key    TEXT NOT NULL PRIMARY KEY,
    token       TEXT,
    expire_at   INTEGER,
    fence       INTEGER NOT NULL DEFAULT 0,
    ttl_us      INTEGER,
    owner       TEXT,
    data        BLOB,
    acquired_at INTEGER,
    queue_head  INTEGER NOT NULL DEFAULT 0,
    queue_tail  INTEGER NOT NULL DEFAULT 0,
    freed_at    INTEGER
);
