package distrlock

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"flag"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
)

// unitUpdate rewrites the golden files under testdata/golden from what the code renders:
//
//	go test -run TestSchemaGolden -update .
//
// Review the diff before committing it: the golden files are the reviewed SQL for custom table names.
var unitUpdate = flag.Bool("update", false, "rewrite testdata/golden from the SQL the code renders")

// unitGoldenTables are the custom table names whose rendering is kept under testdata/golden.
var unitGoldenTables = []string{"my_locks", "app.my_locks"}

// unitQueryNames are the files of schema/<dialect>/queries that every dialect has, one statement each.
var unitQueryNames = []string{"create_table", "drop_table", "acquire", "extend", "extend_batch", "release", "get", "list", "peek", "enqueue", "dequeue", "proclaim", "guard"}

// unitQueryNamesFor adds the queries a dialect has of its own: on MySQL which locks a batched extend left
// held, the acquire sent in a caller's transaction and the prefix of a manager WithGalera (which names no
// table); on PostgreSQL the release and the proclaim that notify and the one-statement prune, where the
// others have three.
func unitQueryNamesFor(d Dialect) []string {
	prune := []string{"prune_scan", "prune_floor", "prune_delete"}
	switch {
	case unitIsMySQL(d):
		return append(slices.Concat(unitQueryNames, prune), "extend_batch_held", "acquire_in_tx", "sync_wait")
	case d == DialectPostgres || d == DialectPgx:
		return append(slices.Clone(unitQueryNames), "release_notify", "proclaim_notify", "prune")
	}
	return slices.Concat(unitQueryNames, prune)
}

// unitCall is one statement an SQLExecutor received.
type unitCall struct {
	query string
	args  []any
}

// unitRecorder passes every statement on to exec and records it with its arguments.
type unitRecorder struct {
	exec  SQLExecutor
	calls []unitCall
}

func (r *unitRecorder) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	r.calls = append(r.calls, unitCall{query, args})
	return r.exec.ExecContext(ctx, query, args...)
}

func (r *unitRecorder) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	r.calls = append(r.calls, unitCall{query, args})
	return r.exec.QueryRowContext(ctx, query, args...)
}

// The values the recorded statements bind, distinct so that each bound value names its role.
const (
	unitRecKey     = "the-key"
	unitRecToken   = "the-token"
	unitRecTTL     = 1234567 * time.Microsecond
	unitRecTicket  = int64(42)
	unitRecGrace   = 2345678 * time.Microsecond
	unitRecHold    = 3456789 * time.Microsecond
	unitRecChannel = "the_channel"
)

// unitNotifier is a Notifier that only names its channel.
type unitNotifier struct{}

func (unitNotifier) Channel() string                            { return unitRecChannel }
func (unitNotifier) Subscribe(string) (<-chan struct{}, func()) { return nil, func() {} }
func (unitNotifier) Listening() bool                            { return false }

// unitArgConverter is sqlmock's value converter that also records, in order, every value a statement
// binds: the statements sent on a *sql.Tx, which a unitRecorder cannot stand in for.
type unitArgConverter struct{ values []any }

func (c *unitArgConverter) ConvertValue(v any) (driver.Value, error) {
	dv, err := driver.DefaultParameterConverter.ConvertValue(v)
	c.values = append(c.values, dv)
	return dv, err
}

// unitExpectAcquire expects acquire.sql for table and answers that it took the lock with fence 1.
func unitExpectAcquire(t *testing.T, mock sqlmock.Sqlmock, d Dialect, table string) {
	t.Helper()
	if unitIsMySQL(d) {
		mock.ExpectExec(unitQuery(t, d, "acquire", table)).WillReturnResult(sqlmock.NewResult(0, 1))
	} else {
		mock.ExpectQuery(unitQuery(t, d, "acquire", table)).WillReturnRows(sqlmock.NewRows([]string{"fence"}).AddRow(int64(1)))
	}
}

