package distrlock

import (
	"context"
	"errors"
	"testing"

	"github.com/DATA-DOG/go-sqlmock"
)

// Unit tests of WithGalera.

// newGaleraFixture is a unitFixture on MariaDB whose manager was made WithGalera.
func newGaleraFixture(t testing.TB) *unitFixture {
	t.Helper()
	f := newUnitFixtureWith(t, DialectMariaDB, "", WithGalera())
	f.galera = true
	return f
}

// TestWithGaleraQueries: a manager made WithGalera sends every statement but the DDL behind sync_wait.sql,
// and only on MariaDB: other dialects refuse the option.
func TestWithGaleraQueries(t *testing.T) {
	plain, err := NewDBManager(DialectMariaDB, WithTableName("app.my_locks"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewDBManager(DialectMariaDB, WithTableName("app.my_locks"), WithGalera())
	if err != nil {
		t.Fatal(err)
	}
	prefix := unitQuery(t, DialectMariaDB, "sync_wait", "")
	if m.CreateTableSQL() != plain.CreateTableSQL() || m.DropTableSQL() != plain.DropTableSQL() {
		t.Errorf("WithGalera changed the DDL:\n%s\n%s", m.CreateTableSQL(), m.DropTableSQL())
	}
	for name, pair := range map[string][2]string{
		"acquire": {m.q.acquire, plain.q.acquire}, "acquire_in_tx": {m.q.acquireInTx, plain.q.acquireInTx},
		"extend": {m.q.extend, plain.q.extend}, "extend_batch": {m.q.extendBatch, plain.q.extendBatch},
		"extend_batch_held": {m.q.extendBatchHeld, plain.q.extendBatchHeld}, "release": {m.q.release, plain.q.release},
		"get": {m.q.get, plain.q.get}, "list": {m.q.list, plain.q.list}, "peek": {m.q.peek, plain.q.peek},
		"proclaim": {m.q.proclaim, plain.q.proclaim}, "enqueue": {m.q.enqueue, plain.q.enqueue}, "dequeue": {m.q.dequeue, plain.q.dequeue},
	} {
		file := unitQuery(t, DialectMariaDB, name, "app.my_locks")
		if pair[0] != prefix+file || pair[1] != file {
			t.Errorf("%s WithGalera:\n%s\nwant:\n%s", name, pair[0], prefix+file)
		}
	}
	for _, d := range []Dialect{DialectMySQL, DialectPostgres, DialectPgx, DialectSQLite} {
		if _, err := NewDBManager(d, WithGalera()); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("NewDBManager(%s, WithGalera()) = %v, want ErrInvalidOption", d, err)
		}
	}
}

// TestGaleraGetSyncWaits: Get on a manager made WithGalera is still one statement, the prefixed get.sql.
func TestGaleraGetSyncWaits(t *testing.T) {
	f := newGaleraFixture(t)
	f.mock.ExpectQuery(f.query("get")).WithArgs(unitKey).
		WillReturnRows(sqlmock.NewRows([]string{"lock_key", "token", "owner", "data", "fence", "ttl_us", "acquired_at", "expire_at", "now"}))
	info, err := f.m.Get(context.Background(), f.db, unitKey)
	if err != nil || info.Held || info.Key != unitKey {
		t.Fatalf("Get = %+v, %v; want a free lock", info, err)
	}
}
