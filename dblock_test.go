package distrlock

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
)

// The unit tests in this file and its siblings (manager, validate, errors, schema, migrations) need no
// database: every statement goes to go-sqlmock, which matches the SQL text exactly, and the expected text
// is read from the files under schema/, never from the code under test.

// unitDialects are all the Dialect constants.
var unitDialects = []Dialect{DialectPostgres, DialectPgx, DialectMySQL, DialectMariaDB, DialectSQLite}

// unitDir is the folder under schema/ whose SQL a dialect runs. It is spelled out here rather than read
// from the dialect's spec, so that the tests also check that mapping.
func unitDir(t testing.TB, d Dialect) string {
	t.Helper()
	switch d {
	case DialectPostgres, DialectPgx:
		return "postgres"
	case DialectMySQL, DialectMariaDB:
		return "mysql"
	case DialectSQLite:
		return "sqlite"
	}
	t.Fatalf("no schema folder for dialect %q", d)
	return ""
}

func unitIsMySQL(d Dialect) bool { return d == DialectMySQL || d == DialectMariaDB }

// unitQuote quotes a table name, "table" or "schema.table", as the dialect's files quote theirs.
func unitQuote(d Dialect, table string) string {
	q := `"`
	if unitIsMySQL(d) {
		q = "`"
	}
	parts := strings.Split(table, ".")
	for i, p := range parts {
		parts[i] = q + p + q
	}
	return strings.Join(parts, ".")
}

