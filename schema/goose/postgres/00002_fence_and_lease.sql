-- +goose Up
-- Upgrades go-dbkit's table in place; locks held now stay held until they expire.
-- expire_at was written as NOW() + ttl in the writer's session time zone; it is read back
-- in this session's TimeZone, so run this migration with the TimeZone your services used.
ALTER TABLE "distributed_locks"
    ALTER COLUMN lock_key TYPE varchar(255),
    ALTER COLUMN token TYPE text USING token::text,
    ALTER COLUMN expire_at TYPE timestamptz USING expire_at::timestamptz,
    ADD COLUMN fence bigint NOT NULL DEFAULT 0,
    ADD COLUMN ttl_us bigint,
    ADD COLUMN owner text,
    ADD COLUMN data bytea,
    ADD COLUMN acquired_at timestamptz;
-- +goose Down
-- Tokens that are not UUIDs (static tokens) cannot go back to go-dbkit's uuid column and become NULL,
-- keys longer than 40 characters make this migration fail rather than be cut.
ALTER TABLE "distributed_locks"
    DROP COLUMN acquired_at,
    DROP COLUMN data,
    DROP COLUMN owner,
    DROP COLUMN ttl_us,
    DROP COLUMN fence,
    ALTER COLUMN expire_at TYPE timestamp USING expire_at::timestamp,
    ALTER COLUMN token TYPE uuid USING CASE
        WHEN token ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN token::uuid
    END,
    ALTER COLUMN lock_key TYPE varchar(40);
