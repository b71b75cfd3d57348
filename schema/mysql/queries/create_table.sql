-- The table in its final shape, with its fence floor (see 000005_fence_floor.up.sql), in one statement: an
-- existing table is left as it is, and the floor row is inserted only into a table created here.
CREATE TABLE IF NOT EXISTS `distributed_locks` (
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
)
IGNORE SELECT '' AS lock_key, NULL AS token, NULL AS expire_at, 0 AS fence, 0 AS contended, NULL AS ttl_us,
       NULL AS owner, NULL AS data, NULL AS acquired_at, 0 AS queue_head, 0 AS queue_tail, NULL AS freed_at;