// unitRecordStatements runs a waiter's acquire (with a ticket and a grace), extend, release (with a least
// hold), enqueue and guard on a manager for table ("" is the default), and on MySQL an acquire in a caller's
// transaction, on PostgreSQL a release through a manager with a notifier. It returns the statements as the
// executor received them, by the name of their file. sqlmock accepts any arguments here but only the text
// of the schema files.
func unitRecordStatements(t *testing.T, d Dialect, table string) map[string]unitCall {
	t.Helper()
	db, mock := unitMock(t)
	m, err := NewDBManager(d, WithTableName(table))
	if err != nil {
		t.Fatal(err)
	}
	unitExpectAcquire(t, mock, d, table)
	mock.ExpectExec(unitQuery(t, d, "extend", table)).WillReturnResult(sqlmock.NewResult(1, 1))
	mock.ExpectExec(unitQuery(t, d, "release", table)).WillReturnResult(sqlmock.NewResult(0, 1))
	if unitIsMySQL(d) {
		mock.ExpectExec(unitQuery(t, d, "enqueue", table)).WillReturnResult(sqlmock.NewResult(unitRecTicket, 1))
	} else {
		mock.ExpectQuery(unitQuery(t, d, "enqueue", table)).WillReturnRows(sqlmock.NewRows([]string{"queue_tail"}).AddRow(unitRecTicket))
	}
	mock.ExpectQuery(unitQuery(t, d, "guard", table)).WillReturnRows(sqlmock.NewRows([]string{"fence"}).AddRow(int64(1)))

	rec := &unitRecorder{exec: db}
	ctx := context.Background()
	l, err := m.NewLock(ctx, rec, unitRecKey)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.calls) != 0 {
		t.Fatalf("NewLock sent %d statements", len(rec.calls))
	}
	if _, err := l.acquireTicket(ctx, rec, "acquire", unitRecToken, unitRecTTL, unitRecTicket, unitRecGrace); err != nil {
		t.Fatal(err)
	}
	if err := l.Extend(ctx, rec); err != nil {
		t.Fatal(err)
	}
	l.minHold = unitRecHold
	if err := l.Release(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if ticket, err := m.spec.enqueue(ctx, rec, m.q.enqueue, unitRecKey); err != nil || ticket != unitRecTicket {
		t.Fatalf("enqueue: ticket %d, %v", ticket, err)
	}
	// The executor stands in for a transaction: Guard refuses only a *sql.DB.
	if err := l.Guard(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if len(rec.calls) != 5 {
		t.Fatalf("acquire, extend, release, enqueue and guard sent %d statements, want 5", len(rec.calls))
	}
	calls := map[string]unitCall{"acquire": rec.calls[0], "extend": rec.calls[1], "release": rec.calls[2], "enqueue": rec.calls[3], "guard": rec.calls[4]}

	switch {
	case unitIsMySQL(d):
		conv := &unitArgConverter{}
		txDB, txMock, err := sqlmock.New(sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual), sqlmock.ValueConverterOption(conv))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := txMock.ExpectationsWereMet(); err != nil {
				t.Error(err)
			}
			_ = txDB.Close()
		})
		query := unitQuery(t, d, "acquire_in_tx", table)
		txMock.ExpectBegin()
		txMock.ExpectExec(query).WillReturnResult(sqlmock.NewResult(0, 1))
		txMock.ExpectCommit()
		tx, err := txDB.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		txLock, err := m.NewLock(ctx, tx, unitRecKey)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := txLock.acquireTicket(ctx, tx, "acquire", unitRecToken, unitRecTTL, unitRecTicket, unitRecGrace); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		// sqlmock matched the text exactly, so the query is the file's.
		calls["acquire_in_tx"] = unitCall{query: query, args: slices.Clone(conv.values)}
	case unitDir(t, d) == "postgres":
		nm, err := NewDBManager(d, WithTableName(table), WithNotifier(unitNotifier{}))
		if err != nil {
			t.Fatal(err)
		}
		unitExpectAcquire(t, mock, d, table)
		mock.ExpectQuery(unitQuery(t, d, "release_notify", table)).WillReturnRows(sqlmock.NewRows([]string{"notified", "queued"}).AddRow(nil, false))
		nl, err := nm.NewLock(ctx, rec, unitRecKey)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nl.acquireTicket(ctx, rec, "acquire", unitRecToken, unitRecTTL, unitRecTicket, unitRecGrace); err != nil {
			t.Fatal(err)
		}
		// announce is the only value bound true here (rec is not a *sql.DB, so autocommit is false).
		nl.minHold, nl.announce = unitRecHold, true
		if err := nl.Release(ctx, rec); err != nil {
			t.Fatal(err)
		}
		if len(rec.calls) != 7 {
			t.Fatalf("acquire and release with a notifier sent %d statements, want 2", len(rec.calls)-5)
		}
		calls["release_notify"] = rec.calls[6]
	}
	return calls
}

