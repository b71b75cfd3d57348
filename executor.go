package distrlock

import (
	"context"
	"database/sql"
)

// SQLExecutor runs the statements of a lock; *sql.DB, *sql.Conn and *sql.Tx all satisfy it, so a lock works
// in autocommit mode, on a pinned connection or inside the caller's transaction (binding once it commits).
// Unlike go-dbkit's it also needs QueryRowContext, to read the new fence back in the same statement.
type SQLExecutor interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// SQLQueryer runs the statement of [DBManager.List]; *sql.DB, *sql.Conn and *sql.Tx satisfy it.
type SQLQueryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

var (
	_ SQLExecutor = (*sql.DB)(nil)
	_ SQLExecutor = (*sql.Conn)(nil)
	_ SQLExecutor = (*sql.Tx)(nil)
	_ SQLQueryer  = (*sql.DB)(nil)
	_ SQLQueryer  = (*sql.Conn)(nil)
	_ SQLQueryer  = (*sql.Tx)(nil)
)

// isNilExecutor reports a nil interface and the nil pointers of database/sql's own executors, which would
// otherwise panic inside database/sql.
func isNilExecutor(exec any) bool {
	switch e := exec.(type) {
	case nil:
		return true
	case *sql.DB:
		return e == nil
	case *sql.Conn:
		return e == nil
	case *sql.Tx:
		return e == nil
	}
	return false
}

// autocommit reports whether each statement sent through exec is a transaction of its own: true for a
// *sql.DB only, since a *sql.Conn may be inside a transaction its owner began with a statement.
func autocommit(exec SQLExecutor) bool {
	_, ok := exec.(*sql.DB)
	return ok
}
