-- Upgrades go-dbkit's table in place; locks held now stay held until they expire.
-- expire_at was written as NOW() + ttl in the writer's session time zone; it is read back
-- in this session's TimeZone, so run this migration with the TimeZone your services used.
ALTER TABLE "app"."my_locks"
    ALTER COLUMN lock_key TYPE varchar(255),
    ALTER COLUMN token TYPE text USING token::text,
    ALTER COLUMN expire_at TYPE timestamptz USING expire_at::timestamptz,
    ADD COLUMN fence bigint NOT NULL DEFAULT 0,
    ADD COLUMN ttl_us bigint,
    ADD COLUMN owner text,
    ADD COLUMN data bytea,
    ADD COLUMN acquired_at timestamptz;
