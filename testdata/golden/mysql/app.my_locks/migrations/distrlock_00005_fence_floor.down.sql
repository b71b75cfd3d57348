DELETE FROM `app`.`my_locks` WHERE lock_key = '';
