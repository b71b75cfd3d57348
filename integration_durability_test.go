package distrlock

import (
	"testing"
	"time"
)

// TestIntegrationReleaseKeepsCallersDurability: on PostgreSQL a release inside the caller's transaction, or
// a wait's ticket on a *sql.Conn, leaves the caller's synchronous_commit as it was, while a release in
// autocommit turns it off for its own transaction only (the pooled connection's setting is unchanged after).
func TestIntegrationReleaseKeepsCallersDurability(t *testing.T) {
	t.Parallel()
	tdb := openPostgres(t)
	m := newTestManager(t, tdb)
	ctx := t.Context()
	tx, err := tdb.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	lock, err := m.NewLock(ctx, tx, "durable")
	if err != nil {
		t.Fatal(err)
	}
	if err := lock.Acquire(ctx, tx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := lock.Release(ctx, tx); err != nil {
		t.Fatal(err)
	}
	var inTx string
	if err := tx.QueryRowContext(ctx, "SELECT current_setting('synchronous_commit')").Scan(&inTx); err != nil {
		t.Fatal(err)
	}
	if inTx != "on" {
		t.Errorf("after a release in the caller's transaction synchronous_commit = %q, want on", inTx)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}

	// In autocommit: released, and no setting leaks into the pooled connection.
	tdb.db.SetMaxOpenConns(1)
	lock, err = m.NewLock(ctx, tdb.db, "durable")
	if err != nil {
		t.Fatal(err)
	}
	if err := lock.Acquire(ctx, tdb.db, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := lock.Release(ctx, tdb.db); err != nil {
		t.Fatal(err)
	}
	var after string
	if err := tdb.db.QueryRowContext(ctx, "SELECT current_setting('synchronous_commit')").Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != "on" {
		t.Errorf("after a release in autocommit the connection's synchronous_commit = %q, want on", after)
	}
	info, err := m.Get(ctx, tdb.db, "durable")
	if err != nil {
		t.Fatal(err)
	}
	if info.Held {
		t.Error("the lock is still held after a release in autocommit")
	}
}
