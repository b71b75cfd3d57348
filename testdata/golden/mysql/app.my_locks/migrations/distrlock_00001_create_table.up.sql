CREATE TABLE IF NOT EXISTS `app`.`my_locks` (lock_key VARCHAR(40) PRIMARY KEY, token VARCHAR(36), expire_at BIGINT);
