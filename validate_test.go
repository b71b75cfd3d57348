package distrlock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
)

// unitBadText are keys and tokens that no column stores faithfully in every dialect.
var unitBadText = []struct {
	name  string
	value string
}{
	{"empty", ""},
	{"256 bytes", strings.Repeat("k", 256)},
	{"256 bytes of 2-byte runes", strings.Repeat("é", 128)},
	{"invalid UTF-8", "job\xff"},
	{"truncated rune", "job\xc3"},
	{"NUL", "job\x00x"},
	{"only NUL", "\x00"},
}

// unitGoodText are the boundary values that are accepted.
var unitGoodText = []string{"k", strings.Repeat("k", 255), "ключ 🔒", " spaced ", "'; DROP TABLE x; --"}

// TestNewLockInvalidKey: a bad key makes NewLock fail with ErrInvalidKey, in the package's error form.
func TestNewLockInvalidKey(t *testing.T) {
	for _, d := range unitDialects {
		for _, c := range unitBadText {
			t.Run(string(d)+"/"+c.name, func(t *testing.T) {
				db, _ := unitMock(t)
				m, err := NewDBManager(d)
				if err != nil {
					t.Fatal(err)
				}
				l, err := m.NewLock(context.Background(), db, c.value)
				unitWantErr(t, err, "new lock", c.value, ErrInvalidKey)
				if l != (DBLock{}) {
					t.Errorf("NewLock returned %+v with its error", l)
				}
			})
		}
		for _, key := range unitGoodText {
			db, _ := unitMock(t)
			m, err := NewDBManager(d)
			if err != nil {
				t.Fatal(err)
			}
			if l, err := m.NewLock(context.Background(), db, key); err != nil || l.Key != key {
				t.Errorf("%s: NewLock(%q) = %q, %v", d, key, l.Key, err)
			}
		}
	}
}

// TestInvalidKeyMessage: the message says why the key is refused, and cuts a long key.
func TestInvalidKeyMessage(t *testing.T) {
	db, _ := unitMock(t)
	m, err := NewDBManager(DialectPostgres)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ key, want string }{
		{"", `distrlock: new lock "": invalid lock key: empty key`},
		{strings.Repeat("k", 256), `distrlock: new lock "` + strings.Repeat("k", 64) + `…": invalid lock key: key is 256 bytes, longer than 255`},
		{"job\xff", `distrlock: new lock "job\xff": invalid lock key: key is not valid UTF-8`},
		{"job\x00", `distrlock: new lock "job\x00": invalid lock key: key contains a NUL byte`},
	} {
		_, err := m.NewLock(context.Background(), db, c.key)
		if err == nil || err.Error() != c.want {
			t.Errorf("NewLock(%q) error\n got %v\nwant %s", c.key, err, c.want)
		}
	}
}

// TestAcquireInvalidToken: a bad static token fails with ErrInvalidToken, sends nothing and leaves the
// lock as it was.
func TestAcquireInvalidToken(t *testing.T) {
	for _, d := range unitDialects {
		for _, c := range unitBadText {
			t.Run(string(d)+"/"+c.name, func(t *testing.T) {
				f := newUnitFixture(t, d, "")
				f.hold()
				err := f.lock.AcquireWithStaticToken(context.Background(), f.db, c.value, time.Minute)
				unitWantErr(t, err, "acquire with static token", unitKey, ErrInvalidToken)
				f.wantState(unitHeldToken, unitHeldFence, unitHeldTTL)
			})
		}
	}
	// The longest token is accepted and bound as it is.
	f := newUnitFixture(t, DialectMySQL, "")
	long := strings.Repeat("t", MaxTokenLength)
	f.expectAcquire(long, time.Minute).granted(1)
	if err := f.lock.AcquireWithStaticToken(context.Background(), f.db, long, time.Minute); err != nil {
		t.Fatal(err)
	}
}

