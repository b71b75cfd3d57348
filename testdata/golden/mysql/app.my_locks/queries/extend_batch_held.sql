-- Which of the locks of a batched extend are still held under their tokens, after that extend.
-- Parameters: a key and its token per lock: the pair list below is sent with one (?, ?) per lock.
SELECT lock_key, token
FROM `app`.`my_locks` FORCE INDEX (PRIMARY)
WHERE (lock_key, token) IN ((?, ?))
  AND expire_at > TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))
