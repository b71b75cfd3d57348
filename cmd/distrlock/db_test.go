package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/distrlock/distrlock"
)

// TestClassify: the server's refusals of a login, a database or a table are told apart from a server that
// cannot be reached.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want problem
	}{
		{&pgconn.PgError{Code: "28P01"}, problemConfig}, // wrong password
		{&pgconn.PgError{Code: "28000"}, problemConfig}, // no such role
		{&pgconn.PgError{Code: "3D000"}, problemConfig}, // no such database
		{fmt.Errorf("list: %w", &pgconn.PgError{Code: "42P01"}), problemMissingTable},
		{&mysql.MySQLError{Number: 1045}, problemConfig}, // access denied
		{&mysql.MySQLError{Number: 1049}, problemConfig}, // unknown database
		{&mysql.MySQLError{Number: 1146}, problemMissingTable},
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, problemUnreachable},
		{&net.DNSError{Err: "no such host", Name: "db.invalid", IsNotFound: true}, problemUnreachable},
		{context.DeadlineExceeded, problemUnreachable},
		{errors.New("something else"), problemOther},
	} {
		if got := classify(tc.err); got != tc.want {
			t.Errorf("classify(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

// TestExplainPooledStatements: the error of pgx's statement cache behind PgBouncer is a configuration error
// whose hint says what to add to the DSN.
func TestExplainPooledStatements(t *testing.T) {
	var stderr strings.Builder
	a := newApp(io.Discard, &stderr, func(string) string { return "" })
	err := fmt.Errorf("distrlock: acquire \"k\": %w", distrlock.ErrPreparedStatementPooling)
	if code := a.explain(nil, err); code != exitConfig {
		t.Errorf("exit code %d, want %d (configuration)", code, exitConfig)
	}
	if !strings.Contains(stderr.String(), "default_query_exec_mode=exec") {
		t.Errorf("stderr %q does not say what to set", stderr.String())
	}
}

// mysqlURL is the MySQL or MariaDB of the integration tests as a mysql:// DSN, or "" when it is
// unreachable outside CI.
func mysqlURL(t *testing.T) string {
	dsn := os.Getenv("DISTRLOCK_MYSQL_DSN")
	if dsn == "" {
		dsn = "root@tcp(127.0.0.1:3306)/test"
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("DISTRLOCK_MYSQL_DSN: %v", err)
	}
	db, err := sql.Open("mysql", dsn)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = db.PingContext(ctx)
		cancel()
		db.Close()
	}
	switch {
	case err == nil:
	case os.Getenv("CI") == "true":
		t.Fatalf("MySQL unreachable at %s (CI=true): %v", dsn, err)
	default:
		t.Logf("MySQL unreachable, not testing it: %v", err)
		return ""
	}
	u := url.URL{Scheme: "mysql", Host: cfg.Addr, Path: "/" + cfg.DBName, User: url.User(cfg.User)}
	if cfg.Passwd != "" {
		u.User = url.UserPassword(cfg.User, cfg.Passwd)
	}
	return u.String()
}

// TestExitCodes: a login, a database or a table that the server refuses exits with exitConfig and says
// what to fix; only a server that does not answer exits with exitUnreachable. No message shows an empty key.
func TestExitCodes(t *testing.T) {
	type check struct {
		name string
		args []string
		code int
		says string
	}
	checks := []check{
		{"refused", []string{"list", "--dsn", "postgres://postgres@127.0.0.1:1/test"}, exitUnreachable, "cannot reach"},
		{"unknown host", []string{"list", "--dsn", "postgres://postgres@db.invalid/test"}, exitUnreachable, "cannot reach"},
		{"refused mysql", []string{"list", "--dsn", "mysql://root@127.0.0.1:1/test"}, exitUnreachable, "cannot reach"},
		{"sqlite missing table", []string{"inspect", "k", "--dsn", "sqlite://" + filepath.Join(t.TempDir(), "l.db"), "--table", "nope"}, exitConfig, "distrlock migrate --table nope"},
	}
	// The SQLite file of the last check must exist: migrate creates it with the default table only.
	if res := tool(t, "migrate", "--dsn", checks[len(checks)-1].args[3]); res.code != 0 {
		t.Fatalf("migrate: %d %s", res.code, res.stderr)
	}
	for _, b := range backends(t) {
		if b.name != "postgres" {
			continue
		}
		u, _ := url.Parse(b.dsn)
		noDB, noRole, noSchema := *u, *u, *u
		noDB.Path = "/distrlock_no_such_database"
		noRole.User = url.User("distrlock_no_such_role")
		q := u.Query()
		q.Set("search_path", "distrlock_no_such_schema") // where the default table cannot be
		noSchema.RawQuery = q.Encode()
		checks = append(checks,
			check{"postgres unknown database", []string{"list", "--dsn", noDB.String()}, exitConfig, "database"},
			check{"postgres unknown role", []string{"list", "--dsn", noRole.String()}, exitConfig, "user, password"},
			check{"postgres missing table", []string{"list", "--dsn", b.dsn, "--table", "cli_no_such_table"}, exitConfig, "`distrlock migrate --table cli_no_such_table`"},
			check{"postgres missing table, default", []string{"list", "--dsn", noSchema.String()}, exitConfig, "`distrlock migrate`"})
	}
	if my := mysqlURL(t); my != "" {
		u, _ := url.Parse(my)
		badPassword, noDB := *u, *u
		badPassword.User = url.UserPassword(u.User.Username(), "distrlock-wrong-password")
		noDB.Path = "/distrlock_no_such_database"
		checks = append(checks,
			check{"mysql wrong password", []string{"list", "--dsn", badPassword.String()}, exitConfig, "user, password"},
			check{"mysql unknown database", []string{"list", "--dsn", noDB.String()}, exitConfig, "Unknown database"},
			check{"mysql missing table", []string{"inspect", "k", "--dsn", my, "--table", "cli_no_such_table"}, exitConfig, "distrlock migrate"})
	}
	for _, c := range checks {
		res := tool(t, c.args...)
		if res.code != c.code || !strings.Contains(res.stderr, c.says) || strings.Contains(res.stderr, `""`) {
			t.Errorf("%s: exit %d, want %d and a message saying %q; stderr:\n%s", c.name, res.code, c.code, c.says, res.stderr)
		}
	}
}

// TestSQLiteRelativePath: a relative SQLite path is taken from the working directory; a command other
// than migrate does not create the file, and says which absolute file is missing and how to create it.
func TestSQLiteRelativePath(t *testing.T) {
	dir := t.TempDir()
	abs := filepath.Join(dir, "rel.db")
	in := func(args ...string) result {
		cmd := exec.Command(binary, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+t.TempDir(), "DISTRLOCK_DSN=")
		var out, errOut strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errOut
		return result{code: exitCode(t, cmd.Run()), stdout: out.String(), stderr: errOut.String()}
	}
	res := in("list", "--dsn", "sqlite://rel.db")
	if res.code != exitConfig || !strings.Contains(res.stderr, abs) || !strings.Contains(res.stderr, "distrlock migrate") {
		t.Errorf("list on a missing file: exit %d, stderr %q", res.code, res.stderr)
	}
	if _, err := os.Stat(abs); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("list created %s: %v", abs, err)
	}
	if res := in("migrate", "--dsn", "sqlite://rel.db"); res.code != 0 || !strings.Contains(res.stdout, abs) {
		t.Fatalf("migrate: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	if res := in("list", "--dsn", "sqlite://rel.db"); res.code != 0 {
		t.Errorf("list after migrate: exit %d, stderr %q", res.code, res.stderr)
	}
	res = in("list", "--dsn", "sqlite://rel.db", "--table", "other")
	if res.code != exitConfig || !strings.Contains(res.stderr, abs) || !strings.Contains(res.stderr, "distrlock migrate --table other") {
		t.Errorf("list on a missing table: exit %d, stderr %q", res.code, res.stderr)
	}
}
