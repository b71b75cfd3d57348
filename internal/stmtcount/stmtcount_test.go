package stmtcount_test

import (
	"context"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/distrlock/distrlock/internal/stmtcount"
)

func TestCounts(t *testing.T) {
	ctx := context.Background()
	var c stmtcount.Counter
	db, err := stmtcount.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "c.db"), &c)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	step := func(what string, want stmtcount.Counts, f func() error) {
		t.Helper()
		before := c.Counts()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := c.Counts().Sub(before); got != want {
			t.Errorf("%s: counted %+v, want %+v", what, got, want)
		}
	}
	step("exec", stmtcount.Counts{Statements: 1}, func() error {
		_, err := db.ExecContext(ctx, `CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)`)
		return err
	})
	step("exec with args", stmtcount.Counts{Statements: 1}, func() error {
		_, err := db.ExecContext(ctx, `INSERT INTO t VALUES (?, ?)`, 1, "a")
		return err
	})
	step("query row", stmtcount.Counts{Statements: 1}, func() error {
		var v string
		return db.QueryRowContext(ctx, `SELECT v FROM t WHERE k = ?`, 1).Scan(&v)
	})
	step("prepare and run twice", stmtcount.Counts{Statements: 2, Prepares: 1}, func() error {
		st, err := db.PrepareContext(ctx, `UPDATE t SET v = ? WHERE k = 1`)
		if err != nil {
			return err
		}
		defer st.Close()
		if _, err := st.ExecContext(ctx, "b"); err != nil {
			return err
		}
		_, err = st.ExecContext(ctx, "c")
		return err
	})
	step("transaction", stmtcount.Counts{Statements: 1, Begins: 1, Commits: 1}, func() error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM t`); err != nil {
			return err
		}
		return tx.Commit()
	})
	step("rollback", stmtcount.Counts{Begins: 1, Rollbacks: 1}, func() error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		return tx.Rollback()
	})
	if got := c.Counts().Calls(); got != 11 {
		t.Errorf("calls = %d, want 11", got)
	}
}
