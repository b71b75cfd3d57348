package distrlock

// The go-dbkit compatibility surface: go-dbkit's older constructor and its package-level helpers, which
// work on the default table. Their names, signatures and behaviour are a promise to go-dbkit's users; new
// code uses NewDBManager and the DBManager's and DBLock's methods.

import (
	"context"
	"database/sql"
)

// DBManagerOpts configures [NewDBManagerWithOpts].
//
// Deprecated: use [NewDBManager] with [WithTableName].
type DBManagerOpts struct {
	// TableName is the table that stores the locks; empty selects DefaultTableName.
	TableName string
}

// NewDBManagerWithOpts is go-dbkit's older constructor.
//
// Deprecated: use [NewDBManager] with [WithTableName].
func NewDBManagerWithOpts(dialect Dialect, opts DBManagerOpts) (*DBManager, error) {
	return NewDBManager(dialect, WithTableName(opts.TableName))
}

// CreateTableSQL returns the statement that creates [DefaultTableName] in its final shape for the dialect.
// To use another table, call [DBManager.CreateTableSQL] on a manager made with [WithTableName].
func CreateTableSQL(dialect Dialect) (string, error) {
	m, err := NewDBManager(dialect)
	if err != nil {
		return "", err
	}
	return m.CreateTableSQL(), nil
}

// DropTableSQL returns the statement that drops [DefaultTableName] for the dialect.
func DropTableSQL(dialect Dialect) (string, error) {
	m, err := NewDBManager(dialect)
	if err != nil {
		return "", err
	}
	return m.DropTableSQL(), nil
}

// DoExclusively runs fn under the lock on key in [DefaultTableName]; see [DBLock.DoExclusively].
func DoExclusively(
	ctx context.Context, db *sql.DB, dialect Dialect, key string, fn func(ctx context.Context) error, options ...DoOption,
) error {
	m, err := NewDBManager(dialect)
	if err != nil {
		return err
	}
	lock, err := m.NewLock(ctx, db, key)
	if err != nil {
		return err
	}
	return lock.DoExclusively(ctx, db, fn, options...)
}