// TestAcquireInvalidTTL: a TTL outside [MinTTL, MaxTTL] fails with ErrInvalidTTL, sends nothing and leaves
// the lock as it was.
func TestAcquireInvalidTTL(t *testing.T) {
	unitEach(t, func(t *testing.T, d Dialect, u unitAcquireMethod) {
		for _, ttl := range []time.Duration{0, -time.Second, MinTTL - time.Nanosecond, time.Microsecond, MaxTTL + time.Nanosecond} {
			f := newUnitFixture(t, d, "")
			f.hold()
			unitWantErr(t, u.call(context.Background(), &f.lock, f.db, ttl), u.op, unitKey, ErrInvalidTTL)
			f.wantState(unitHeldToken, unitHeldFence, unitHeldTTL)
		}
	})
}

// unitNilExecutors are the nil executors that would otherwise panic inside database/sql.
var unitNilExecutors = []struct {
	name string
	exec SQLExecutor
}{
	{"nil interface", nil},
	{"nil *sql.DB", (*sql.DB)(nil)},
	{"nil *sql.Tx", (*sql.Tx)(nil)},
	{"nil *sql.Conn", (*sql.Conn)(nil)},
}

// TestNilExecutor: every operation refuses a nil executor with ErrNilExecutor and changes nothing.
func TestNilExecutor(t *testing.T) {
	for _, d := range unitDialects {
		for _, n := range unitNilExecutors {
			t.Run(string(d)+"/"+n.name, func(t *testing.T) {
				f := newUnitFixture(t, d, "")
				l, err := f.m.NewLock(context.Background(), n.exec, unitKey)
				unitWantErr(t, err, "new lock", unitKey, ErrNilExecutor)
				if l != (DBLock{}) {
					t.Errorf("NewLock returned %+v with its error", l)
				}
				f.hold()
				for _, u := range unitAcquireMethods {
					unitWantErr(t, u.call(context.Background(), &f.lock, n.exec, time.Minute), u.op, unitKey, ErrNilExecutor)
				}
				for _, op := range unitHeldOps {
					unitWantErr(t, op.call(context.Background(), &f.lock, n.exec), op.op, unitKey, ErrNilExecutor)
				}
				f.wantState(unitHeldToken, unitHeldFence, unitHeldTTL)
			})
		}
	}
}

// TestLockNotFromNewLock: a DBLock made as a literal (go-dbkit's DBLock{Key, TTL}) fails with
// ErrInvalidLock on every operation instead of panicking, and sends nothing.
func TestLockNotFromNewLock(t *testing.T) {
	db, _ := unitMock(t)
	for _, l := range []DBLock{{}, {Key: "job", TTL: time.Minute}} {
		for _, u := range unitAcquireMethods {
			unitWantErr(t, u.call(context.Background(), &l, db, time.Minute), u.op, l.Key, ErrInvalidLock)
		}
		for _, op := range unitHeldOps {
			unitWantErr(t, op.call(context.Background(), &l, db), op.op, l.Key, ErrInvalidLock)
		}
		unitWantErr(t, l.DoExclusively(context.Background(), db, func(context.Context) error {
			t.Error("fn ran on an invalid lock")
			return nil
		}), "acquire", l.Key, ErrInvalidLock)
		if l.Token() != "" || l.Fence() != 0 {
			t.Errorf("the invalid lock changed: token %q, fence %d", l.Token(), l.Fence())
		}
	}
}

// TestUnsupportedDialect: a dialect that is not one of the constants fails with ErrUnsupportedDialect
// everywhere a dialect is taken.
func TestUnsupportedDialect(t *testing.T) {
	db, _ := unitMock(t)
	for _, d := range []Dialect{"", "oracle", "Postgres", "sqlite", "postgresql", "mysql "} {
		t.Run(fmt.Sprintf("%q", d), func(t *testing.T) {
			m, err := NewDBManager(d)
			unitWantErr(t, err, "new manager", DefaultTableName, ErrUnsupportedDialect)
			if m != nil {
				t.Error("NewDBManager returned a manager with its error")
			}
			if want := fmt.Sprintf("unsupported sql dialect %q", string(d)); err != nil && !strings.HasSuffix(err.Error(), want) {
				t.Errorf("error %q does not end with %q", err, want)
			}
			_, err = NewDBManager(d, WithTableName("my_locks"))
			unitWantErr(t, err, "new manager", "my_locks", ErrUnsupportedDialect)
			_, err = NewDBManagerWithOpts(d, DBManagerOpts{TableName: "my_locks"})
			unitWantErr(t, err, "new manager", "my_locks", ErrUnsupportedDialect)
			s, err := CreateTableSQL(d)
			unitWantErr(t, err, "new manager", DefaultTableName, ErrUnsupportedDialect)
			if s != "" {
				t.Errorf("CreateTableSQL returned %q with its error", s)
			}
			s, err = DropTableSQL(d)
			unitWantErr(t, err, "new manager", DefaultTableName, ErrUnsupportedDialect)
			if s != "" {
				t.Errorf("DropTableSQL returned %q with its error", s)
			}
			err = DoExclusively(context.Background(), db, d, "job", func(context.Context) error {
				t.Error("fn ran")
				return nil
			})
			unitWantErr(t, err, "new manager", DefaultTableName, ErrUnsupportedDialect)
		})
	}
}