// unitFile reads schema/<dir>/<name> from disk: the file users copy.
func unitFile(t testing.TB, d Dialect, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("schema", unitDir(t, d), filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// unitRender puts table in place of the quoted default table name in text; "" means the default.
func unitRender(d Dialect, text, table string) string {
	if table == "" || table == DefaultTableName {
		return text
	}
	return strings.ReplaceAll(text, unitQuote(d, DefaultTableName), unitQuote(d, table))
}

// unitQuery returns schema/<dir>/queries/<name>.sql rendered for table ("" means the default).
func unitQuery(t testing.TB, d Dialect, name, table string) string {
	t.Helper()
	return unitRender(d, unitFile(t, d, "queries/"+name+".sql"), table)
}

// unitMock returns a sqlmock database that matches SQL text exactly; the test fails unless every
// expectation was met, and an unexpected statement fails the call that sent it.
func unitMock(t testing.TB) (*sql.DB, sqlmock.Sqlmock) {
	t.Helper()
	db, mock, err := sqlmock.New(sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := mock.ExpectationsWereMet(); err != nil {
			t.Error(err)
		}
		_ = db.Close() // sqlmock reports the close as unexpected; the expectations were checked above
	})
	return db, mock
}

// unitUUID is the form of the tokens Acquire makes: a version 4 UUID.
var unitUUID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// unitToken is a sqlmock argument matcher for the token of one acquire: with want set it matches want;
// otherwise the first value must be a version 4 UUID. Every later value must equal the first, so one
// matcher placed at each token position proves the statement binds a single token throughout.
type unitToken struct {
	want string
	got  string
}

func (u *unitToken) Match(v driver.Value) bool {
	s, ok := v.(string)
	switch {
	case !ok:
		return false
	case u.got != "":
		return s == u.got
	case u.want != "" && s != u.want, u.want == "" && !unitUUID.MatchString(s):
		return false
	}
	u.got = s
	return true
}

// unitMySQLAcquireRoles is the order of the MySQL acquire's 27 bound values, as schema/mysql/queries/acquire.sql
// places its placeholders (TestSchemaPlaceholderRoles derives the same list from the file).
var unitMySQLAcquireRoles = []string{
	"key", "token", "ttl", "ttl", "key", "owner", "data", // the inserted row
	"key", "token", "grace", "ticket", "ticket", // the gate
	"token", "token", // token = IF(… OR token = ?, ?, token)
	"token",        // fence
	"token",        // contended
	"token", "ttl", // ttl_us
	"token", "owner", // owner
	"token", "data", // data
	"token",            // acquired_at
	"ticket", "ticket", // queue_head
	"token", "ttl", // expire_at, last
}

// unitAcquireArgs are the values the acquire statement must bind. The library never binds an owner or
// data yet, so both are NULL.
// unitGrace is the hand-over grace of a manager with the default wait backoff.
const unitGrace = 2 * DefaultWaitMaxBackoff

// unitReleaseArgs are the values the release statement binds for a lock with no least hold, on a *sql.DB.
func unitReleaseArgs(d Dialect, key string, token any) []driver.Value {
	return unitReleaseArgsOn(d, key, token, true)
}

// unitReleaseArgsOn is unitReleaseArgs on an executor that is a *sql.DB (autocommit) or not.
func unitReleaseArgsOn(d Dialect, key string, token any, autocommit bool) []driver.Value {
	switch d {
	case DialectMySQL, DialectMariaDB:
		return []driver.Value{int64(0), int64(0), key, token}
	case DialectSQLite:
		return []driver.Value{key, token, int64(0)}
	}
	return []driver.Value{key, token, int64(0), autocommit} // PostgreSQL commits asynchronously in autocommit
}

func unitAcquireArgs(d Dialect, key string, token any, ttl time.Duration) []driver.Value {
	roles := []string{"key", "token", "ttl", "owner", "data", "ticket", "grace"}
	if unitIsMySQL(d) {
		roles = unitMySQLAcquireRoles
	}
	args := make([]driver.Value, len(roles))
	for i, r := range roles {
		switch r {
		case "key":
			args[i] = key
		case "token":
			args[i] = token
		case "ttl":
			args[i] = ttl.Microseconds()
		case "ticket":
			args[i] = int64(0)
		case "grace":
			args[i] = unitGrace.Microseconds()
		default:
			args[i] = nil
		}
	}
	return args
}

// unitAcquire is an expected acquire statement: a query on PostgreSQL and SQLite, an exec on MySQL.
type unitAcquire struct {
	q *sqlmock.ExpectedQuery
	e *sqlmock.ExpectedExec
}

// granted answers as the database does when the lock is taken with the given fence.
func (a unitAcquire) granted(fence int64) {
	switch {
	case a.q != nil:
		a.q.WillReturnRows(sqlmock.NewRows([]string{"fence"}).AddRow(fence))
	case fence == 1: // MySQL: a fresh row, no LAST_INSERT_ID
		a.e.WillReturnResult(sqlmock.NewResult(0, 1))
	default:
		a.e.WillReturnResult(sqlmock.NewResult(fence, 2))
	}
}

// refused answers as the database does when another token holds the lock.
func (a unitAcquire) refused() {
	if a.q != nil {
		a.q.WillReturnRows(sqlmock.NewRows([]string{"fence"}))
	} else {
		a.e.WillReturnResult(sqlmock.NewResult(0, 2))
	}
}

func (a unitAcquire) fails(err error) {
	if a.q != nil {
		a.q.WillReturnError(err)
	} else {
		a.e.WillReturnError(err)
	}
}

func (a unitAcquire) delay(d time.Duration) {
	if a.q != nil {
		a.q.WillDelayFor(d)
	} else {
		a.e.WillDelayFor(d)
	}
}

// unitFixture is a lock on key "job" of a manager for one dialect, on a sqlmock database.
type unitFixture struct {
	t      testing.TB
	d      Dialect
	table  string
	galera bool // the manager was made WithGalera
	db     *sql.DB
	mock   sqlmock.Sqlmock
	m      *DBManager
	lock   DBLock
}

const unitKey = "job"

func newUnitFixture(t testing.TB, d Dialect, table string) *unitFixture {
	t.Helper()
	return newUnitFixtureWith(t, d, table)
}

// newUnitFixtureWith is newUnitFixture for a manager made with options besides the table name.
func newUnitFixtureWith(t testing.TB, d Dialect, table string, options ...DBManagerOption) *unitFixture {
	t.Helper()
	db, mock := unitMock(t)
	if table != "" {
		options = append(options, WithTableName(table))
	}
	m, err := NewDBManager(d, options...)
	if err != nil {
		t.Fatal(err)
	}
	lock, err := m.NewLock(context.Background(), db, unitKey)
	if err != nil {
		t.Fatal(err)
	}
	return &unitFixture{t: t, d: d, table: table, db: db, mock: mock, m: m, lock: lock}
}

// query is the statement of schema/<dir>/queries/<name>.sql that the fixture's manager sends: behind
// sync_wait.sql's prefix when it was made WithGalera.
func (f *unitFixture) query(name string) string {
	q := unitQuery(f.t, f.d, name, f.table)
	if f.galera {
		q = unitQuery(f.t, f.d, "sync_wait", "") + q
	}
	return q
}

// expectAcquireInTx expects the acquire a lock sends inside a caller's *sql.Tx: on MySQL the statement
// without the gate (acquire_in_tx.sql).
func (f *unitFixture) expectAcquireInTx(token any, ttl time.Duration) unitAcquire {
	if !unitIsMySQL(f.d) {
		return f.expectAcquire(token, ttl)
	}
	gated := unitAcquireArgs(f.d, unitKey, token, ttl)
	args := append(append([]driver.Value{}, gated[:4]...), append(gated[5:7], gated[12:]...)...)
	return unitAcquire{e: f.mock.ExpectExec(f.query("acquire_in_tx")).WithArgs(args...)}
}

// expectEnqueue expects a waiter to take its ticket in the key's queue, and hands it ticket; 0 answers
// as the database does when the key has no row.
func (f *unitFixture) expectEnqueue(ticket int64) {
	query := f.query("enqueue")
	if unitIsMySQL(f.d) {
		f.mock.ExpectExec(query).WithArgs(unitKey).WillReturnResult(sqlmock.NewResult(ticket, min(ticket, 1)))
		return
	}
	args := []driver.Value{unitKey, true}
	if f.d == DialectSQLite {
		args = args[:1]
	}
	rows := sqlmock.NewRows([]string{"queue_tail"})
	if ticket > 0 {
		rows.AddRow(ticket)
	}
	f.mock.ExpectQuery(query).WithArgs(args...).WillReturnRows(rows)
}

// unitPeekRows is a waiter's read of the key's row: the token, the lease left, how long it has been free
// and held (microseconds, nil where it does not apply), and the queue's head and tail.
func unitPeekRows(token string, left, freeFor, heldFor any, head, tail int64) *sqlmock.Rows {
	return sqlmock.NewRows([]string{"token", "left", "free_for", "held_for", "queue_head", "queue_tail"}).
		AddRow(token, left, freeFor, heldFor, head, tail)
}

func (f *unitFixture) expectAcquire(token any, ttl time.Duration) unitAcquire {
	return f.expectAcquireTicket(token, ttl, 0)
}

// expectAcquireTicket expects the acquire of a waiter holding ticket in the key's queue.
func (f *unitFixture) expectAcquireTicket(token any, ttl time.Duration, ticket int64) unitAcquire {
	query := f.query("acquire")
	args := unitAcquireArgs(f.d, unitKey, token, ttl)
	roles := []string{"key", "token", "ttl", "owner", "data", "ticket", "grace"}
	if unitIsMySQL(f.d) {
		roles = unitMySQLAcquireRoles
	}
	for i, r := range roles {
		if r == "ticket" {
			args[i] = ticket
		}
	}
	if f.lock.manager != nil {
		// A test may have changed the manager's backoff, and so its hand-over grace.
		for i, a := range args {
			if a == unitGrace.Microseconds() {
				args[i] = f.lock.manager.handoverGrace().Microseconds()
			}
		}
	}
	if unitIsMySQL(f.d) {
		return unitAcquire{e: f.mock.ExpectExec(query).WithArgs(args...)}
	}
	return unitAcquire{q: f.mock.ExpectQuery(query).WithArgs(args...)}
}

func (f *unitFixture) expectExtend(token string, ttl time.Duration) *sqlmock.ExpectedExec {
	us := ttl.Microseconds()
	args := []driver.Value{us, unitKey, token}
	if unitIsMySQL(f.d) {
		args = []driver.Value{us, us, unitKey, token}
	}
	return f.mock.ExpectExec(f.query("extend")).WithArgs(args...)
}

func (f *unitFixture) expectRelease(token string) *sqlmock.ExpectedExec {
	return f.mock.ExpectExec(f.query("release")).WithArgs(unitReleaseArgs(f.d, unitKey, token)...)
}

// The state every fixture lock is brought to by hold before the operation under test.
const (
	unitHeldToken = "held-token"
	unitHeldFence = int64(3)
	unitHeldTTL   = time.Minute
)

// hold acquires the lock under unitHeldToken with fence unitHeldFence.
func (f *unitFixture) hold() {
	f.t.Helper()
	f.expectAcquire(unitHeldToken, unitHeldTTL).granted(unitHeldFence)
	if err := f.lock.AcquireWithStaticToken(context.Background(), f.db, unitHeldToken, unitHeldTTL); err != nil {
		f.t.Fatal(err)
	}
	f.wantState(unitHeldToken, unitHeldFence, unitHeldTTL)
}

func (f *unitFixture) wantState(token string, fence int64, ttl time.Duration) {
	f.t.Helper()
	if f.lock.Token() != token || f.lock.Fence() != fence || f.lock.TTL != ttl || f.lock.Key != unitKey {
		f.t.Errorf("lock is {Key %q, Token %q, Fence %d, TTL %v}, want {Key %q, Token %q, Fence %d, TTL %v}",
			f.lock.Key, f.lock.Token(), f.lock.Fence(), f.lock.TTL, unitKey, token, fence, ttl)
	}
}

// unitShownKey is how an error message shows a key: cut after 64 bytes.
func unitShownKey(key string) string {
	if len(key) > 64 {
		return key[:64] + "…"
	}
	return key
}

// unitWantErr fails unless err matches every target with errors.Is and reads `distrlock: <op> "<key>": …`,
// with "distrlock:" said once.
func unitWantErr(t testing.TB, err error, op, key string, targets ...error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: got no error, want one matching %v", op, targets)
	}
	for _, target := range targets {
		if !errors.Is(err, target) {
			t.Errorf("%s: error %q does not match %q", op, err, target)
		}
	}
	msg := err.Error()
	if prefix := fmt.Sprintf("distrlock: %s %q: ", op, unitShownKey(key)); !strings.HasPrefix(msg, prefix) {
		t.Errorf("error %q does not start with %q", msg, prefix)
	}
	if n := strings.Count(msg, "distrlock:"); n != 1 {
		t.Errorf("error %q says \"distrlock:\" %d times, want once", msg, n)
	}
}

