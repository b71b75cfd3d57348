-- Parameters: key prefix (empty for every key) twice, only held locks (0 or 1), maximum number of rows.
-- LENGTH and SUBSTRING count bytes, as lock_key is VARBINARY.
SELECT lock_key, token, owner, data, fence, ttl_us, acquired_at, expire_at,
       TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))
FROM `my_locks`
WHERE SUBSTRING(lock_key, 1, LENGTH(?)) = ?
  AND (? = 0 OR expire_at > TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)))
ORDER BY lock_key
LIMIT ?
