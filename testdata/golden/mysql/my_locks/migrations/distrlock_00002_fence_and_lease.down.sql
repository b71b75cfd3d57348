ALTER TABLE `my_locks`
    DROP COLUMN acquired_at,
    DROP COLUMN data,
    DROP COLUMN owner,
    DROP COLUMN ttl_us,
    DROP COLUMN contended,
    DROP COLUMN fence,
    MODIFY token VARCHAR(36),
    MODIFY lock_key VARCHAR(40) NOT NULL;
