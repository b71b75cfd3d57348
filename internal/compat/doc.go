// Package compat holds tests that prove distrlock's schema works with the migrators applications use
// (golang-migrate, goose, rubenv/sql-migrate and go-dbkit's runner built on it) and upgrades go-dbkit's
// table, and that distrlock behaves as go-dbkit's own test cases expect, on lib/pq, pgx and MariaDB. It is
// a module of its own so that the library's users never download those migrators and drivers.
package compat
