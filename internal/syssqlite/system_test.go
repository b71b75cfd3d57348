//go:build libsqlite3

package syssqlite

import (
	"database/sql"
	"os"
	"regexp"
	"testing"

	_ "github.com/mattn/go-sqlite3" // "sqlite3", linked to the system's libsqlite3 by the build tag
)

// sqliteHeader is the system's sqlite3.h, which names the library -tags libsqlite3 links; SQLITE3_H
// overrides it.
func sqliteHeader() string {
	if p := os.Getenv("SQLITE3_H"); p != "" {
		return p
	}
	return "/usr/include/sqlite3.h"
}

// TestSystemSQLite runs the checks on the system's SQLite, after proving that it is the system's
// library and older than 3.42, the first SQLite whose unixepoch('subsec') the statements once relied on.
func TestSystemSQLite(t *testing.T) {
	header, err := os.ReadFile(sqliteHeader())
	if err != nil {
		t.Fatalf("reading the system's SQLite header (set SQLITE3_H): %v", err)
	}
	m := regexp.MustCompile(`(?m)^#define SQLITE_VERSION\s+"([0-9.]+)"`).FindSubmatch(header)
	if m == nil {
		t.Fatalf("%s defines no SQLITE_VERSION", sqliteHeader())
	}
	system := string(m[1])

	db := openDB(t, "sqlite3")
	version := sqliteVersion(t, db)
	if version != system {
		t.Fatalf("sqlite_version() = %s, the system's header says %s: the bundled SQLite is linked", version, system)
	}
	if !olderThan(version, 3, 42) {
		t.Fatalf("the system's SQLite is %s: this test needs one older than 3.42 to mean anything", version)
	}
	// Before 3.42 this is NULL, which is what made every acquirer succeed.
	var subsec sql.NullFloat64
	if err := db.QueryRow("SELECT unixepoch('subsec')").Scan(&subsec); err != nil && olderThan(version, 3, 38) {
		t.Logf("unixepoch() does not exist in %s: %v", version, err)
	} else if err != nil {
		t.Fatal(err)
	} else if subsec.Valid {
		t.Fatalf("unixepoch('subsec') = %v on %s, want NULL", subsec.Float64, version)
	}
	t.Logf("system SQLite %s", version)
	runChecks(t, db)
}