// TestSchemaEmbeddedEqualsDisk: the embedded schema is the schema/ folder, file for file and byte for byte.
func TestSchemaEmbeddedEqualsDisk(t *testing.T) {
	read := func(fsys fs.FS) map[string]string {
		files := map[string]string{}
		err := fs.WalkDir(fsys, "schema", func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			b, err := fs.ReadFile(fsys, p)
			files[p] = string(b)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return files
	}
	embedded, disk := read(schemaFS), read(os.DirFS("."))
	for p, text := range disk {
		if e, ok := embedded[p]; !ok {
			t.Errorf("%s is not embedded", p)
		} else if e != text {
			t.Errorf("embedded %s differs from the file", p)
		}
	}
	for p := range embedded {
		if _, ok := disk[p]; !ok {
			t.Errorf("embedded %s has no file", p)
		}
	}
	if len(disk) == 0 {
		t.Fatal("no schema files found")
	}
}

// TestSchemaDefaultTableRunsFiles: with the default table, the code runs the files of schema/ byte for
// byte: the DDL it returns and every statement it sends.
func TestSchemaDefaultTableRunsFiles(t *testing.T) {
	for _, d := range unitDialects {
		t.Run(string(d), func(t *testing.T) {
			m, err := NewDBManager(d)
			if err != nil {
				t.Fatal(err)
			}
			for name, got := range map[string]string{"create_table": m.CreateTableSQL(), "drop_table": m.DropTableSQL()} {
				if want := unitFile(t, d, "queries/"+name+".sql"); got != want {
					t.Errorf("%s: the manager returns\n%s\nthe file holds\n%s", name, got, want)
				}
			}
			for name, call := range unitRecordStatements(t, d, "") {
				if want := unitFile(t, d, "queries/"+name+".sql"); call.query != want {
					t.Errorf("%s: the code sent\n%s\nthe file holds\n%s", name, call.query, want)
				}
			}
		})
	}
}

// unitGoldenPath is where the rendering of one file for one table is kept.
func unitGoldenPath(t testing.TB, d Dialect, table string, parts ...string) string {
	return filepath.Join(append([]string{"testdata", "golden", unitDir(t, d), table}, parts...)...)
}

// unitCheckGolden compares got with the golden file, or rewrites the file under -update.
func unitCheckGolden(t *testing.T, file, got string) {
	t.Helper()
	if *unitUpdate {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run `go test -run TestSchemaGolden -update .` and review the new file)", err)
	}
	if got != string(want) {
		t.Errorf("the code renders, for %s:\n%s\nthe golden file holds:\n%s\n(if the change is intended, run `go test -run TestSchemaGolden -update .`)",
			file, got, want)
	}
}

// unitJoinStatements is the golden form of a migration step: its statements, separated by blank lines.
func unitJoinStatements(stmts []string) string { return strings.Join(stmts, "\n\n") + "\n" }

// TestSchemaGolden: for custom table names, the DDL, the statements the code sends and the migrations
// equal the reviewed golden files under testdata/golden/<dialect>/<table>/; they also equal the schema
// files with the quoted table name replaced, and name no other table.
func TestSchemaGolden(t *testing.T) {
	for _, d := range unitDialects {
		for _, table := range unitGoldenTables {
			t.Run(string(d)+"/"+table, func(t *testing.T) {
				m, err := NewDBManager(d, WithTableName(table))
				if err != nil {
					t.Fatal(err)
				}
				rendered := map[string]string{"create_table": m.CreateTableSQL(), "drop_table": m.DropTableSQL(),
					"get": m.q.get, "list": m.q.list, "peek": m.q.peek, "dequeue": m.q.dequeue, "proclaim": m.q.proclaim, "proclaim_notify": m.q.proclaimNotify, "extend_batch": m.q.extendBatch, "extend_batch_held": m.q.extendBatchHeld,
					"sync_wait": m.q.syncWait,
					"prune":     m.q.prune, "prune_scan": m.q.pruneScan, "prune_floor": m.q.pruneFloor, "prune_delete": m.q.pruneDelete}
				// The dialects without a file of their own send acquire.sql in a transaction, and have no
				// release or proclaim that notifies.
				if !unitIsMySQL(d) && m.q.acquireInTx != m.q.acquire {
					t.Errorf("acquire in a transaction:\n%s\nwant acquire.sql", m.q.acquireInTx)
				}
				if unitDir(t, d) != "postgres" && (m.q.releaseNotify != "" || m.q.proclaimNotify != "") {
					t.Errorf("%s has a release or a proclaim that notifies:\n%s\n%s", d, m.q.releaseNotify, m.q.proclaimNotify)
				}
				for name, call := range unitRecordStatements(t, d, table) {
					rendered[name] = call.query
				}
				for _, name := range unitQueryNamesFor(d) {
					got := rendered[name]
					unitCheckGolden(t, unitGoldenPath(t, d, table, "queries", name+".sql"), got)
					if want := unitQuery(t, d, name, table); got != want {
						t.Errorf("%s: the code renders\n%s\nreplacing the table name in the file gives\n%s", name, got, want)
					}
					if name != "sync_wait" {
						unitWantOnlyTable(t, d, table, name, got)
					}
				}
				for _, mig := range m.Migrations() {
					for dir, stmts := range map[string][]string{"up": mig.UpSQL(), "down": mig.DownSQL()} {
						got := unitJoinStatements(stmts)
						unitCheckGolden(t, unitGoldenPath(t, d, table, "migrations", mig.ID()+"."+dir+".sql"), got)
						unitWantOnlyTable(t, d, table, mig.ID()+"."+dir, got)
					}
				}
			})
		}
	}
}