// unitAcquireMethod is Acquire or AcquireWithStaticToken.
type unitAcquireMethod struct {
	op     string
	static string // the token of AcquireWithStaticToken; "" for Acquire
}

var unitAcquireMethods = []unitAcquireMethod{{op: "acquire"}, {op: "acquire with static token", static: "static-token"}}

func (u unitAcquireMethod) call(ctx context.Context, l *DBLock, exec SQLExecutor, ttl time.Duration) error {
	if u.static == "" {
		return l.Acquire(ctx, exec, ttl)
	}
	return l.AcquireWithStaticToken(ctx, exec, u.static, ttl)
}

func (u unitAcquireMethod) token() *unitToken { return &unitToken{want: u.static} }

// unitEach runs fn for every dialect and both acquire methods.
func unitEach(t *testing.T, fn func(t *testing.T, d Dialect, u unitAcquireMethod)) {
	for _, d := range unitDialects {
		for _, u := range unitAcquireMethods {
			t.Run(string(d)+"/"+u.op, func(t *testing.T) { fn(t, d, u) })
		}
	}
}

var errUnitDriver = errors.New("driver: connection reset by peer")

// TestAcquireOutcomes: the acquire statement's answer decides the outcome. PostgreSQL and SQLite return the
// fence in a row, or no row when the lock is held. MySQL returns LastInsertId and RowsAffected: (0,1) is a
// fresh row with fence 1, (7,2) a taken row with fence 7, and (0,2) or (0,0) a refusal. A success replaces
// the token, fence and TTL; a refusal leaves them as they were.
func TestAcquireOutcomes(t *testing.T) {
	type outcome struct {
		name      string
		respond   func(a unitAcquire)
		wantFence int64 // 0: refused with ErrLockAlreadyAcquired
	}
	returning := []outcome{
		{"row", func(a unitAcquire) { a.granted(42) }, 42},
		{"row with fence 1", func(a unitAcquire) { a.granted(1) }, 1},
		{"no row", func(a unitAcquire) { a.refused() }, 0},
	}
	mysql := []outcome{
		{"fresh row (0,1)", func(a unitAcquire) { a.e.WillReturnResult(sqlmock.NewResult(0, 1)) }, 1},
		{"taken (7,2)", func(a unitAcquire) { a.e.WillReturnResult(sqlmock.NewResult(7, 2)) }, 7},
		{"refused (0,2)", func(a unitAcquire) { a.e.WillReturnResult(sqlmock.NewResult(0, 2)) }, 0},
		{"refused (0,0)", func(a unitAcquire) { a.e.WillReturnResult(sqlmock.NewResult(0, 0)) }, 0},
	}
	unitEach(t, func(t *testing.T, d Dialect, u unitAcquireMethod) {
		outcomes := returning
		if unitIsMySQL(d) {
			outcomes = mysql
		}
		for _, o := range outcomes {
			t.Run(o.name, func(t *testing.T) {
				f := newUnitFixture(t, d, "")
				f.hold()
				const ttl = 90 * time.Second
				tok := u.token()
				o.respond(f.expectAcquire(tok, ttl))
				err := u.call(context.Background(), &f.lock, f.db, ttl)
				if o.wantFence == 0 {
					unitWantErr(t, err, u.op, unitKey, ErrLockAlreadyAcquired)
					f.wantState(unitHeldToken, unitHeldFence, unitHeldTTL)
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if tok.got == "" || tok.got == unitHeldToken {
					t.Fatalf("the statement bound token %q", tok.got)
				}
				f.wantState(tok.got, o.wantFence, ttl)
			})
		}
	})
}

// TestAcquireRefusedOnNewLock: a refused first acquire leaves the lock unacquired, so Extend and Release
// send nothing and report ErrLockNotAcquired.
func TestAcquireRefusedOnNewLock(t *testing.T) {
	unitEach(t, func(t *testing.T, d Dialect, u unitAcquireMethod) {
		f := newUnitFixture(t, d, "")
		f.expectAcquire(u.token(), time.Minute).refused()
		unitWantErr(t, u.call(context.Background(), &f.lock, f.db, time.Minute), u.op, unitKey, ErrLockAlreadyAcquired)
		f.wantState("", 0, 0)
		unitWantErr(t, f.lock.Extend(context.Background(), f.db), "extend", unitKey, ErrLockNotAcquired, ErrLockAlreadyReleased)
		unitWantErr(t, f.lock.Release(context.Background(), f.db), "release", unitKey, ErrLockNotAcquired, ErrLockAlreadyReleased)
	})
}

// TestAcquireDriverError: when the statement fails, its outcome is unknown. The error wraps the driver's,
// and the lock keeps the new token (so that a release can free what may have been taken) with fence 0.
func TestAcquireDriverError(t *testing.T) {
	errResult := errors.New("driver: result lost")
	unitEach(t, func(t *testing.T, d Dialect, u unitAcquireMethod) {
		cases := []struct {
			name    string
			respond func(a unitAcquire)
			want    error
		}{
			{"statement error", func(a unitAcquire) { a.fails(errUnitDriver) }, errUnitDriver},
		}
		if unitIsMySQL(d) {
			cases = append(cases, struct {
				name    string
				respond func(a unitAcquire)
				want    error
			}{"result error", func(a unitAcquire) { a.e.WillReturnResult(sqlmock.NewErrorResult(errResult)) }, errResult})
		} else {
			cases = append(cases, struct {
				name    string
				respond func(a unitAcquire)
				want    error
			}{"row error", func(a unitAcquire) {
				a.q.WillReturnRows(sqlmock.NewRows([]string{"fence"}).AddRow(int64(5)).RowError(0, errResult))
			}, errResult})
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				f := newUnitFixture(t, d, "")
				f.hold()
				tok := u.token()
				c.respond(f.expectAcquire(tok, 2*time.Minute))
				err := u.call(context.Background(), &f.lock, f.db, 2*time.Minute)
				unitWantErr(t, err, u.op, unitKey, c.want)
				if errors.Is(err, ErrLockAlreadyAcquired) {
					t.Errorf("an unknown outcome %q matches ErrLockAlreadyAcquired", err)
				}
				// Not known to be held: go-dbkit's Token() is "" after a failed acquire.
				f.wantState("", 0, unitHeldTTL)

				// The retry sends the lost attempt's token again, so the lost attempt cannot refuse it.
				f.expectAcquire(&unitToken{want: tok.got}, 2*time.Minute).granted(6)
				if err := u.call(context.Background(), &f.lock, f.db, 2*time.Minute); err != nil {
					t.Fatal(err)
				}
				f.wantState(tok.got, 6, 2*time.Minute)
				f.expectRelease(tok.got).WillReturnResult(sqlmock.NewResult(0, 1))
				if err := f.lock.Release(context.Background(), f.db); err != nil {
					t.Fatal(err)
				}
				f.wantState("", 6, 2*time.Minute)
			})
		}
	})
}

