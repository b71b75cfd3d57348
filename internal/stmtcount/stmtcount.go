// Package stmtcount wraps a database/sql driver so that a test or a benchmark can count what a program
// sends to the database: statements executed, statements prepared, and transaction boundaries.
//
// It counts at the database/sql driver interface, so it sees what every driver is asked to do, whatever
// its wire protocol. A driver that falls back to prepare, execute and close for a call with arguments
// (go-sql-driver/mysql without interpolateParams=true) shows as one prepare and one statement.
package stmtcount

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"sync/atomic"
)

// Counts is what a [Counter] has seen.
type Counts struct {
	// Statements is the number of statements executed: Exec and Query calls on a connection or on a
	// prepared statement that the driver carried out.
	Statements int64
	// Prepares is the number of statements prepared on the server or in the driver.
	Prepares int64
	// Begins, Commits and Rollbacks count transaction boundaries sent through database/sql.
	Begins, Commits, Rollbacks int64
}

// Calls is the number of requests the driver was asked to carry out: statements, prepares and
// transaction boundaries. For drivers that answer each with one round trip it is the number of round trips.
func (c Counts) Calls() int64 {
	return c.Statements + c.Prepares + c.Begins + c.Commits + c.Rollbacks
}

// Sub returns c less an earlier reading.
func (c Counts) Sub(earlier Counts) Counts {
	return Counts{
		Statements: c.Statements - earlier.Statements,
		Prepares:   c.Prepares - earlier.Prepares,
		Begins:     c.Begins - earlier.Begins,
		Commits:    c.Commits - earlier.Commits,
		Rollbacks:  c.Rollbacks - earlier.Rollbacks,
	}
}

// Counter counts the requests of the databases opened with it. It is safe for concurrent use.
type Counter struct {
	statements, prepares, begins, commits, rollbacks atomic.Int64
}

// Counts returns what the counter has seen so far.
func (c *Counter) Counts() Counts {
	return Counts{
		Statements: c.statements.Load(),
		Prepares:   c.prepares.Load(),
		Begins:     c.begins.Load(),
		Commits:    c.commits.Load(),
		Rollbacks:  c.rollbacks.Load(),
	}
}

// Open opens a database with the registered driver driverName and dsn, as [sql.Open] would, whose
// connections report to c. The caller closes the returned database.
func Open(driverName, dsn string, c *Counter) (*sql.DB, error) {
	probe, err := sql.Open(driverName, dsn)
	if err != nil {
		return nil, err
	}
	drv := probe.Driver()
	_ = probe.Close() // opened no connection: sql.Open only looks the driver up
	var inner driver.Connector = dsnConnector{drv: drv, dsn: dsn}
	if dc, ok := drv.(driver.DriverContext); ok {
		if inner, err = dc.OpenConnector(dsn); err != nil {
			return nil, err
		}
	}
	return sql.OpenDB(&connector{inner: inner, c: c}), nil
}

// dsnConnector is a connector for a driver that has no OpenConnector.
type dsnConnector struct {
	drv driver.Driver
	dsn string
}

func (d dsnConnector) Connect(context.Context) (driver.Conn, error) { return d.drv.Open(d.dsn) }
func (d dsnConnector) Driver() driver.Driver                        { return d.drv }

type connector struct {
	inner driver.Connector
	c     *Counter
}

func (k *connector) Connect(ctx context.Context) (driver.Conn, error) {
	cn, err := k.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &conn{inner: cn, c: k.c}, nil
}

func (k *connector) Driver() driver.Driver { return k.inner.Driver() }

// conn forwards every optional interface of the driver's connection, so that database/sql takes the same
// paths as with the bare driver.
type conn struct {
	inner driver.Conn
	c     *Counter
}

var (
	_ driver.ExecerContext      = (*conn)(nil)
	_ driver.QueryerContext     = (*conn)(nil)
	_ driver.ConnPrepareContext = (*conn)(nil)
	_ driver.ConnBeginTx        = (*conn)(nil)
	_ driver.Pinger             = (*conn)(nil)
	_ driver.SessionResetter    = (*conn)(nil)
	_ driver.Validator          = (*conn)(nil)
	_ driver.NamedValueChecker  = (*conn)(nil)
)

func (cn *conn) Prepare(query string) (driver.Stmt, error) {
	return cn.PrepareContext(context.Background(), query)
}

