CREATE TABLE IF NOT EXISTS `my_locks` (
    lock_key    VARBINARY(255) NOT NULL PRIMARY KEY,
    token       VARBINARY(255),
    expire_at   BIGINT,
    fence       BIGINT NOT NULL DEFAULT 0,
    contended   BIGINT NOT NULL DEFAULT 0,
    ttl_us      BIGINT,
    owner       VARCHAR(255) CHARACTER SET utf8mb4,
    data        MEDIUMBLOB,
    acquired_at BIGINT,
    queue_head  BIGINT NOT NULL DEFAULT 0,
    queue_tail  BIGINT NOT NULL DEFAULT 0,
    freed_at    BIGINT
);