// TestTableNames: plain and schema-qualified identifiers are quoted in every statement; anything else
// fails with ErrInvalidTableName.
func TestTableNames(t *testing.T) {
	for _, d := range unitDialects {
		q := `"`
		if unitIsMySQL(d) {
			q = "`"
		}
		for _, c := range []struct {
			name, quoted string
		}{
			{"", q + DefaultTableName + q},
			{"locks", q + "locks" + q},
			{"My_Locks2", q + "My_Locks2" + q},
			{"_x", q + "_x" + q},
			{"schema.table", q + "schema" + q + "." + q + "table" + q},
			{"app.my_locks", q + "app" + q + "." + q + "my_locks" + q},
			{"select", q + "select" + q},
			{strings.Repeat("a", 63), q + strings.Repeat("a", 63) + q},
			{strings.Repeat("s", 63) + "." + strings.Repeat("t", 63), q + strings.Repeat("s", 63) + q + "." + q + strings.Repeat("t", 63) + q},
		} {
			m, err := NewDBManager(d, WithTableName(c.name))
			if err != nil {
				t.Errorf("%s: table %q: %v", d, c.name, err)
				continue
			}
			for _, stmt := range []string{m.CreateTableSQL(), m.DropTableSQL(), m.q.acquire, m.q.extend, m.q.release} {
				if !strings.Contains(stmt, " "+c.quoted) {
					t.Errorf("%s: table %q is not quoted as %s in\n%s", d, c.name, c.quoted, stmt)
				}
			}
		}
		for _, name := range []string{
			"a b", "x;drop", `a"b`, "a`b", "a.b.c", "1abc", "app.1abc", strings.Repeat("a", 64),
			"app." + strings.Repeat("a", 64), ".", "a.", ".a", "a-b", "é", "locks\n", "a/**/b", "a'b", "a\x00",
		} {
			m, err := NewDBManager(d, WithTableName(name))
			unitWantErr(t, err, "new manager", name, ErrInvalidTableName)
			if m != nil {
				t.Errorf("%s: table %q: NewDBManager returned a manager with its error", d, name)
			}
			_, err = NewDBManagerWithOpts(d, DBManagerOpts{TableName: name})
			unitWantErr(t, err, "new manager", name, ErrInvalidTableName)
		}
	}
}