// unitWantOnlyTable fails if text does not name the quoted table or still names the default table.
func unitWantOnlyTable(t *testing.T, d Dialect, table, name, text string) {
	t.Helper()
	if !strings.Contains(text, unitQuote(d, table)) {
		t.Errorf("%s does not name %s:\n%s", name, unitQuote(d, table), text)
	}
	if strings.Contains(text, DefaultTableName) {
		t.Errorf("%s still names %s:\n%s", name, DefaultTableName, text)
	}
}

// TestSchemaGoldenComplete: every golden file is produced by TestSchemaGolden, so none is stale.
func TestSchemaGoldenComplete(t *testing.T) {
	want := map[string]bool{}
	for _, d := range unitDialects {
		for _, table := range unitGoldenTables {
			m, err := NewDBManager(d, WithTableName(table))
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range unitQueryNamesFor(d) {
				want[unitGoldenPath(t, d, table, "queries", name+".sql")] = true
			}
			for _, mig := range m.Migrations() {
				want[unitGoldenPath(t, d, table, "migrations", mig.ID()+".up.sql")] = true
				want[unitGoldenPath(t, d, table, "migrations", mig.ID()+".down.sql")] = true
			}
		}
	}
	n := 0
	err := filepath.WalkDir(filepath.Join("testdata", "golden"), func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		n++
		if !want[p] {
			t.Errorf("stale golden file %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != len(want) {
		t.Errorf("%d golden files, want %d", n, len(want))
	}
}

// unitSplitSQL separates SQL text into its code, with comments, string literals and quoted identifiers
// blanked out (so positions hold), and those skipped parts. MySQL strings may also use backslash escapes.
func unitSplitSQL(d Dialect, text string) (code, skipped string) {
	c := []byte(text)
	var sk strings.Builder
	blank := func(from, to int) {
		sk.WriteString(text[from:to])
		sk.WriteByte('\n')
		for i := from; i < to; i++ {
			if c[i] != '\n' {
				c[i] = ' '
			}
		}
	}
	for i := 0; i < len(text); {
		switch {
		case strings.HasPrefix(text[i:], "--"):
			end := strings.IndexByte(text[i:], '\n')
			if end < 0 {
				end = len(text) - i
			}
			blank(i, i+end)
			i += end
		case strings.HasPrefix(text[i:], "/*"):
			end := strings.Index(text[i+2:], "*/")
			if end < 0 {
				end = len(text) - i - 4
			}
			blank(i, i+end+4)
			i += end + 4
		case text[i] == '\'' || text[i] == '"' || text[i] == '`':
			q := text[i]
			j := i + 1
			for j < len(text) {
				if unitIsMySQL(d) && q != '`' && text[j] == '\\' {
					j += 2
					continue
				}
				if text[j] == q {
					if j+1 < len(text) && text[j+1] == q { // doubled quote
						j += 2
						continue
					}
					break
				}
				j++
			}
			blank(i, min(j+1, len(text)))
			i = j + 1
		default:
			i++
		}
	}
	return string(c), sk.String()
}

// unitPlaceholder is one placeholder in a statement's code: where it is and which bound value (0-based)
// it reads.
type unitPlaceholder struct {
	pos, end int
	index    int
}

var (
	unitPostgresPlaceholder = regexp.MustCompile(`\$(\d+)`)
	unitSQLitePlaceholder   = regexp.MustCompile(`\?(\d*)`)
)

// unitPlaceholders finds the placeholders of a statement and checks they are well formed: MySQL has only
// `?`; PostgreSQL `$N` and SQLite `?N` number 1 to their maximum without gaps. None may appear in comments
// or quoted text, where a driver that counts them (go-sql-driver's interpolateParams) would go wrong.
// It returns the placeholders and the number of values the statement binds.
func unitPlaceholders(t *testing.T, d Dialect, name, text string) ([]unitPlaceholder, int) {
	t.Helper()
	code, skipped := unitSplitSQL(d, text)
	var phs []unitPlaceholder
	switch unitDir(t, d) {
	case "mysql":
		if strings.Contains(skipped, "?") {
			t.Errorf("%s: a ? in a comment or quoted text:\n%s", name, skipped)
		}
		for i := 0; i < len(code); i++ {
			if code[i] == '?' {
				phs = append(phs, unitPlaceholder{pos: i, end: i + 1, index: len(phs)})
			}
		}
		return phs, len(phs)
	case "postgres":
		if unitPostgresPlaceholder.MatchString(skipped) {
			t.Errorf("%s: a $N in a comment or quoted text:\n%s", name, skipped)
		}
		if strings.Contains(code, "?") {
			t.Errorf("%s: a ? in PostgreSQL code", name)
		}
		for _, m := range unitPostgresPlaceholder.FindAllStringSubmatchIndex(code, -1) {
			n, _ := strconv.Atoi(code[m[2]:m[3]])
			phs = append(phs, unitPlaceholder{pos: m[0], end: m[1], index: n - 1})
		}
	default:
		if strings.Contains(skipped, "?") {
			t.Errorf("%s: a ? in a comment or quoted text:\n%s", name, skipped)
		}
		for _, m := range unitSQLitePlaceholder.FindAllStringSubmatchIndex(code, -1) {
			if m[2] == m[3] {
				t.Errorf("%s: a bare ? at byte %d; SQLite statements number theirs", name, m[0])
				continue
			}
			n, _ := strconv.Atoi(code[m[2]:m[3]])
			phs = append(phs, unitPlaceholder{pos: m[0], end: m[1], index: n - 1})
		}
	}
	used := map[int]bool{}
	maxN := 0
	for _, p := range phs {
		used[p.index] = true
		maxN = max(maxN, p.index+1)
	}
	for i := range maxN {
		if !used[i] {
			t.Errorf("%s: placeholder %d of %d is never used", name, i+1, maxN)
		}
	}
	if slices.ContainsFunc(phs, func(p unitPlaceholder) bool { return p.index < 0 }) {
		t.Errorf("%s: a placeholder numbered 0", name)
	}
	return phs, maxN
}

// TestSchemaPlaceholderCounts: every statement binds exactly as many values as its file has placeholders,
// and the DDL and migrations have none.
func TestSchemaPlaceholderCounts(t *testing.T) {
	for _, d := range unitDialects {
		t.Run(string(d), func(t *testing.T) {
			for name, call := range unitRecordStatements(t, d, "") {
				_, n := unitPlaceholders(t, d, name, unitFile(t, d, "queries/"+name+".sql"))
				if n != len(call.args) {
					t.Errorf("%s.sql has %d placeholders; the code binds %d values", name, n, len(call.args))
				}
				if n == 0 {
					t.Errorf("%s.sql has no placeholder", name)
				}
			}
			for _, name := range []string{"create_table", "drop_table"} {
				if _, n := unitPlaceholders(t, d, name, unitFile(t, d, "queries/"+name+".sql")); n != 0 {
					t.Errorf("%s.sql has %d placeholders", name, n)
				}
			}
			m, err := NewDBManager(d)
			if err != nil {
				t.Fatal(err)
			}
			for _, mig := range m.Migrations() {
				for _, stmt := range append(mig.UpSQL(), mig.DownSQL()...) {
					if _, n := unitPlaceholders(t, d, mig.ID(), stmt); n != 0 {
						t.Errorf("%s has %d placeholders in\n%s", mig.ID(), n, stmt)
					}
				}
			}
		})
	}
	// The MySQL acquires' counts, spelled out: acquire_in_tx.sql is acquire.sql without the gate's 5 and the
	// key of the locking read before the floor.
	for name, want := range map[string]int{"acquire": 27, "acquire_in_tx": 21} {
		if _, n := unitPlaceholders(t, DialectMySQL, name, unitFile(t, DialectMySQL, "queries/"+name+".sql")); n != want {
			t.Errorf("schema/mysql/queries/%s.sql has %d placeholders, want %d", name, n, want)
		}
	}
}

// unitColumnRoles are the values a placeholder stands for, by the column it is compared with or written to.
var unitColumnRoles = map[string]string{
	"lock_key": "key", "token": "token", "expire_at": "ttl", "ttl_us": "ttl", "owner": "owner", "data": "data",
}

var (
	unitInsertInto = regexp.MustCompile(`(?i)\bINSERT\s+INTO\b`)
	// unitInsertedRow starts the inserted row after the column list: a VALUES tuple or a SELECT list.
	unitInsertedRow  = regexp.MustCompile(`(?i)^\s*(?:VALUES\s*\(|SELECT\b)`)
	unitRowEnd       = regexp.MustCompile(`(?i)^(?:FROM|WHERE)\b`)
	unitComparedWith = regexp.MustCompile(`(?i)(\w+)\s*(?:=|<=>|\bIS\s+DISTINCT\s+FROM|\bIS\s+NOT)\s*$`)
	unitAssignment   = regexp.MustCompile(`(?mi)^\s*(?:SET\s+)?(\w+)\s*=`)
	// The values no column holds, by the expression around them: the queue position's multiplier is the
	// hand-over grace; a ticket is tested > 0, counted from queue_head or raised to it; a least hold is
	// added to acquired_at; a channel is pg_notify's.
	unitGraceAfter    = regexp.MustCompile(`(?i)^(?:::bigint)?\s*\*\s*(?:CASE|IF)\b`)
	unitTicketAfter   = regexp.MustCompile(`(?i)^(?:::bigint)?\s*(?:>\s*0\b|-\s*(?:\w+\.)?queue_head\b)`)
	unitTicketBefore  = regexp.MustCompile(`(?i)\b(?:GREATEST|MAX)\(\s*(?:\w+\.)?queue_head\s*,\s*$`)
	unitHoldBefore    = regexp.MustCompile(`(?i)\bacquired_at\s*\+\s*$`)
	unitChannelBefore = regexp.MustCompile(`(?i)\bpg_notify\(\s*$`)
	// autocommit turns asynchronous commit on: `$n::boolean IS NOT TRUE OR set_config(…)`.
	unitAutocommitAfter = regexp.MustCompile(`(?i)^::boolean\s+IS\s+NOT\s+TRUE\s+OR\s+set_config\(`)
	// announce makes a release notify when no ticket waits: `queue_tail > queue_head OR $n::boolean`.
	unitAnnounceBefore = regexp.MustCompile(`(?i)\bqueue_tail\s*>\s*queue_head\s+OR\s+$`)
)

// unitClosing returns the index of the parenthesis that closes the one at open.
func unitClosing(code string, open int) int {
	depth := 0
	for i := open; i < len(code); i++ {
		switch code[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// unitInsertedItems returns the byte ranges of the items of an INSERT's row, whether a VALUES tuple or the
// list of an INSERT … SELECT (which ends at its FROM or WHERE), with the inserted columns; none without an
// INSERT.
func unitInsertedItems(t *testing.T, name, code string) (columns []string, items [][2]int) {
	t.Helper()
	ins := unitInsertInto.FindStringIndex(code)
	if ins == nil {
		return nil, nil
	}
	open := ins[1] + strings.IndexByte(code[ins[1]:], '(')
	closing := unitClosing(code, open)
	for _, c := range strings.Split(code[open+1:closing], ",") {
		columns = append(columns, strings.TrimSpace(c))
	}
	row := unitInsertedRow.FindStringIndex(code[closing+1:])
	if row == nil {
		t.Fatalf("%s: the column list is followed by neither VALUES nor SELECT", name)
	}
	from, end := closing+1+row[1], len(code)
	if strings.HasSuffix(code[:from], "(") { // VALUES (…)
		end = unitClosing(code, from-1)
	}
	depth := 0
	for i := from; i < end; i++ {
		switch code[i] {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				items = append(items, [2]int{from, i})
				from = i + 1
			}
		default:
			if depth == 0 && unitRowEnd.MatchString(code[i:]) && (i == 0 || !unitIsWordByte(code[i-1])) {
				end = i
			}
		}
	}
	items = append(items, [2]int{from, end})
	if len(items) != len(columns) {
		t.Fatalf("%s: %d columns but %d values", name, len(columns), len(items))
	}
	return columns, items
}

func unitIsWordByte(b byte) bool {
	return b == '_' || b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
}

// unitPlaceholderRoles reads from the SQL alone which value each bound position stands for: a placeholder
// in the inserted row stands for its column's value, unless compared with another column there; elsewhere one right after `column =` (or `<=>`, `IS
// DISTINCT FROM`, `IS NOT`) for that column's value; one that no column holds for the ticket, grace, least
// hold or channel its expression shows; and any other for the value of the column its line assigns
// (`expire_at = … + ?`).
func unitPlaceholderRoles(t *testing.T, d Dialect, name, text string) []string {
	t.Helper()
	code, _ := unitSplitSQL(d, text)
	phs, n := unitPlaceholders(t, d, name, text)
	roles := make([]string, n)
	set := func(p unitPlaceholder, role string) {
		if roles[p.index] != "" && roles[p.index] != role {
			t.Errorf("%s: bound value %d is both %s and %s", name, p.index+1, roles[p.index], role)
		}
		roles[p.index] = role
	}
	setColumn := func(p unitPlaceholder, col string) {
		role, ok := unitColumnRoles[col]
		if !ok {
			t.Errorf("%s: placeholder at byte %d belongs to column %q, which binds no value", name, p.pos, col)
			return
		}
		set(p, role)
	}

	columns, items := unitInsertedItems(t, name, code)
placeholders:
	for _, p := range phs {
		for i, it := range items {
			if p.pos >= it[0] && p.pos < it[1] {
				// A value compared within the row's expression (MySQL's fence asks whether the key has a
				// row) is the compared column's.
				if m := unitComparedWith.FindStringSubmatch(code[it[0]:p.pos]); m != nil {
					setColumn(p, m[1])
				} else {
					setColumn(p, columns[i])
				}
				continue placeholders
			}
		}
		before, after := code[:p.pos], code[p.end:]
		switch m := unitComparedWith.FindStringSubmatch(before); {
		case m != nil:
			setColumn(p, m[1])
		case unitGraceAfter.MatchString(after):
			set(p, "grace")
		case unitTicketAfter.MatchString(after), unitTicketBefore.MatchString(before):
			set(p, "ticket")
		case unitHoldBefore.MatchString(before):
			set(p, "hold")
		case unitAutocommitAfter.MatchString(after):
			set(p, "autocommit")
		case unitChannelBefore.MatchString(before):
			set(p, "channel")
		case unitAnnounceBefore.MatchString(before):
			set(p, "announce")
		default:
			all := unitAssignment.FindAllStringSubmatch(before, -1)
			if len(all) == 0 {
				t.Errorf("%s: cannot tell what the placeholder at byte %d stands for", name, p.pos)
				continue
			}
			setColumn(p, all[len(all)-1][1])
		}
	}
	return roles
}

// TestSchemaPlaceholderRoles: the values the code binds are in the order the files' placeholders expect:
// the roles read from each file equal the documented order, and the values recorded from the code, mapped
// back to their roles, equal those read from the file. Owner and data are both NULL as the code never
// binds them, so between themselves their order is checked against the file only.
func TestSchemaPlaceholderRoles(t *testing.T) {
	documented := map[string][]string{
		"postgres/acquire":        {"key", "token", "ttl", "owner", "data", "ticket", "grace"},
		"postgres/extend":         {"ttl", "key", "token"},
		"postgres/release":        {"key", "token", "hold", "autocommit"},
		"postgres/release_notify": {"key", "token", "hold", "autocommit", "channel", "announce"},
		"postgres/enqueue":        {"key", "autocommit"},
		"postgres/guard":          {"key", "token"},
		"mysql/acquire":           unitMySQLAcquireRoles,
		"mysql/acquire_in_tx": {
			"key", "token", "ttl", "ttl", "owner", "data", // the inserted row; no gate
			"token", "token", "token", "token", "token", "ttl", "token", "owner", "token", "data", "token",
			"ticket", "ticket", // queue_head
			"token", "ttl", // expire_at
		},
		"mysql/extend":   {"ttl", "ttl", "key", "token"},
		"mysql/release":  {"hold", "hold", "key", "token"},
		"mysql/enqueue":  {"key"},
		"mysql/guard":    {"key", "token"},
		"sqlite/acquire": {"key", "token", "ttl", "owner", "data", "ticket", "grace"},
		"sqlite/extend":  {"ttl", "key", "token"},
		"sqlite/release": {"key", "token", "hold"},
		"sqlite/enqueue": {"key"},
		"sqlite/guard":   {"key", "token"},
	}
	seen := map[string]bool{}
	for _, d := range unitDialects {
		t.Run(string(d), func(t *testing.T) {
			for name, call := range unitRecordStatements(t, d, "") {
				fromFile := unitPlaceholderRoles(t, d, name, unitFile(t, d, "queries/"+name+".sql"))
				seen[unitDir(t, d)+"/"+name] = true
				if want := documented[unitDir(t, d)+"/"+name]; !slices.Equal(fromFile, want) {
					t.Errorf("%s.sql binds\n%q\nwant\n%q", name, fromFile, want)
				}
				var fromCode, fileNull []string
				for _, a := range call.args {
					switch a {
					case unitRecKey:
						fromCode = append(fromCode, "key")
					case unitRecToken:
						fromCode = append(fromCode, "token")
					case unitRecTTL.Microseconds():
						fromCode = append(fromCode, "ttl")
					case unitRecTicket:
						fromCode = append(fromCode, "ticket")
					case unitRecGrace.Microseconds():
						fromCode = append(fromCode, "grace")
					case unitRecHold.Microseconds():
						fromCode = append(fromCode, "hold")
					case unitRecChannel:
						fromCode = append(fromCode, "channel")
					case false:
						fromCode = append(fromCode, "autocommit")
					case true:
						fromCode = append(fromCode, "announce")
					case nil:
						fromCode = append(fromCode, "NULL")
					default:
						fromCode = append(fromCode, "?")
					}
				}
				for _, r := range fromFile {
					if r == "owner" || r == "data" {
						r = "NULL"
					}
					fileNull = append(fileNull, r)
				}
				if !slices.Equal(fromCode, fileNull) {
					t.Errorf("%s: the code binds\n%q\nthe file expects\n%q", name, fromCode, fileNull)
				}
			}
		})
	}
	for name := range documented {
		if !seen[name] {
			t.Errorf("the code never sent %s.sql", name)
		}
	}
}

// TestPlaceholderReader checks the test's own SQL reader on statements with traps.
func TestPlaceholderReader(t *testing.T) {
	code, skipped := unitSplitSQL(DialectMySQL, "SELECT '?', \"?\", `?`, 'it''s \\' ?' -- ?\n/* ? */ ?")
	if strings.Count(code, "?") != 1 || strings.Count(skipped, "?") != 6 {
		t.Errorf("code %q, skipped %q", code, skipped)
	}
	roles := unitPlaceholderRoles(t, DialectPostgres, "test",
		"INSERT INTO t (lock_key, ttl_us) VALUES ($2, f($1, 1))\nON CONFLICT DO UPDATE\nSET token = $3,\n    expire_at = g($1)")
	if want := []string{"ttl", "key", "token"}; !slices.Equal(roles, want) {
		t.Errorf("roles %q, want %q", roles, want)
	}
	roles = unitPlaceholderRoles(t, DialectSQLite, "test",
		"INSERT INTO t (lock_key, ttl_us) SELECT ?2, f(?1, 'WHERE') WHERE NOT EXISTS (SELECT 1 FROM t\n"+
			"WHERE token IS NOT ?3 AND x + ?4 * CASE WHEN ?5 > 0 THEN MAX(?5 - queue_head, 0) END)\n"+
			"ON CONFLICT DO UPDATE SET queue_head = MAX(queue_head, ?5), expire_at = acquired_at + ?6")
	if want := []string{"ttl", "key", "token", "grace", "ticket", "hold"}; !slices.Equal(roles, want) {
		t.Errorf("roles %q, want %q", roles, want)
	}
}

// TestPackageDDLFunctions: the package-level CreateTableSQL and DropTableSQL equal a default manager's.
func TestPackageDDLFunctions(t *testing.T) {
	for _, d := range unitDialects {
		m, err := NewDBManager(d)
		if err != nil {
			t.Fatal(err)
		}
		create, err := CreateTableSQL(d)
		if err != nil || create != m.CreateTableSQL() {
			t.Errorf("%s: CreateTableSQL = %q, %v; want the manager's", d, create, err)
		}
		drop, err := DropTableSQL(d)
		if err != nil || drop != m.DropTableSQL() {
			t.Errorf("%s: DropTableSQL = %q, %v; want the manager's", d, drop, err)
		}
	}
}

// TestSchemaFirstMigrationIsDBkit: migration 1 is exactly the table go-dbkit creates, so that its
// migration ID can be shared with databases where go-dbkit already ran it.
func TestSchemaFirstMigrationIsDBkit(t *testing.T) {
	for _, c := range []struct {
		dialects []Dialect
		ddl      string
	}{
		{[]Dialect{DialectPostgres, DialectPgx},
			`CREATE TABLE IF NOT EXISTS "distributed_locks" (lock_key varchar(40) PRIMARY KEY, token uuid, expire_at timestamp);`},
		{[]Dialect{DialectMySQL, DialectMariaDB},
			"CREATE TABLE IF NOT EXISTS `distributed_locks` (lock_key VARCHAR(40) PRIMARY KEY, token VARCHAR(36), expire_at BIGINT);"},
	} {
		for _, d := range c.dialects {
			if got := unitFile(t, d, "000001_create_table.up.sql"); got != c.ddl+"\n" {
				t.Errorf("%s: 000001_create_table.up.sql is\n%q\nwant go-dbkit's\n%q", d, got, c.ddl+"\n")
			}
			m, err := NewDBManager(d)
			if err != nil {
				t.Fatal(err)
			}
			first := m.Migrations()[0]
			if first.ID() != "distrlock_00001_create_table" || !slices.Equal(first.UpSQL(), []string{c.ddl}) {
				t.Errorf("%s: migration 1 is %s %q, want distrlock_00001_create_table %q", d, first.ID(), first.UpSQL(), c.ddl)
			}
		}
	}
}

// TestSchemaFilesShape: every file under schema/ but its README is a .sql file that ends with one newline,
// has no carriage returns or tabs, and the query files hold one statement each with no trailing semicolon
// (MySQL drivers refuse a multi-statement string).
func TestSchemaFilesShape(t *testing.T) {
	err := fs.WalkDir(schemaFS, "schema", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || p == "schema/README.md" {
			return err
		}
		b, err := fs.ReadFile(schemaFS, p)
		if err != nil {
			return err
		}
		text := string(b)
		switch {
		case path.Ext(p) != ".sql":
			t.Errorf("%s is not a .sql file", p)
		case !strings.HasSuffix(text, "\n") || strings.HasSuffix(text, "\n\n"):
			t.Errorf("%s does not end with exactly one newline", p)
		case strings.ContainsAny(text, "\r\t"):
			t.Errorf("%s has a carriage return or a tab", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []Dialect{DialectPostgres, DialectMySQL, DialectSQLite} {
		for _, name := range unitQueryNamesFor(d) {
			code, _ := unitSplitSQL(d, unitFile(t, d, "queries/"+name+".sql"))
			code = strings.TrimSpace(code)
			semis := strings.Count(code, ";")
			ddl := name == "create_table" || name == "drop_table"
			if ddl && (semis != 1 || !strings.HasSuffix(code, ";")) || !ddl && semis != 0 {
				t.Errorf("%s/queries/%s.sql is not one statement: %d semicolons", unitDir(t, d), name, semis)
			}
		}
	}
	files, err := fs.Glob(schemaFS, "schema/*/queries/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, d := range []Dialect{DialectPostgres, DialectMySQL, DialectSQLite} {
		for _, name := range unitQueryNamesFor(d) {
			want = append(want, path.Join("schema", unitDir(t, d), "queries", name+".sql"))
		}
	}
	sort.Strings(files)
	sort.Strings(want)
	if !slices.Equal(files, want) {
		t.Errorf("query files %q, want %q", files, want)
	}
}
