-- go-dbkit stored expire_at in units of 100 microseconds since the epoch; distrlock uses microseconds.
UPDATE `app`.`my_locks` SET expire_at = expire_at * 100 WHERE expire_at IS NOT NULL;