// TestAcquireContextEndedBeforeCall: a context that has already ended stops the call before anything is
// sent (the mock has no expectation), leaves the lock as it was, and the error matches the context's
// error and its cause.
func TestAcquireContextEndedBeforeCall(t *testing.T) {
	errCause := errors.New("shutting down")
	unitEach(t, func(t *testing.T, d Dialect, u unitAcquireMethod) {
		for _, c := range unitEndedContexts(errCause) {
			t.Run(c.name, func(t *testing.T) {
				f := newUnitFixture(t, d, "")
				f.hold()
				ctx := c.ctx(t)
				unitWantErr(t, u.call(ctx, &f.lock, f.db, time.Minute), u.op, unitKey, c.want...)
				f.wantState(unitHeldToken, unitHeldFence, unitHeldTTL)
			})
		}
	})
}

type unitEndedContext struct {
	name string
	ctx  func(t *testing.T) context.Context
	want []error
}

func unitEndedContexts(cause error) []unitEndedContext {
	return []unitEndedContext{
		{"canceled", func(t *testing.T) context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, []error{context.Canceled}},
		{"canceled with cause", func(t *testing.T) context.Context {
			ctx, cancel := context.WithCancelCause(context.Background())
			cancel(cause)
			return ctx
		}, []error{context.Canceled, cause}},
		{"deadline passed", func(t *testing.T) context.Context {
			ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
			t.Cleanup(cancel)
			return ctx
		}, []error{context.DeadlineExceeded}},
	}
}

