ALTER TABLE "my_locks"
    DROP COLUMN freed_at,
    DROP COLUMN queue_tail,
    DROP COLUMN queue_head;
