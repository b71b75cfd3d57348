package distrlock

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"io"
	"log/slog"
	"testing"
	"time"
)

// benchDriver is a database/sql driver that answers every query with one row holding 1 and every exec with
// one row affected, instantly: what is left of an acquire and a release is this package's own cost.
type benchDriver struct{}

func (benchDriver) Open(string) (driver.Conn, error) { return benchConn{}, nil }

type benchConn struct{}

func (benchConn) Prepare(string) (driver.Stmt, error) { return nil, driver.ErrSkip }
func (benchConn) Close() error                        { return nil }
func (benchConn) Begin() (driver.Tx, error)           { return nil, driver.ErrSkip }
func (benchConn) QueryContext(context.Context, string, []driver.NamedValue) (driver.Rows, error) {
	return &benchRows{}, nil
}
func (benchConn) ExecContext(context.Context, string, []driver.NamedValue) (driver.Result, error) {
	return driver.RowsAffected(1), nil
}

type benchRows struct{ done bool }

func (*benchRows) Columns() []string { return []string{"fence"} }
func (*benchRows) Close() error      { return nil }
func (r *benchRows) Next(dest []driver.Value) error {
	if r.done {
		return io.EOF
	}
	r.done, dest[0] = true, int64(1)
	return nil
}

func init() { sql.Register("distrlock-bench", benchDriver{}) }

// noopObserver is an Observer that does nothing: what remains is the cost of building and passing events.
type noopObserver struct{}

func (noopObserver) ObserveLock(context.Context, Event) {}

// BenchmarkObserverAcquireRelease is an Acquire and a Release on a driver that answers at once, without
// an observer and with one that does nothing.
func BenchmarkObserverAcquireRelease(b *testing.B) {
	for _, c := range []struct {
		name string
		opts []DBManagerOption
	}{
		{"none", nil},
		{"noop", []DBManagerOption{WithObserver(noopObserver{})}},
		// A slog logger that drops Debug: nothing is built for the acquire and release records.
		{"slog-info", []DBManagerOption{WithManagerLogger(SlogLogger(slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))))}},
	} {
		b.Run(c.name, func(b *testing.B) {
			db, err := sql.Open("distrlock-bench", "")
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			m, err := NewDBManager(DialectSQLite, c.opts...)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			lock, err := m.NewLock(ctx, db, "bench")
			if err != nil {
				b.Fatal(err)
			}
			// Warm up (the first sub-benchmark would otherwise pay for the process's start), then measure.
			for range 1000 {
				_ = lock.Acquire(ctx, db, time.Minute)
				_ = lock.Release(ctx, db)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := lock.Acquire(ctx, db, time.Minute); err != nil {
					b.Fatal(err)
				}
				if err := lock.Release(ctx, db); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