// TestAcquireContextEndsMidFlight: a context that ends while the statement runs makes an unknown outcome:
// the error matches context.DeadlineExceeded, the new token is kept with fence 0, and Release then frees
// the lock with that token. The statement's delay runs on synctest's fake clock.
func TestAcquireContextEndsMidFlight(t *testing.T) {
	unitEach(t, func(t *testing.T, d Dialect, u unitAcquireMethod) {
		synctest.Test(t, func(t *testing.T) {
			f := newUnitFixture(t, d, "")
			f.hold()
			tok := u.token()
			a := f.expectAcquire(tok, 2*time.Minute)
			a.granted(5) // the answer that the context's end makes the caller miss
			a.delay(time.Hour)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			start := time.Now()
			err := u.call(ctx, &f.lock, f.db, 2*time.Minute)
			unitWantErr(t, err, u.op, unitKey, context.DeadlineExceeded)
			if waited := time.Since(start); waited != time.Second {
				t.Errorf("the call returned after %v, want 1s (the context's timeout)", waited)
			}
			f.wantState("", 0, unitHeldTTL)
			if tok.got == "" {
				t.Fatal("the statement was not sent")
			}

			f.expectRelease(tok.got).WillReturnResult(sqlmock.NewResult(0, 1))
			if err := f.lock.Release(context.Background(), f.db); err != nil {
				t.Fatal(err)
			}
		})
	})
}

// TestAcquireTTLBounds: MinTTL and MaxTTL are accepted and bound in microseconds.
func TestAcquireTTLBounds(t *testing.T) {
	unitEach(t, func(t *testing.T, d Dialect, u unitAcquireMethod) {
		for _, ttl := range []time.Duration{MinTTL, MaxTTL} {
			f := newUnitFixture(t, d, "")
			tok := u.token()
			f.expectAcquire(tok, ttl).granted(1)
			if err := u.call(context.Background(), &f.lock, f.db, ttl); err != nil {
				t.Fatalf("ttl %v: %v", ttl, err)
			}
			f.wantState(tok.got, 1, ttl)
		}
	})
}