// TestDoOptions: the defaults, which 0 also selects for go-dbkit's three options.
func TestDoOptions(t *testing.T) {
	for _, c := range []struct {
		name string
		opts []DoOption
		want doOptions
	}{
		{"defaults", nil, doOptions{lockTTL: time.Minute, periodicExtendInterval: 30 * time.Second,
			releaseTimeout: 5 * time.Second, safetyMargin: 6 * time.Second}},
		{"TTL sets the derived defaults", []DoOption{WithLockTTL(10 * time.Second)}, doOptions{lockTTL: 10 * time.Second,
			periodicExtendInterval: 5 * time.Second, releaseTimeout: 5 * time.Second, safetyMargin: time.Second}},
		{"smallest TTL", []DoOption{WithLockTTL(MinTTL)}, doOptions{lockTTL: MinTTL,
			periodicExtendInterval: MinTTL / 2, releaseTimeout: 5 * time.Second, safetyMargin: MinTTL / 10}},
		{"zero margin is kept", []DoOption{WithSafetyMargin(0)}, doOptions{lockTTL: time.Minute,
			periodicExtendInterval: 30 * time.Second, releaseTimeout: 5 * time.Second, safetyMargin: 0}},
		{"interval just below TTL less margin", []DoOption{WithLockTTL(10 * time.Second), WithSafetyMargin(2 * time.Second),
			WithPeriodicExtendInterval(8*time.Second - 1)}, doOptions{lockTTL: 10 * time.Second,
			periodicExtendInterval: 8*time.Second - 1, releaseTimeout: 5 * time.Second, safetyMargin: 2 * time.Second}},
		{"0 selects the defaults, as in go-dbkit", []DoOption{WithLockTTL(0), WithPeriodicExtendInterval(0),
			WithReleaseTimeout(0)}, doOptions{lockTTL: time.Minute, periodicExtendInterval: 30 * time.Second,
			releaseTimeout: 5 * time.Second, safetyMargin: 6 * time.Second}},
		{"all set", []DoOption{WithLockTTL(time.Hour), WithPeriodicExtendInterval(time.Minute),
			WithReleaseTimeout(time.Second), WithSafetyMargin(5 * time.Minute)}, doOptions{lockTTL: time.Hour,
			periodicExtendInterval: time.Minute, releaseTimeout: time.Second, safetyMargin: 5 * time.Minute}},
	} {
		got, err := newDoOptions(c.opts)
		got.marginSet = false // bookkeeping of whether the option was given; the values are what matter
		if err != nil || got != c.want {
			t.Errorf("%s: got %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
	if DefaultLockTTL != time.Minute || DefaultReleaseTimeout != 5*time.Second || DefaultSafetyMarginDivisor != 10 {
		t.Errorf("defaults changed: TTL %v, release %v, margin TTL/%d", DefaultLockTTL, DefaultReleaseTimeout, DefaultSafetyMarginDivisor)
	}
}

func TestDoOptionsInvalid(t *testing.T) {
	for _, c := range []struct {
		name string
		opts []DoOption
		want error
	}{
		{"TTL negative", []DoOption{WithLockTTL(-time.Second)}, ErrInvalidTTL},
		{"TTL below MinTTL", []DoOption{WithLockTTL(MinTTL - 1)}, ErrInvalidTTL},
		{"TTL above MaxTTL", []DoOption{WithLockTTL(MaxTTL + 1)}, ErrInvalidTTL},
		{"interval negative", []DoOption{WithPeriodicExtendInterval(-time.Second)}, ErrInvalidOption},
		{"interval -1ns", []DoOption{WithPeriodicExtendInterval(-1)}, ErrInvalidOption},
		{"margin equal to TTL", []DoOption{WithSafetyMargin(time.Minute)}, ErrInvalidOption},
		{"margin above TTL", []DoOption{WithSafetyMargin(time.Hour)}, ErrInvalidOption},
		{"margin -1s", []DoOption{WithSafetyMargin(-time.Second)}, ErrInvalidOption},
		{"margin -1ns", []DoOption{WithSafetyMargin(-1)}, ErrInvalidOption},
		{"release timeout negative", []DoOption{WithReleaseTimeout(-time.Second)}, ErrInvalidOption},
		{"least hold negative", []DoOption{WithLockAtLeastFor(-time.Second)}, ErrInvalidOption},
		{"least hold with a static token", []DoOption{WithLockAtLeastFor(time.Minute), WithToken("t")}, ErrInvalidOption},
		{"least hold with a wait", []DoOption{WithLockAtLeastFor(time.Minute), WithWait(time.Second)}, ErrInvalidOption},
	} {
		t.Run(c.name, func(t *testing.T) {
			o, err := newDoOptions(c.opts)
			if !errors.Is(err, c.want) {
				t.Fatalf("newDoOptions returned %+v, %v; want an error matching %q", o, err, c.want)
			}

			// DoExclusively refuses the options before it sends anything or runs fn.
			db, _ := unitMock(t)
			m, err := NewDBManager(DialectPgx)
			if err != nil {
				t.Fatal(err)
			}
			l, err := m.NewLock(context.Background(), db, "job")
			if err != nil {
				t.Fatal(err)
			}
			err = l.DoExclusively(context.Background(), db, func(context.Context) error {
				t.Error("fn ran")
				return nil
			}, c.opts...)
			unitWantErr(t, err, "do exclusively", "job", c.want)
			err = DoExclusively(context.Background(), db, DialectMySQL, "job", func(context.Context) error {
				t.Error("fn ran")
				return nil
			}, c.opts...)
			unitWantErr(t, err, "do exclusively", "job", c.want)
		})
	}
}

// TestDoOptionsIntervalTooLong: an extend interval not shorter than the TTL less the safety margin is
// accepted, as go-dbkit accepted it, and marked for the warning that DoExclusively logs.
func TestDoOptionsIntervalTooLong(t *testing.T) {
	for _, c := range []struct {
		name string
		opts []DoOption
		long bool
	}{
		{"interval just under TTL less default margin", []DoOption{WithLockTTL(10 * time.Second),
			WithPeriodicExtendInterval(9*time.Second - 1)}, false},
		{"interval equal to TTL less default margin", []DoOption{WithLockTTL(10 * time.Second),
			WithPeriodicExtendInterval(9 * time.Second)}, true},
		{"interval equal to TTL less margin", []DoOption{WithLockTTL(10 * time.Second), WithSafetyMargin(2 * time.Second),
			WithPeriodicExtendInterval(8 * time.Second)}, true},
		{"interval equal to TTL", []DoOption{WithPeriodicExtendInterval(time.Minute)}, true},
		{"interval above TTL (go-dbkit's test: TTL 3s, interval 10s)", []DoOption{WithLockTTL(3 * time.Second),
			WithPeriodicExtendInterval(10 * time.Second)}, true},
	} {
		o, err := newDoOptions(c.opts)
		if err != nil || o.intervalTooLong != c.long {
			t.Errorf("%s: newDoOptions = %+v, %v; want no error and intervalTooLong %v", c.name, o, err, c.long)
		}
	}
}

// TestDoExclusivelyInvalidInput: a nil *sql.DB and a bad key are refused before anything is sent.
func TestDoExclusivelyInvalidInput(t *testing.T) {
	db, _ := unitMock(t)
	fn := func(context.Context) error {
		t.Error("fn ran")
		return nil
	}
	f := newUnitFixture(t, DialectSQLite, "")
	unitWantErr(t, f.lock.DoExclusively(context.Background(), nil, fn), "do exclusively", unitKey, ErrNilExecutor)
	unitWantErr(t, DoExclusively(context.Background(), nil, DialectSQLite, "job", fn), "new lock", "job", ErrNilExecutor)
	unitWantErr(t, DoExclusively(context.Background(), db, DialectSQLite, "", fn), "new lock", "", ErrInvalidKey)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	unitWantErr(t, f.lock.DoExclusively(ctx, db, fn), "acquire", unitKey, context.Canceled)
}

// TestDoExclusivelyContextEndedSendsNothing: a context that has ended before DoExclusively is called makes
// it fail before anything is sent, even on a DBLock that holds, or once held, the lock: its acquire sent
// nothing, so there is no outcome to clean up, and releasing under the lock's earlier token would free a
// lock that the caller (or a process sharing its static token) still holds. The logger sees every failed
// release, including the one sqlmock refuses as unexpected.
func TestDoExclusivelyContextEndedSendsNothing(t *testing.T) {
	for _, d := range unitDialects {
		t.Run(string(d), func(t *testing.T) {
			f := newUnitFixture(t, d, "")
			f.hold()
			var logger unitPlainLogger
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			err := f.lock.DoExclusively(ctx, f.db, func(context.Context) error {
				t.Error("fn ran")
				return nil
			}, WithLogger(&logger))
			unitWantErr(t, err, "acquire", unitKey, context.Canceled)
			f.wantState(unitHeldToken, unitHeldFence, unitHeldTTL)
			for _, msg := range logger.messages {
				t.Errorf("DoExclusively sent a statement after its acquire failed without sending one; it logged: %s", msg)
			}
		})
	}
}

// unitPlainLogger is a go-dbkit-style logger: it has only Errorf.
type unitPlainLogger struct{ messages []string }

func (l *unitPlainLogger) Errorf(format string, args ...any) {
	l.messages = append(l.messages, fmt.Sprintf(format, args...))
}

// unitDoWithFailedRelease runs DoExclusively on a PostgreSQL-dialect lock whose release fails with
// errUnitDriver, and returns the lock's token.
func unitDoWithFailedRelease(t *testing.T, logger Logger) string {
	t.Helper()
	f := newUnitFixture(t, DialectPgx, "")
	tok := &unitToken{}
	f.expectAcquire(tok, DefaultLockTTL).granted(1)
	f.mock.ExpectExec(unitQuery(t, DialectPgx, "release", "")).WithArgs(unitReleaseArgs(DialectPgx, unitKey, tok)...).WillReturnError(errUnitDriver)
	ran := false
	err := f.lock.DoExclusively(context.Background(), f.db, func(context.Context) error {
		ran = true
		return nil
	}, WithLogger(logger))
	if err != nil || !ran {
		t.Fatalf("DoExclusively returned %v (fn ran: %v); a failed release is logged, not returned", err, ran)
	}
	if tok.got == "" || f.lock.Token() != tok.got {
		t.Fatalf("token bound %q, lock's token %q", tok.got, f.lock.Token())
	}
	return tok.got
}

// unitDoneFence is the fence unitDoWithFailedRelease's lock gets.
const unitDoneFence = int64(1)

// TestLoggerPlain: a logger with only Errorf gets the key and the fence in the message, never the token.
func TestLoggerPlain(t *testing.T) {
	var logger unitPlainLogger
	token := unitDoWithFailedRelease(t, &logger)
	if len(logger.messages) != 1 {
		t.Fatalf("%d messages logged, want 1: %q", len(logger.messages), logger.messages)
	}
	msg := logger.messages[0]
	for _, want := range []string{`"` + unitKey + `"`, fmt.Sprintf("fence %d", unitDoneFence), "release failed", errUnitDriver.Error()} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not contain %q", msg, want)
		}
	}
	if strings.Contains(msg, token) {
		t.Errorf("message %q carries the token", msg)
	}
}

// TestLoggerNone: without WithLogger (or with a nil one) a failed release is silent.
func TestLoggerNone(t *testing.T) {
	unitDoWithFailedRelease(t, nil)
}

// TestDoExclusivelyAcquireAndRelease: with a lock that is free, DoExclusively sends exactly the acquire
// and the release, in autocommit, around fn, which sees the new fence.
func TestDoExclusivelyAcquireAndRelease(t *testing.T) {
	for _, d := range unitDialects {
		t.Run(string(d), func(t *testing.T) {
			f := newUnitFixture(t, d, "")
			tok := &unitToken{}
			f.expectAcquire(tok, 20*time.Second).granted(4)
			f.mock.ExpectExec(unitQuery(t, d, "release", "")).WithArgs(unitReleaseArgs(d, unitKey, tok)...).WillReturnResult(sqlmock.NewResult(0, 1))
			var fence int64
			err := f.lock.DoExclusively(context.Background(), f.db, func(ctx context.Context) error {
				fence = f.lock.Fence()
				return ctx.Err()
			}, WithLockTTL(20*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if fence != 4 {
				t.Errorf("fn saw fence %d, want 4", fence)
			}
		})
	}
}

// TestAcquireWaitRefusesTransaction: waiting inside a transaction would keep the key's row locked and so
// block the holder it waits for; AcquireWait refuses it without sending anything.
func TestAcquireWaitRefusesTransaction(t *testing.T) {
	db, mock, err := sqlmock.New(sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mock.ExpectBegin()
	mock.ExpectRollback()
	m, _ := NewDBManager(DialectPgx)
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := m.NewLock(ctx, tx, "job")
	err = l.AcquireWait(ctx, tx, time.Minute, time.Second)
	if !errors.Is(err, ErrInvalidOption) || !strings.HasPrefix(err.Error(), `distrlock: acquire wait "job": `) {
		t.Errorf("AcquireWait in a transaction: %v", err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Error(err)
	}
}
