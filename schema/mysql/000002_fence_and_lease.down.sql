-- Back to go-dbkit's columns: fails on keys longer than 40 bytes, on keys that differ only in case
-- (go-dbkit's collation folds them) and on tokens longer than 36 bytes, which those columns cannot hold.
ALTER TABLE `distributed_locks`
    DROP COLUMN acquired_at,
    DROP COLUMN data,
    DROP COLUMN owner,
    DROP COLUMN ttl_us,
    DROP COLUMN contended,
    DROP COLUMN fence,
    MODIFY token VARCHAR(36),
    MODIFY lock_key VARCHAR(40) NOT NULL;