// TestExtend: Extend binds the lock's TTL, key and token. On PostgreSQL and SQLite one affected row means
// extended; on MySQL a LastInsertId above 0 does (LAST_INSERT_ID(expire_at) is evaluated only for a found
// row), even when no row changed. Anything else is ErrLockAlreadyReleased. Extend changes no field.
func TestExtend(t *testing.T) {
	type outcome struct {
		name    string
		result  driver.Result
		wantErr error
	}
	errResult := errors.New("driver: result lost")
	returning := []outcome{
		{"1 row", sqlmock.NewResult(0, 1), nil},
		{"0 rows", sqlmock.NewResult(0, 0), ErrLockAlreadyReleased},
		{"result error", sqlmock.NewErrorResult(errResult), errResult},
	}
	mysql := []outcome{
		{"found and changed", sqlmock.NewResult(1_764_000_000_000_000, 1), nil},
		{"found, 0 rows changed", sqlmock.NewResult(1_764_000_000_000_000, 0), nil},
		{"not found", sqlmock.NewResult(0, 0), ErrLockAlreadyReleased},
		{"result error", sqlmock.NewErrorResult(errResult), errResult},
	}
	for _, d := range unitDialects {
		outcomes := returning
		if unitIsMySQL(d) {
			outcomes = mysql
		}
		for _, o := range outcomes {
			t.Run(string(d)+"/"+o.name, func(t *testing.T) {
				f := newUnitFixture(t, d, "")
				f.hold()
				f.expectExtend(unitHeldToken, unitHeldTTL).WillReturnResult(o.result)
				err := f.lock.Extend(context.Background(), f.db)
				if o.wantErr == nil {
					if err != nil {
						t.Fatal(err)
					}
				} else {
					unitWantErr(t, err, "extend", unitKey, o.wantErr)
				}
				f.wantState(unitHeldToken, unitHeldFence, unitHeldTTL)
			})
		}
		t.Run(string(d)+"/driver error", func(t *testing.T) {
			f := newUnitFixture(t, d, "")
			f.hold()
			f.expectExtend(unitHeldToken, unitHeldTTL).WillReturnError(errUnitDriver)
			err := f.lock.Extend(context.Background(), f.db)
			unitWantErr(t, err, "extend", unitKey, errUnitDriver)
			if errors.Is(err, ErrLockAlreadyReleased) {
				t.Errorf("a driver error %q matches ErrLockAlreadyReleased", err)
			}
			f.wantState(unitHeldToken, unitHeldFence, unitHeldTTL)
		})
		t.Run(string(d)+"/uses the lock's TTL", func(t *testing.T) {
			f := newUnitFixture(t, d, "")
			f.hold()
			f.lock.TTL = 10 * time.Minute
			f.expectExtend(unitHeldToken, 10*time.Minute).WillReturnResult(sqlmock.NewResult(1, 1))
			if err := f.lock.Extend(context.Background(), f.db); err != nil {
				t.Fatal(err)
			}
		})
		t.Run(string(d)+"/invalid TTL sends nothing", func(t *testing.T) {
			f := newUnitFixture(t, d, "")
			f.hold()
			for _, ttl := range []time.Duration{0, -time.Second, MinTTL - 1, MaxTTL + 1} {
				f.lock.TTL = ttl
				unitWantErr(t, f.lock.Extend(context.Background(), f.db), "extend", unitKey, ErrInvalidTTL)
			}
		})
	}
}

// TestRelease: Release binds the key and the token; one affected row means released, none means
// ErrLockAlreadyReleased (so a second release reports it). Release changes no field.
func TestRelease(t *testing.T) {
	errResult := errors.New("driver: result lost")
	for _, d := range unitDialects {
		for _, o := range []struct {
			name    string
			result  driver.Result
			wantErr error
		}{
			{"1 row", sqlmock.NewResult(0, 1), nil},
			{"0 rows", sqlmock.NewResult(0, 0), ErrLockAlreadyReleased},
			{"result error", sqlmock.NewErrorResult(errResult), errResult},
		} {
			t.Run(string(d)+"/"+o.name, func(t *testing.T) {
				f := newUnitFixture(t, d, "")
				f.hold()
				f.expectRelease(unitHeldToken).WillReturnResult(o.result)
				err := f.lock.Release(context.Background(), f.db)
				if o.wantErr == nil {
					if err != nil {
						t.Fatal(err)
					}
				} else {
					unitWantErr(t, err, "release", unitKey, o.wantErr)
				}
				if o.wantErr == errResult { // unknown outcome: still held as far as the DBLock knows
					f.wantState(unitHeldToken, unitHeldFence, unitHeldTTL)
				} else {
					f.wantState("", unitHeldFence, unitHeldTTL)
				}
			})
		}
		t.Run(string(d)+"/driver error", func(t *testing.T) {
			f := newUnitFixture(t, d, "")
			f.hold()
			f.expectRelease(unitHeldToken).WillReturnError(errUnitDriver)
			err := f.lock.Release(context.Background(), f.db)
			unitWantErr(t, err, "release", unitKey, errUnitDriver)
			if errors.Is(err, ErrLockAlreadyReleased) {
				t.Errorf("a driver error %q matches ErrLockAlreadyReleased", err)
			}
		})
		t.Run(string(d)+"/twice", func(t *testing.T) {
			f := newUnitFixture(t, d, "")
			f.hold()
			f.expectRelease(unitHeldToken).WillReturnResult(sqlmock.NewResult(0, 1))
			f.expectRelease(unitHeldToken).WillReturnResult(sqlmock.NewResult(0, 0))
			if err := f.lock.Release(context.Background(), f.db); err != nil {
				t.Fatal(err)
			}
			unitWantErr(t, f.lock.Release(context.Background(), f.db), "release", unitKey, ErrLockAlreadyReleased)
		})
	}
}

