-- Parameters: 1 TTL in microseconds, 2 key, 3 token.
UPDATE "my_locks"
SET expire_at = statement_timestamp() + $1::bigint * interval '1 microsecond',
    ttl_us    = $1
WHERE lock_key = $2
  AND token = $3
  AND expire_at > statement_timestamp()
