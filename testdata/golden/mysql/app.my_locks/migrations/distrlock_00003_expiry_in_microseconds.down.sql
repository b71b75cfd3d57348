UPDATE `app`.`my_locks` SET expire_at = expire_at DIV 100 WHERE expire_at IS NOT NULL;