// unitHeldOps are Extend and Release, which need a held lock.
var unitHeldOps = []struct {
	op   string
	call func(ctx context.Context, l *DBLock, exec SQLExecutor) error
}{
	{"extend", func(ctx context.Context, l *DBLock, exec SQLExecutor) error { return l.Extend(ctx, exec) }},
	{"release", func(ctx context.Context, l *DBLock, exec SQLExecutor) error { return l.Release(ctx, exec) }},
}

// TestExtendReleaseContextEndedBeforeCall: nothing is sent and the error matches the context's.
func TestExtendReleaseContextEndedBeforeCall(t *testing.T) {
	errCause := errors.New("shutting down")
	for _, d := range unitDialects {
		for _, op := range unitHeldOps {
			for _, c := range unitEndedContexts(errCause) {
				t.Run(string(d)+"/"+op.op+"/"+c.name, func(t *testing.T) {
					f := newUnitFixture(t, d, "")
					f.hold()
					unitWantErr(t, op.call(c.ctx(t), &f.lock, f.db), op.op, unitKey, c.want...)
					f.wantState(unitHeldToken, unitHeldFence, unitHeldTTL)
				})
			}
		}
	}
}

// TestExtendReleaseContextEndsMidFlight: the error matches context.DeadlineExceeded, not
// ErrLockAlreadyReleased, and the lock keeps its token.
func TestExtendReleaseContextEndsMidFlight(t *testing.T) {
	for _, d := range unitDialects {
		for _, op := range unitHeldOps {
			t.Run(string(d)+"/"+op.op, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					f := newUnitFixture(t, d, "")
					f.hold()
					var e *sqlmock.ExpectedExec
					if op.op == "extend" {
						e = f.expectExtend(unitHeldToken, unitHeldTTL)
					} else {
						e = f.expectRelease(unitHeldToken)
					}
					e.WillDelayFor(time.Hour).WillReturnResult(sqlmock.NewResult(1, 1))
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					defer cancel()
					err := op.call(ctx, &f.lock, f.db)
					unitWantErr(t, err, op.op, unitKey, context.DeadlineExceeded)
					if errors.Is(err, ErrLockAlreadyReleased) {
						t.Errorf("error %q matches ErrLockAlreadyReleased", err)
					}
					f.wantState(unitHeldToken, unitHeldFence, unitHeldTTL)
				})
			})
		}
	}
}

// TestExtendReleaseNeverAcquired: on a lock that never attempted an acquisition both send nothing and
// return an error matching ErrLockNotAcquired and, as go-dbkit answered, ErrLockAlreadyReleased.
func TestExtendReleaseNeverAcquired(t *testing.T) {
	for _, d := range unitDialects {
		for _, op := range unitHeldOps {
			t.Run(string(d)+"/"+op.op, func(t *testing.T) {
				f := newUnitFixture(t, d, "")
				f.lock.TTL = time.Minute // set by hand, as a go-dbkit user may: still never acquired
				unitWantErr(t, op.call(context.Background(), &f.lock, f.db), op.op, unitKey,
					ErrLockNotAcquired, ErrLockAlreadyReleased)
				f.wantState("", 0, time.Minute)
			})
		}
	}
}

// TestLockInTransaction: every operation runs inside the caller's *sql.Tx, between its BEGIN and its
// COMMIT or ROLLBACK, and nothing runs outside it.
func TestLockInTransaction(t *testing.T) {
	for _, d := range unitDialects {
		t.Run(string(d)+"/commit", func(t *testing.T) {
			ctx := context.Background()
			f := newUnitFixture(t, d, "")
			tok := &unitToken{}
			f.mock.ExpectBegin()
			f.expectAcquireInTx(tok, time.Minute).granted(1)
			f.mock.ExpectCommit()
			f.mock.ExpectBegin()
			f.mock.ExpectExec(unitQuery(t, d, "extend", "")).WithArgs(unitExtendArgs(d, tok, time.Minute)...).
				WillReturnResult(sqlmock.NewResult(1, 1))
			f.mock.ExpectExec(unitQuery(t, d, "release", "")).WithArgs(unitReleaseArgsOn(d, unitKey, tok, false)...).
				WillReturnResult(sqlmock.NewResult(0, 1))
			f.mock.ExpectCommit()

			tx, err := f.db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.lock.Acquire(ctx, tx, time.Minute); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			f.wantState(tok.got, 1, time.Minute)

			tx, err = f.db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.lock.Extend(ctx, tx); err != nil {
				t.Fatal(err)
			}
			if err := f.lock.Release(ctx, tx); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		})
		t.Run(string(d)+"/rollback", func(t *testing.T) {
			ctx := context.Background()
			f := newUnitFixture(t, d, "my_locks")
			f.mock.ExpectBegin()
			f.expectAcquireInTx("static", time.Minute).granted(9)
			f.mock.ExpectRollback()
			tx, err := f.db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.lock.AcquireWithStaticToken(ctx, tx, "static", time.Minute); err != nil {
				t.Fatal(err)
			}
			if err := tx.Rollback(); err != nil {
				t.Fatal(err)
			}
			f.wantState("static", 9, time.Minute)
		})
		t.Run(string(d)+"/finished transaction", func(t *testing.T) {
			ctx := context.Background()
			f := newUnitFixture(t, d, "")
			f.mock.ExpectBegin()
			f.mock.ExpectCommit()
			tx, err := f.db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			err = f.lock.Acquire(ctx, tx, time.Minute)
			unitWantErr(t, err, "acquire", unitKey, sql.ErrTxDone)
		})
	}
}

