-- Tokens that are not UUIDs (static tokens) cannot go back to go-dbkit's uuid column and become NULL,
-- keys longer than 40 characters make this migration fail rather than be cut.
ALTER TABLE "my_locks"
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
