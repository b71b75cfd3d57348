DROP TABLE IF EXISTS `app`.`my_locks`;
