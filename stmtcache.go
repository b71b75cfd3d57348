package distrlock

import (
	"context"
	"database/sql"
	"errors"
	"reflect"
	"runtime"
	"sync"
)

// stmtCache keeps prepared statements of a manager's hot queries (acquire, extend, release, the waiters'
// reads) on the first *sql.DB the manager runs them on, when it is go-sql-driver/mysql's. MySQL otherwise parses each
// long statement anew at every call, in a round trip of its own unless the DSN has interpolateParams: a
// statement prepared once per connection runs in one round trip and is not parsed again.
//
// Only go-sql-driver/mysql's *sql.DB is served: PostgreSQL's pgx caches by itself (and a server-side
// prepared statement breaks behind PgBouncer in transaction mode), a *sql.Tx or *sql.Conn would prepare
// and close at every call, and a wrapping driver (a test's mock, a tracer) expects the statements as sent.
type stmtCache struct {
	queries    map[string]bool   // the queries worth preparing
	companions map[string]string // a query to prepare with another: the acquire in a transaction

	mu       sync.Mutex
	db       *sql.DB     // the *sql.DB the statements belong to; nil until the first use
	prepared SQLExecutor // preparedDB{db, c}, made once: an interface value per call would allocate
	off      bool        // the server refused a prepare: run statements unprepared from then on
	stmts    map[string]*sql.Stmt
}

// newStmtCache returns a cache for queries, or nil for a dialect whose driver does not need one; each of
// companions is prepared when the query it is the value of is. The cache's statements are closed when m
// becomes unreachable.
func newStmtCache(m *DBManager, companions map[string]string, queries ...string) *stmtCache {
	if !m.spec.prepare {
		return nil
	}
	c := &stmtCache{queries: map[string]bool{}, companions: companions, stmts: map[string]*sql.Stmt{}}
	for _, q := range queries {
		c.queries[q] = true
	}
	for _, q := range companions {
		c.queries[q] = true
	}
	runtime.AddCleanup(m, (*stmtCache).close, c)
	return c
}

// executor returns exec, or for the cache's *sql.DB an executor that runs the cached queries prepared,
// and for a *sql.Tx, once the cache has its *sql.DB, one that runs them through [sql.Tx.StmtContext].
func (c *stmtCache) executor(exec SQLExecutor) SQLExecutor {
	if c == nil {
		return exec
	}
	db, ok := exec.(*sql.DB)
	if !ok {
		if tx, ok := exec.(*sql.Tx); ok {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.db != nil && !c.off {
				return preparedTx{tx, c}
			}
		}
		return exec
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.db == nil {
		c.db, c.off, c.prepared = db, !isMySQLDriver(db), preparedDB{db, c}
	}
	if c.off || c.db != db {
		return exec
	}
	return c.prepared
}

// ready returns query's prepared statement if it has been prepared, else nil.
func (c *stmtCache) ready(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.off {
		return nil
	}
	return c.stmts[query]
}

// stmt returns query's prepared statement, preparing it (and its companion, which runs only in
// transactions, see preparedTx) on first use; nil when it is not to be prepared or preparing failed (the
// caller then runs the query unprepared).
func (c *stmtCache) stmt(ctx context.Context, query string) *sql.Stmt {
	s, fresh := c.prepare(ctx, query)
	if companion := c.companions[query]; fresh && companion != "" {
		c.prepare(ctx, companion)
	}
	return s
}

// prepare is stmt without the companion; fresh reports that this call prepared it.
func (c *stmtCache) prepare(ctx context.Context, query string) (_ *sql.Stmt, fresh bool) {
	if !c.queries[query] {
		return nil, false
	}
	c.mu.Lock()
	s, off := c.stmts[query], c.off
	c.mu.Unlock()
	if s != nil || off {
		return s, false
	}
	// Prepared outside the lock: a slow server must not hold up the other queries.
	s, err := c.db.PrepareContext(ctx, query)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err != nil:
		// A server that refuses (max_prepared_stmt_count reached, a proxy without prepared statements)
		// refuses again: stop trying. A context that ended or a broken connection says nothing about it.
		if ctx.Err() == nil && classify(err) == failUnknown {
			c.off = true
		}
		return nil, false
	case c.stmts[query] != nil: // another call prepared it meanwhile
		_ = s.Close()
		return c.stmts[query], false
	}
	c.stmts[query] = s
	return s, true
}

// refused stops preparing: the server refused a prepare, and will refuse again.
func (c *stmtCache) refused() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off = true
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, s := range c.stmts {
		_ = s.Close()
		delete(c.stmts, q)
	}
	c.off = true
}

// isMySQLDriver reports whether db was opened with go-sql-driver/mysql, found by its type so that the
// library imports no driver.
func isMySQLDriver(db *sql.DB) bool {
	t := reflect.TypeOf(db.Driver())
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name() == "MySQLDriver" && t.PkgPath() == "github.com/go-sql-driver/mysql"
}

// preparedDB runs the cache's queries through their prepared statements and anything else on db.
type preparedDB struct {
	db *sql.DB
	c  *stmtCache
}

func (p preparedDB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if s := p.c.stmt(ctx, query); s != nil {
		return s.ExecContext(ctx, args...)
	}
	return p.db.ExecContext(ctx, query, args...)
}

func (p preparedDB) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if s := p.c.stmt(ctx, query); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return p.db.QueryRowContext(ctx, query, args...)
}

// preparedTx runs the cache's queries that return no rows in tx through their statements, which
// database/sql prepares once per connection and shares with the *sql.DB: in a transaction too a statement
// takes one round trip instead of a prepare, an execution and a close. Anything else runs on tx.
type preparedTx struct {
	tx *sql.Tx
	c  *stmtCache
}

// errTxStmtOtherDB is the text of the error [sql.Tx.StmtContext] returns, without sending anything, for a
// statement of another *sql.DB than the transaction's: no reason to stop preparing.
const errTxStmtOtherDB = "sql: Tx.Stmt: statement from different database used"

func (p preparedTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	// Only a statement prepared already: preparing one on the *sql.DB would wait for a free connection,
	// for ever when the transaction holds the last one the pool may open.
	if s := p.c.ready(query); s != nil {
		ts := p.tx.StmtContext(ctx, s)
		res, err := ts.ExecContext(ctx, args...)
		// Close returns the error StmtContext stored when it could not make the statement (another
		// *sql.DB's, a prepare the transaction's connection refused), and then nothing was sent: run the
		// query unprepared. Otherwise it closes ts alone; the connection's statement stays with s.
		if cerr := ts.Close(); err == nil || cerr != err {
			return res, err
		}
		// A finished transaction or an ended context says nothing about the server's prepares.
		if err.Error() != errTxStmtOtherDB && !errors.Is(err, sql.ErrTxDone) && ctx.Err() == nil && classify(err) == failUnknown {
			p.c.refused()
		}
	}
	return p.tx.ExecContext(ctx, query, args...)
}

func (p preparedTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return p.tx.QueryRowContext(ctx, query, args...)
}
