package distrlock

import (
	"context"
	"database/sql"
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
	queries map[string]bool // the queries worth preparing

	mu       sync.Mutex
	db       *sql.DB     // the *sql.DB the statements belong to; nil until the first use
	prepared SQLExecutor // preparedDB{db, c}, made once: an interface value per call would allocate
	off      bool        // the server refused a prepare: run statements unprepared from then on
	stmts    map[string]*sql.Stmt
}

// newStmtCache returns a cache for queries, or nil for a dialect whose driver does not need one. The cache's
// statements are closed when m becomes unreachable.
func newStmtCache(m *DBManager, queries ...string) *stmtCache {
	if !m.spec.prepare {
		return nil
	}
	c := &stmtCache{queries: map[string]bool{}, stmts: map[string]*sql.Stmt{}}
	for _, q := range queries {
		c.queries[q] = true
	}
	runtime.AddCleanup(m, (*stmtCache).close, c)
	return c
}

// executor returns exec, or for the cache's *sql.DB an executor that runs the cached queries prepared.
func (c *stmtCache) executor(exec SQLExecutor) SQLExecutor {
	db, ok := exec.(*sql.DB)
	if c == nil || !ok {
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

// stmt returns query's prepared statement, preparing it on first use; nil when it is not to be prepared
// or preparing failed (the caller then runs the query unprepared).
func (c *stmtCache) stmt(ctx context.Context, query string) *sql.Stmt {
	if !c.queries[query] {
		return nil
	}
	c.mu.Lock()
	s, off := c.stmts[query], c.off
	c.mu.Unlock()
	if s != nil || off {
		return s
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
		return nil
	case c.stmts[query] != nil: // another call prepared it meanwhile
		_ = s.Close()
		return c.stmts[query]
	}
	c.stmts[query] = s
	return s
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
