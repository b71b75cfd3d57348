-- Put before every statement but the DDL by a manager made WithGalera, for MariaDB Galera Cluster: the
-- node waits, before it runs the statement, until it has applied every write set the cluster committed
-- before the statement arrived, so that on any node it sees the lock as the last acquire, extend or release
-- left it, wherever that ran. 7 is the sum of the bits for reads (1), UPDATE and DELETE (2), and INSERT and
-- REPLACE (4). SET STATEMENT … FOR keeps the setting to this one statement and adds no round trip.
SET STATEMENT wsrep_sync_wait = 7 FOR
