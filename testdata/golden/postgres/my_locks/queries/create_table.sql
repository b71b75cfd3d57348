CREATE TABLE IF NOT EXISTS "my_locks" (
    lock_key    varchar(255) PRIMARY KEY,
    token       text,
    expire_at   timestamptz,
    fence       bigint NOT NULL DEFAULT 0,
    ttl_us      bigint,
    owner       text,
    data        bytea,
    acquired_at timestamptz,
    queue_head  bigint NOT NULL DEFAULT 0,
    queue_tail  bigint NOT NULL DEFAULT 0,
    freed_at    timestamptz
);