func (cn *conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	var (
		st  driver.Stmt
		err error
	)
	if p, ok := cn.inner.(driver.ConnPrepareContext); ok {
		st, err = p.PrepareContext(ctx, query)
	} else {
		st, err = cn.inner.Prepare(query)
	}
	if err != nil {
		return nil, err
	}
	cn.c.prepares.Add(1)
	return &stmt{inner: st, c: cn.c}, nil
}

func (cn *conn) Close() error { return cn.inner.Close() }

func (cn *conn) Begin() (driver.Tx, error) {
	return cn.BeginTx(context.Background(), driver.TxOptions{})
}

func (cn *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	var (
		tx  driver.Tx
		err error
	)
	if b, ok := cn.inner.(driver.ConnBeginTx); ok {
		tx, err = b.BeginTx(ctx, opts)
	} else {
		tx, err = cn.inner.Begin() //nolint:staticcheck // the fallback database/sql itself uses
	}
	if err != nil {
		return nil, err
	}
	cn.c.begins.Add(1)
	return &txn{inner: tx, c: cn.c}, nil
}

func (cn *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	e, ok := cn.inner.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	res, err := e.ExecContext(ctx, query, args)
	if !errors.Is(err, driver.ErrSkip) {
		cn.c.statements.Add(1)
	}
	return res, err
}

func (cn *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := cn.inner.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	rows, err := q.QueryContext(ctx, query, args)
	if !errors.Is(err, driver.ErrSkip) {
		cn.c.statements.Add(1)
	}
	return rows, err
}

func (cn *conn) Ping(ctx context.Context) error {
	if p, ok := cn.inner.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (cn *conn) ResetSession(ctx context.Context) error {
	if r, ok := cn.inner.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (cn *conn) IsValid() bool {
	if v, ok := cn.inner.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (cn *conn) CheckNamedValue(nv *driver.NamedValue) error {
	if c, ok := cn.inner.(driver.NamedValueChecker); ok {
		return c.CheckNamedValue(nv)
	}
	return driver.ErrSkip // database/sql's default conversion, as without the wrapper
}

type stmt struct {
	inner driver.Stmt
	c     *Counter
}

var (
	_ driver.StmtExecContext   = (*stmt)(nil)
	_ driver.StmtQueryContext  = (*stmt)(nil)
	_ driver.NamedValueChecker = (*stmt)(nil)
)

func (s *stmt) Close() error  { return s.inner.Close() }
func (s *stmt) NumInput() int { return s.inner.NumInput() }

func (s *stmt) Exec(args []driver.Value) (driver.Result, error) {
	s.c.statements.Add(1)
	return s.inner.Exec(args) //nolint:staticcheck // the fallback database/sql itself uses
}

func (s *stmt) Query(args []driver.Value) (driver.Rows, error) {
	s.c.statements.Add(1)
	return s.inner.Query(args) //nolint:staticcheck // the fallback database/sql itself uses
}

func (s *stmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	if e, ok := s.inner.(driver.StmtExecContext); ok {
		s.c.statements.Add(1)
		return e.ExecContext(ctx, args)
	}
	values, err := namedToValues(args)
	if err != nil {
		return nil, err
	}
	return s.Exec(values)
}

func (s *stmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	if q, ok := s.inner.(driver.StmtQueryContext); ok {
		s.c.statements.Add(1)
		return q.QueryContext(ctx, args)
	}
	values, err := namedToValues(args)
	if err != nil {
		return nil, err
	}
	return s.Query(values)
}

func (s *stmt) CheckNamedValue(nv *driver.NamedValue) error {
	if c, ok := s.inner.(driver.NamedValueChecker); ok {
		return c.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

func namedToValues(args []driver.NamedValue) ([]driver.Value, error) {
	values := make([]driver.Value, len(args))
	for i, a := range args {
		if a.Name != "" {
			return nil, errors.New("stmtcount: the driver does not support named parameters")
		}
		values[i] = a.Value
	}
	return values, nil
}

type txn struct {
	inner driver.Tx
	c     *Counter
}

func (t *txn) Commit() error {
	t.c.commits.Add(1)
	return t.inner.Commit()
}

func (t *txn) Rollback() error {
	t.c.rollbacks.Add(1)
	return t.inner.Rollback()
}
