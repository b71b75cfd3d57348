package compat

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distrlock/distrlock"
	"github.com/sirupsen/logrus"
	logrustest "github.com/sirupsen/logrus/hooks/test"
	_ "modernc.org/sqlite"
)

// The logrus test lives here, in a nested module, so that the root module does not require logrus: the
// library recognises logrus loggers without importing it.

// errRelease is the message of the trigger that makes every release fail.
const errRelease = "release refused by a test trigger"

// TestLoggerLogrusFields: a logrus logger gets the key and fence as the fields distrlock_key and
// distrlock_fence of an error-level entry, not in the message, and never the token (a release credential).
func TestLoggerLogrusFields(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "locks.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m, err := distrlock.NewDBManager(distrlock.DialectSQLite)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CreateTable(ctx, db); err != nil {
		t.Fatal(err)
	}
	// A release is the one update that sets freed_at.
	if _, err := db.ExecContext(ctx, `CREATE TRIGGER fail_release BEFORE UPDATE OF freed_at ON `+m.TableName()+`
		WHEN NEW.freed_at IS NOT OLD.freed_at BEGIN SELECT RAISE(ABORT, '`+errRelease+`'); END`); err != nil {
		t.Fatal(err)
	}
	logger, hook := logrustest.NewNullLogger()
	for i, c := range []struct {
		name   string
		logger distrlock.Logger
		extra  logrus.Fields
	}{
		{"*logrus.Logger", logger, nil},
		{"*logrus.Entry", logger.WithField("service", "billing"), logrus.Fields{"service": "billing"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			hook.Reset()
			key := fmt.Sprintf("logrus-%d", i)
			lock, err := m.NewLock(ctx, db, key)
			if err != nil {
				t.Fatal(err)
			}
			err = lock.DoExclusively(ctx, db, func(context.Context) error { return nil }, distrlock.WithLogger(c.logger))
			if err != nil {
				t.Fatalf("DoExclusively returned %v; a failed release is logged, not returned", err)
			}
			token := lock.Token()
			entries := hook.AllEntries()
			if len(entries) != 1 {
				t.Fatalf("%d entries logged, want 1", len(entries))
			}
			e := entries[0]
			if e.Level != logrus.ErrorLevel {
				t.Errorf("level %v, want error", e.Level)
			}
			if e.Data["distrlock_key"] != key || e.Data["distrlock_fence"] != int64(1) {
				t.Errorf("fields %v, want distrlock_key=%s distrlock_fence=1", e.Data, key)
			}
			for k, v := range e.Data {
				if fmt.Sprint(v) == token {
					t.Errorf("field %s carries the token", k)
				}
			}
			for k, v := range c.extra {
				if e.Data[k] != v {
					t.Errorf("the entry lost the logger's field %s=%v: %v", k, v, e.Data)
				}
			}
			if !strings.Contains(e.Message, "release failed") || !strings.Contains(e.Message, errRelease) {
				t.Errorf("message %q does not say that the release failed and why", e.Message)
			}
			if token == "" || strings.Contains(e.Message, token) {
				t.Errorf("message %q carries the token %q (or no token)", e.Message, token)
			}
		})
	}
}