func unitExtendArgs(d Dialect, token any, ttl time.Duration) []driver.Value {
	us := ttl.Microseconds()
	if unitIsMySQL(d) {
		return []driver.Value{us, us, unitKey, token}
	}
	return []driver.Value{us, unitKey, token}
}

// TestLockOnConn: every operation runs on a caller's *sql.Conn.
func TestLockOnConn(t *testing.T) {
	for _, d := range unitDialects {
		t.Run(string(d), func(t *testing.T) {
			ctx := context.Background()
			f := newUnitFixture(t, d, "app.my_locks")
			tok := &unitToken{}
			f.expectAcquire(tok, time.Minute).granted(2)
			f.mock.ExpectExec(unitQuery(t, d, "extend", "app.my_locks")).WithArgs(unitExtendArgs(d, tok, time.Minute)...).
				WillReturnResult(sqlmock.NewResult(1, 1))
			f.mock.ExpectExec(unitQuery(t, d, "release", "app.my_locks")).WithArgs(unitReleaseArgsOn(d, unitKey, tok, false)...).
				WillReturnResult(sqlmock.NewResult(0, 1))
			conn, err := f.db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if err := f.lock.Acquire(ctx, conn, time.Minute); err != nil {
				t.Fatal(err)
			}
			if err := f.lock.Extend(ctx, conn); err != nil {
				t.Fatal(err)
			}
			f.wantState(tok.got, 2, time.Minute)
			if err := f.lock.Release(ctx, conn); err != nil {
				t.Fatal(err)
			}
			f.wantState("", 2, time.Minute)
		})
	}
}

// TestAcquireNewTokenEachTime: every Acquire binds a new version 4 UUID, and a lock copied by value
// carries the token, so a copy can release what the original acquired.
func TestAcquireNewTokenEachTime(t *testing.T) {
	f := newUnitFixture(t, DialectPgx, "")
	seen := map[string]bool{}
	for range 20 {
		tok := &unitToken{}
		f.expectAcquire(tok, time.Minute).granted(int64(len(seen) + 1))
		if err := f.lock.Acquire(context.Background(), f.db, time.Minute); err != nil {
			t.Fatal(err)
		}
		if seen[tok.got] {
			t.Fatalf("token %s was bound twice", tok.got)
		}
		seen[tok.got] = true
	}
	cp := f.lock
	f.expectRelease(f.lock.Token()).WillReturnResult(sqlmock.NewResult(0, 1))
	if err := cp.Release(context.Background(), f.db); err != nil {
		t.Fatal(err)
	}
}

// unitNoCalls is an SQLExecutor that fails the test if anything is sent.
type unitNoCalls struct{ t *testing.T }

func (e unitNoCalls) ExecContext(context.Context, string, ...any) (sql.Result, error) {
	e.t.Error("a statement was sent")
	return nil, errors.New("unexpected")
}

func (e unitNoCalls) QueryRowContext(context.Context, string, ...any) *sql.Row {
	e.t.Error("a statement was sent")
	return nil
}

// TestKeyChangedAfterNewLock: Key is a public field; a key made invalid after NewLock is refused by every
// operation before anything is sent.
func TestKeyChangedAfterNewLock(t *testing.T) {
	m, err := NewDBManager(DialectPgx)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	exec := unitNoCalls{t}
	for _, key := range []string{"", strings.Repeat("k", MaxKeyLength+1), "a\x00b", "\xff"} {
		l, err := m.NewLock(ctx, exec, "valid")
		if err != nil {
			t.Fatal(err)
		}
		l.Key = key
		for name, call := range map[string]func() error{
			"Acquire":                func() error { return l.Acquire(ctx, exec, time.Minute) },
			"AcquireWithStaticToken": func() error { return l.AcquireWithStaticToken(ctx, exec, "t", time.Minute) },
			"AcquireWait":            func() error { return l.AcquireWait(ctx, exec, time.Minute, time.Second) },
			"Extend":                 func() error { return l.Extend(ctx, exec) },
			"Release":                func() error { return l.Release(ctx, exec) },
		} {
			if err := call(); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("%s with key %q: %v, want ErrInvalidKey", name, key, err)
			}
		}
	}
}
