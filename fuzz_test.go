package distrlock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"
)

// Fuzz tests of the input that reaches SQL: any key or table name either works as it should or is
// refused with our sentinel before anything is sent; the database never sees a statement it cannot
// parse. Seeds are in testdata/fuzz; run one with go test -run '^$' -fuzz FuzzKey -fuzztime 1m .

// fuzzDBs are the databases a fuzz input runs on: SQLite always, PostgreSQL and MariaDB when reachable
// (required in CI, as for every integration test), MariaDB both with server-side prepared statements and
// with interpolateParams.
func fuzzDBs(f *testing.F) []*testDB {
	return []*testDB{openSQLite(f), openPostgres(f), openMySQL(f, ""), openMySQL(f, "interpolateParams=true")}
}

func FuzzKey(f *testing.F) {
	for _, seed := range []string{"job", "", "ключ", "a\x00b", "\xff\xfe", "'; DROP TABLE x; --", "`\"$1?%s",
		strings.Repeat("k", MaxKeyLength), strings.Repeat("é", MaxKeyLength/2+1), "trailing space ", "Job"} {
		f.Add(seed)
	}
	dbs := fuzzDBs(f)
	managers := make([]*DBManager, len(dbs))
	for i, tdb := range dbs {
		managers[i] = newTestManager(f, tdb)
	}
	f.Fuzz(func(t *testing.T, key string) {
		ctx := context.Background()
		for i, tdb := range dbs {
			m := managers[i]
			l, err := m.NewLock(ctx, tdb.db, key)
			if err != nil {
				if !errors.Is(err, ErrInvalidKey) || validateKey(key) == nil {
					t.Fatalf("%s: NewLock(%q): %v", tdb.name, key, err)
				}
				continue
			}
			if err := l.Acquire(ctx, tdb.db, time.Minute); err != nil {
				t.Fatalf("%s: Acquire(%q): %v", tdb.name, key, err)
			}
			info, err := m.Get(ctx, tdb.db, key)
			if err != nil || !info.Held || info.Key != key || info.Token != l.Token() || info.Fence != l.Fence() {
				t.Fatalf("%s: Get(%q) = %+v, %v; want it held by the lock just taken", tdb.name, key, info, err)
			}
			if err := l.Release(ctx, tdb.db); err != nil {
				t.Fatalf("%s: Release(%q): %v", tdb.name, key, err)
			}
		}
	})
}

func FuzzTableName(f *testing.F) {
	for _, seed := range []string{"locks", "my_locks", "app.locks", "", "1locks", "locks;", "lo\"cks", "lo`cks",
		"a.b.c", "main.locks", "public.Locks", strings.Repeat("t", 63), strings.Repeat("t", 64), "Ünïcode", "_x.y_"} {
		f.Add(seed)
	}
	dbs := fuzzDBs(f)
	f.Fuzz(func(t *testing.T, name string) {
		for _, d := range []Dialect{DialectPostgres, DialectMySQL, DialectSQLite} {
			m, err := NewDBManager(d, WithTableName(name))
			if err != nil {
				if !errors.Is(err, ErrInvalidTableName) {
					t.Fatalf("%s: NewDBManager(%q): %v", d, name, err)
				}
				continue
			}
			// Every statement names the table only as the quoted, validated name.
			for _, q := range []string{m.q.createTable, m.q.dropTable, m.q.acquire, m.q.extend, m.q.release, m.q.get, m.q.list} {
				if !strings.Contains(q, m.quoted) || m.table != DefaultTableName && strings.Contains(q, DefaultTableName) {
					t.Fatalf("%s: table %q rendered as\n%s", d, name, q)
				}
			}
		}
		if strings.Contains(name, ".") {
			return // schema.table: rendered and checked above; it names a schema that may not exist here
		}
		// A prefix of its own per call: the fuzzer runs inputs in parallel processes.
		var b [3]byte
		_, _ = rand.Read(b[:])
		for _, tdb := range dbs {
			m, err := NewDBManager(tdb.dialect, WithTableName("f"+hex.EncodeToString(b[:])+"_"+name))
			if err != nil {
				continue // refused above for every dialect, or too long with the prefix
			}
			fuzzUseTable(t, tdb, m)
		}
	})
}

// fuzzUseTable creates m's table, takes and releases a lock in it, and drops it.
func fuzzUseTable(t *testing.T, tdb *testDB, m *DBManager) {
	t.Helper()
	ctx := context.Background()
	if err := m.CreateTable(ctx, tdb.db); err != nil {
		t.Fatalf("%s: CreateTable(%q): %v", tdb.name, m.TableName(), err)
	}
	defer func() {
		if _, err := tdb.db.ExecContext(ctx, m.DropTableSQL()); err != nil {
			t.Errorf("%s: drop %q: %v", tdb.name, m.TableName(), err)
		}
	}()
	l, err := m.NewLock(ctx, tdb.db, "k")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Acquire(ctx, tdb.db, time.Minute); err != nil {
		t.Fatalf("%s: acquire in %q: %v", tdb.name, m.TableName(), err)
	}
	if err := l.Release(ctx, tdb.db); err != nil {
		t.Fatalf("%s: release in %q: %v", tdb.name, m.TableName(), err)
	}
}
