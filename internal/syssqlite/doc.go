// Package syssqlite holds tests that run distrlock's SQLite statements on the system's SQLite library
// (through github.com/mattn/go-sqlite3 built with -tags libsqlite3), an older SQLite than the drivers
// bundle, and the same checks on modernc.org/sqlite. It is a module of its own so that the library's
// users never download mattn/go-sqlite3, and it needs cgo.
//
// Run it with:
//
//	CGO_ENABLED=1 go test -tags libsqlite3 ./...
//
// Without the tag its tests fail rather than pass against a bundled SQLite; make test reads the tag from
// the file testflags.
package syssqlite
