package distrlock

import (
	"context"
	"fmt"
	"time"
)

// DBManager makes locks stored in one table of one SQL dialect, and gives the DDL and migrations of that
// table. It holds no connection and is safe for concurrent use: one manager per table serves a whole program.
type DBManager struct {
	dialect Dialect
	spec    *dialectSpec
	table   string // as given
	quoted  string // validated and quoted
	q       queries

	backoffMin, backoffMax time.Duration
	notifier               Notifier // nil unless WithNotifier
	waiters                *waitRoom
	batchers               *batchers
	stmts                  *stmtCache   // nil unless the dialect prepares
	observer               Observer     // nil unless WithObserver
	spans                  SpanObserver // observer, when it is one
	logger                 Logger       // nil unless WithManagerLogger
}

// NewDBManager returns a manager for the dialect. It fails with [ErrUnsupportedDialect] or
// [ErrInvalidTableName]; it does not touch the database.
func NewDBManager(dialect Dialect, options ...DBManagerOption) (*DBManager, error) {
	o := dbManagerOptions{backoffMin: DefaultWaitMinBackoff, backoffMax: DefaultWaitMaxBackoff}
	for _, opt := range options {
		opt(&o)
	}
	if o.tableName == "" {
		o.tableName = DefaultTableName
	}
	spec, err := specFor(dialect)
	if err != nil {
		return nil, opError("new manager", o.tableName, err)
	}
	quoted, err := quoteTableName(o.tableName, spec.quote)
	if err != nil {
		return nil, opError("new manager", o.tableName, err)
	}
	if o.backoffMin <= 0 || o.backoffMax < o.backoffMin {
		return nil, opError("new manager", o.tableName, fmt.Errorf("%w: wait backoff [%v, %v]: need 0 < min <= max",
			ErrInvalidOption, o.backoffMin, o.backoffMax))
	}
	if o.notifierSet {
		if err := validateNotifier(dialect, o.notifier); err != nil {
			return nil, opError("new manager", o.tableName, err)
		}
	}
	if o.galera && dialect != DialectMariaDB {
		// MySQL has no SET STATEMENT: on a MySQL-based Galera (Percona XtraDB Cluster) the session's
		// wsrep_sync_wait, set in the DSN, does the same for every statement.
		return nil, opError("new manager", o.tableName, fmt.Errorf("%w: WithGalera needs DialectMariaDB, not %q (MySQL-based Galera: set wsrep_sync_wait=7 in the DSN)",
			ErrInvalidOption, string(dialect)))
	}
	q, err := renderQueries(spec, quoted)
	if err != nil {
		return nil, err
	}
	if o.galera {
		q.withSyncWait()
	}
	m := &DBManager{
		dialect: dialect, spec: spec, table: o.tableName, quoted: quoted, q: q, notifier: o.notifier,
		backoffMin: o.backoffMin, backoffMax: o.backoffMax, waiters: &waitRoom{}, batchers: &batchers{},
		observer: o.observer, logger: o.logger,
	}
	m.spans, _ = o.observer.(SpanObserver)
	m.stmts = newStmtCache(m, map[string]string{q.acquire: q.acquireInTx}, q.acquire, q.extend, q.release, q.peek, q.enqueue)
	return m, nil
}

// Dialect returns the manager's dialect.
func (m *DBManager) Dialect() Dialect { return m.dialect }

// TableName returns the name of the manager's table, as given to [WithTableName].
func (m *DBManager) TableName() string { return m.table }

// CreateTableSQL returns the statement that creates the manager's table in its final shape if it does not
// exist. Use it or [DBManager.Migrations], not both: the migrations start from go-dbkit's table.
func (m *DBManager) CreateTableSQL() string { return m.q.createTable }

// DropTableSQL returns the statement that drops the manager's table if it exists.
func (m *DBManager) DropTableSQL() string { return m.q.dropTable }

// CreateTable creates the manager's table in its final shape if it does not exist, with
// [DBManager.CreateTableSQL]. It is idempotent; it is a convenience for tests, tools and small programs:
// services that have a migrator should apply [DBManager.Migrations] instead.
func (m *DBManager) CreateTable(ctx context.Context, exec SQLExecutor) error {
	if err := checkCall(ctx, exec); err != nil {
		return opError("create table", m.table, err)
	}
	if _, err := exec.ExecContext(ctx, m.q.createTable); err != nil {
		return opError("create table", m.table, withContext(ctx, err))
	}
	return nil
}

// NewLock returns an unacquired lock on key. It sends nothing to the database: the first acquire creates
// the key's row. exec is accepted for go-dbkit compatibility and must not be nil. NewLock fails with
// [ErrInvalidKey], [ErrNilExecutor] or the context's error.
func (m *DBManager) NewLock(ctx context.Context, exec SQLExecutor, key string) (DBLock, error) {
	if err := checkCall(ctx, exec); err != nil {
		return DBLock{}, opError("new lock", key, err)
	}
	if err := validateKey(key); err != nil {
		return DBLock{}, opError("new lock", key, err)
	}
	return DBLock{Key: key, manager: m}, nil
}

// checkCall rejects a nil executor and a context that has already ended, before anything is sent.
func checkCall(ctx context.Context, exec SQLExecutor) error {
	if isNilExecutor(exec) {
		return ErrNilExecutor
	}
	return contextError(ctx)
}

// handoverGrace is how long a free lock waits for each queued ticket before it: long enough for the next
// waiter, sleeping at most backoffMax between reads, to see the lock free and take it.
func (m *DBManager) handoverGrace() time.Duration { return 2 * m.backoffMax }
