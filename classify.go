package distrlock

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
)

// failure says what a failed statement certainly did, from the driver's error.
type failure int

const (
	// failUnknown: the statement may have run; nobody knows its outcome.
	failUnknown failure = iota
	// failTransient: the statement certainly changed nothing, and the same statement may succeed when
	// sent again (a deadlock, a serialization failure, a lock wait timeout, a busy SQLite file, a
	// connection that could not be made).
	failTransient
	// failReadOnly: the statement certainly changed nothing because the server, the session or the
	// transaction does not accept writes (a standby, default_transaction_read_only, MySQL's read_only).
	failReadOnly
	// failSessionClock: the MySQL statement refused to run, changing nothing, because the session's clock
	// (SET timestamp) is not the server's real time; see schema/mysql/queries/acquire.sql.
	failSessionClock
	// failSchema: the statement did not run because the table or a column it names does not exist (a
	// table not created, or not migrated to this version).
	failSchema
	// failPreparedStatement: the statement did not run because the driver's prepared statement was missing
	// on the server connection or already there under its name: a transaction-mode pooler (PgBouncer)
	// hands a client's statements to whichever server connection is free, and distrlock names no prepared
	// statement itself, so it is always the driver's statement cache behind a pooler.
	failPreparedStatement
)

// The drivers' error codes that classify knows are in dialect_postgres.go, dialect_mysql.go and
// dialect_sqlite.go. They are read without importing the drivers (the library imports none): pgx's and
// lib/pq's errors have a SQLSTATE, go-sql-driver's MySQLError a Number and a Message, modernc's and
// mattn's SQLite errors a result code.

// classify reads from a driver's error what the failed statement certainly did. Anything it does not know
// is failUnknown, the safe answer: the statement may have run.
func classify(err error) failure {
	if err == nil {
		return failUnknown
	}
	if errors.Is(err, driver.ErrBadConn) {
		// database/sql's contract: a driver returns ErrBadConn only when the server cannot have run it.
		return failTransient
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return failTransient // nothing was sent
	}
	found := failUnknown
	walkErrors(err, func(e error) bool {
		found = classifyOne(e)
		return found != failUnknown
	})
	return found
}

func classifyOne(e error) failure {
	if s, ok := e.(interface{ SQLState() string }); ok { // pgx's *pgconn.PgError, lib/pq's *pq.Error
		return postgresStates[s.SQLState()]
	}
	if c, ok := e.(interface{ Code() int }); ok && isSQLiteError(e) { // modernc.org/sqlite
		if c.Code()&0xff == 1 && sqliteSchemaError(e.Error()) {
			return failSchema
		}
		return sqliteCodes[int64(c.Code()&0xff)]
	}
	v := reflect.ValueOf(e)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return failUnknown
	}
	switch t := v.Type(); {
	case t.Name() == "MySQLError" && strings.Contains(t.PkgPath(), "mysql"): // go-sql-driver/mysql
		n, ok := intField(v, "Number")
		if !ok {
			return failUnknown
		}
		if n == mysqlOutOfRange && strings.Contains(v.FieldByName("Message").String(), mysqlClockMovedMark) {
			return failSessionClock
		}
		if n == mysqlOptionPrevents {
			if msg := strings.ToLower(v.FieldByName("Message").String()); strings.Contains(msg, "read-only") ||
				strings.Contains(msg, "read_only") {
				return failReadOnly
			}
			return failUnknown
		}
		return mysqlNumbers[n]
	case isSQLiteError(e): // mattn/go-sqlite3's sqlite3.Error
		if n, ok := intField(v, "Code"); ok {
			if n&0xff == 1 && sqliteSchemaError(e.Error()) {
				return failSchema
			}
			return sqliteCodes[n&0xff]
		}
	case strings.HasSuffix(t.PkgPath(), "lib/pq"): // lib/pq before it had SQLState()
		if code := v.FieldByName("Code"); code.Kind() == reflect.String {
			return postgresStates[code.String()]
		}
	}
	return failUnknown
}

// sqliteSchemaError reads SQLite's generic error (SQLITE_ERROR), which has no code of its own for a missing
// table or column, from its message.
func sqliteSchemaError(msg string) bool {
	return strings.Contains(msg, "no such column") || strings.Contains(msg, "no such table") ||
		strings.Contains(msg, "has no column named")
}

func isSQLiteError(e error) bool {
	t := reflect.TypeOf(e)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name() == "Error" && strings.Contains(t.PkgPath(), "sqlite")
}

func intField(v reflect.Value, name string) (int64, bool) {
	f := v.FieldByName(name)
	switch f.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return f.Int(), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return int64(f.Uint()), true
	}
	return 0, false
}

// walkErrors calls visit for err and every error it wraps, depth first, until visit returns true.
func walkErrors(err error, visit func(error) bool) bool {
	if err == nil {
		return false
	}
	if visit(err) {
		return true
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return walkErrors(u.Unwrap(), visit)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if walkErrors(e, visit) {
				return true
			}
		}
	}
	return false
}

// classified returns err with ErrReadOnly, ErrSessionClock, ErrSchemaMismatch or ErrPreparedStatementPooling in front of it when the server refused the
// statement for that reason, so that callers match the sentinel and still reach the driver's error.
func classified(err error, f failure) error {
	var sentinel error
	switch f {
	case failReadOnly:
		sentinel = ErrReadOnly
	case failSessionClock:
		sentinel = ErrSessionClock
	case failSchema:
		sentinel = ErrSchemaMismatch
	case failPreparedStatement:
		sentinel = ErrPreparedStatementPooling
	}
	if sentinel == nil || errors.Is(err, sentinel) {
		return err
	}
	return fmt.Errorf("%w: %w", sentinel, err)
}

// isDeadlock reports a deadlock the database broke by rolling back the statement's transaction
// (PostgreSQL 40P01, MySQL 1213): in autocommit nothing changed, and the same statement can run again.
func isDeadlock(err error) bool {
	return walkErrors(err, func(e error) bool {
		if s, ok := e.(interface{ SQLState() string }); ok {
			return s.SQLState() == "40P01"
		}
		v := reflect.ValueOf(e)
		if v.Kind() == reflect.Pointer {
			v = v.Elem()
		}
		if v.Kind() != reflect.Struct || v.Type().Name() != "MySQLError" {
			return false
		}
		n, ok := intField(v, "Number")
		return ok && n == 1213
	})
}
