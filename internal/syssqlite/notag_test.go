//go:build !libsqlite3

package syssqlite

import "testing"

// TestSystemSQLite fails without the tag: mattn/go-sqlite3 would link its bundled SQLite, which is
// new enough to hide what this module exists to test.
func TestSystemSQLite(t *testing.T) {
	t.Fatal("build with -tags libsqlite3 (and CGO_ENABLED=1) to link the system's SQLite; see testflags")
}
