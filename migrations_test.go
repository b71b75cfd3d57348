package distrlock

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// unitMigrationIDs are the steps of each dialect, in order. IDs are a promise: a released one never changes.
// A version is the same step in every dialect that has it; PostgreSQL and SQLite need no step 3, and
// golang-migrate, goose and sql-migrate all accept the gap.
func unitMigrationIDs(d Dialect) []string {
	ids := []string{"distrlock_00001_create_table", "distrlock_00002_fence_and_lease"}
	if unitIsMySQL(d) {
		ids = append(ids, "distrlock_00003_expiry_in_microseconds")
	}
	return append(ids, "distrlock_00004_wait_queue", "distrlock_00005_fence_floor")
}

// unitMigrationVersion splits a migration ID, distrlock_<5-digit version>_<title>, into its parts.
func unitMigrationVersion(t testing.TB, id string) (int, string) {
	t.Helper()
	rest, ok := strings.CutPrefix(id, "distrlock_")
	num, title, ok2 := strings.Cut(rest, "_")
	version, err := strconv.Atoi(num)
	if !ok || !ok2 || err != nil || len(num) != 5 || version < 1 || title == "" {
		t.Fatalf("migration ID %q is not distrlock_<5-digit version>_<title>", id)
	}
	return version, title
}

// TestMigrationIDs: each dialect has its steps in order, starting with go-dbkit's ID.
func TestMigrationIDs(t *testing.T) {
	for _, d := range unitDialects {
		for _, table := range []string{"", "app.my_locks"} {
			m, err := NewDBManager(d, WithTableName(table))
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, mig := range m.Migrations() {
				ids = append(ids, mig.ID())
			}
			if want := unitMigrationIDs(d); !slices.Equal(ids, want) {
				t.Errorf("%s %q: migration IDs %q, want %q", d, table, ids, want)
			}
		}
	}
}

// TestMigrationFilesPaired: in every dialect folder each .up.sql has its .down.sql and the reverse, the
// versions start at 1 and strictly increase (a dialect may skip a version another needs), a version has
// the same title in every dialect that has it, and every dialect ends at the same latest version, so that
// one version number names one schema everywhere.
func TestMigrationFilesPaired(t *testing.T) {
	titles := map[int]string{} // version → title, across dialects
	latest := map[string]int{} // dialect folder → its last version
	for _, dir := range []string{"postgres", "mysql", "sqlite"} {
		files, err := fs.Glob(schemaFS, path.Join("schema", dir, "*.sql"))
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]bool{}
		for _, f := range files {
			names[path.Base(f)] = true
		}
		version, steps := 0, 0
		for _, f := range files {
			base := path.Base(f)
			var pair string
			switch {
			case strings.HasSuffix(base, ".up.sql"):
				pair = strings.TrimSuffix(base, ".up.sql") + ".down.sql"
				steps++
				num, title, _ := strings.Cut(strings.TrimSuffix(base, ".up.sql"), "_")
				v, err := strconv.Atoi(num)
				switch {
				case err != nil || len(num) != 6 || title == "":
					t.Errorf("%s/%s: want <6-digit version>_<title>.up.sql", dir, base)
				case steps == 1 && v != 1:
					t.Errorf("%s/%s: the first version is %d, want 1 (go-dbkit's step)", dir, base, v)
				case v <= version:
					t.Errorf("%s/%s: version %d does not follow version %d", dir, base, v, version)
				case titles[v] != "" && titles[v] != title:
					t.Errorf("%s/%s: version %d is %q in another dialect", dir, base, v, titles[v])
				default:
					titles[v] = title
				}
				version = max(version, v)
			case strings.HasSuffix(base, ".down.sql"):
				pair = strings.TrimSuffix(base, ".down.sql") + ".up.sql"
			default:
				t.Errorf("%s/%s is neither an up nor a down migration", dir, base)
				continue
			}
			if !names[pair] {
				t.Errorf("%s/%s has no %s", dir, base, pair)
			}
		}
		if steps < 2 {
			t.Errorf("%s has %d migrations", dir, steps)
		}
		latest[dir] = version
	}
	if latest["postgres"] != latest["mysql"] || latest["postgres"] != latest["sqlite"] {
		t.Errorf("the dialects end at different versions: %v", latest)
	}
}

// TestMigrationSteps: every step has up and down SQL, each element one statement ending with a semicolon,
// no Go functions, and the text of its files rendered for the manager's table.
func TestMigrationSteps(t *testing.T) {
	for _, d := range unitDialects {
		for _, table := range []string{"", "my_locks", "app.my_locks"} {
			t.Run(fmt.Sprintf("%s/%q", d, table), func(t *testing.T) {
				m, err := NewDBManager(d, WithTableName(table))
				if err != nil {
					t.Fatal(err)
				}
				migs := m.Migrations()
				for i, mig := range migs {
					if mig.UpFn() != nil || mig.DownFn() != nil {
						t.Errorf("%s has Go functions", mig.ID())
					}
					version, title := unitMigrationVersion(t, mig.ID())
					if i > 0 {
						if prev, _ := unitMigrationVersion(t, migs[i-1].ID()); version <= prev {
							t.Errorf("%s follows version %d", mig.ID(), prev)
						}
					}
					base := fmt.Sprintf("%06d_%s", version, title)
					for dir, stmts := range map[string][]string{"up": mig.UpSQL(), "down": mig.DownSQL()} {
						if len(stmts) == 0 {
							t.Errorf("%s has no %s SQL", mig.ID(), dir)
						}
						for _, stmt := range stmts {
							unitWantOneStatement(t, d, mig.ID()+" "+dir, stmt)
							if table != "" {
								unitWantOnlyTable(t, d, table, mig.ID()+" "+dir, stmt)
							}
						}
						// The elements are the file's statements, in order, rendered for the table.
						file := unitRender(d, unitFile(t, d, base+"."+dir+".sql"), table)
						if got := strings.Join(stmts, "\n"); got != strings.TrimSpace(file) {
							t.Errorf("%s %s:\n%s\nthe file rendered for %q:\n%s", mig.ID(), dir, got, table, file)
						}
					}
				}
			})
		}
	}
}

// unitWantOneStatement fails unless stmt, comments and quoted text aside, is one statement ending with ";".
func unitWantOneStatement(t *testing.T, d Dialect, name, stmt string) {
	t.Helper()
	code, _ := unitSplitSQL(d, stmt)
	code = strings.TrimSpace(code)
	if strings.Count(code, ";") != 1 || !strings.HasSuffix(code, ";") || len(code) < 2 {
		t.Errorf("%s: element is not one statement:\n%s", name, stmt)
	}
	if stmt != strings.TrimSpace(stmt) {
		t.Errorf("%s: element has surrounding space: %q", name, stmt)
	}
}

// TestSplitStatements: the SQLite step 2 files hold five statements each; comment lines stay with the
// statement they precede, and a semicolon at the end of a comment line does not end a statement.
func TestSplitStatements(t *testing.T) {
	for _, name := range []string{"000002_fence_and_lease.up.sql", "000002_fence_and_lease.down.sql"} {
		stmts := splitStatements(unitFile(t, DialectSQLite, name))
		if len(stmts) != 5 {
			t.Errorf("sqlite/%s: %d statements, want 5: %q", name, len(stmts), stmts)
		}
	}
	for _, c := range []struct {
		text string
		want []string
	}{
		{"", nil},
		{"\n\n", nil},
		{"SELECT 1;", []string{"SELECT 1;"}},
		{"SELECT 1;\nSELECT 2;\n", []string{"SELECT 1;", "SELECT 2;"}},
		{"-- about one;\nSELECT 1;\n\n-- about two\nSELECT\n  2;\n", []string{"-- about one;\nSELECT 1;", "-- about two\nSELECT\n  2;"}},
		{"SELECT 1;   \n  SELECT 2 ;\t\n", []string{"SELECT 1;", "SELECT 2 ;"}},
		{"SELECT 1;\nSELECT 2", []string{"SELECT 1;", "SELECT 2"}},
		{"SELECT 1; SELECT 2;\n", []string{"SELECT 1; SELECT 2;"}}, // one line, one element: the files never do this
	} {
		if got := splitStatements(c.text); !reflect.DeepEqual(got, c.want) {
			t.Errorf("splitStatements(%q) = %q, want %q", c.text, got, c.want)
		}
	}
}

// unitColumn is a row of SQLite's table_info.
type unitColumn struct {
	name, typ string
	notNull   bool
	dflt      sql.NullString
	pk        int
}

func unitTableInfo(t *testing.T, db *sql.DB, schema, table string) []unitColumn {
	t.Helper()
	rows, err := db.QueryContext(context.Background(),
		`SELECT name, type, "notnull", dflt_value, pk FROM pragma_table_info(?, ?) ORDER BY cid`, table, schema)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var cols []unitColumn
	for rows.Next() {
		var c unitColumn
		if err := rows.Scan(&c.name, &c.typ, &c.notNull, &c.dflt, &c.pk); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return cols
}

func unitExecAll(t *testing.T, db *sql.DB, stmts []string) {
	t.Helper()
	for _, stmt := range stmts {
		if _, err := db.ExecContext(context.Background(), stmt); err != nil {
			t.Fatalf("%v in\n%s", err, stmt)
		}
	}
}

// TestMigrationsOnSQLite applies Migrations() to a real SQLite database (modernc.org/sqlite, a temporary
// file): all steps up give the columns of CreateTableSQL()'s table; all steps down, in reverse, remove the
// table, each step leaving the columns the one before it made; up again gives the same columns, and the
// lock works on the migrated table.
func TestMigrationsOnSQLite(t *testing.T) {
	for _, c := range []struct{ table, schema, name string }{
		{"", "main", DefaultTableName},
		{"my_locks", "main", "my_locks"},
		{"main.app_locks", "main", "app_locks"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "locks.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			db.SetMaxOpenConns(1)

			final, err := NewDBManager(DialectSQLite, WithTableName("final_shape"))
			if err != nil {
				t.Fatal(err)
			}
			unitExecAll(t, db, []string{final.CreateTableSQL()})
			want := unitTableInfo(t, db, "main", "final_shape")
			if len(want) != 11 {
				t.Fatalf("CreateTableSQL made %d columns: %+v", len(want), want)
			}
			// The columns the table has after each step down: back to go-dbkit's three, with step 4's added
			// at the end.
			below := map[string][]string{
				"distrlock_00002_fence_and_lease": {"lock_key", "token", "expire_at"},
				"distrlock_00004_wait_queue":      {"lock_key", "token", "expire_at", "fence", "ttl_us", "owner", "data", "acquired_at"},
			}

			m, err := NewDBManager(DialectSQLite, WithTableName(c.table))
			if err != nil {
				t.Fatal(err)
			}
			migs := m.Migrations()
			up := func() {
				t.Helper()
				for _, mig := range migs {
					unitExecAll(t, db, mig.UpSQL())
				}
				if got := unitTableInfo(t, db, c.schema, c.name); !reflect.DeepEqual(got, want) {
					t.Fatalf("after all migrations up the columns are\n%+v\nCreateTableSQL makes\n%+v", got, want)
				}
			}
			up()
			checked := 0
			for i := len(migs) - 1; i >= 0; i-- {
				unitExecAll(t, db, migs[i].DownSQL())
				if wantNames, ok := below[migs[i].ID()]; ok {
					checked++
					var names []string
					for _, col := range unitTableInfo(t, db, c.schema, c.name) {
						names = append(names, col.name)
					}
					if !slices.Equal(names, wantNames) {
						t.Errorf("after %s down the columns are %q, want %q", migs[i].ID(), names, wantNames)
					}
				}
			}
			if checked != len(below) {
				t.Errorf("checked the columns below %d steps, want %d", checked, len(below))
			}
			var n int
			if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE name = ?`, c.name).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Fatalf("table %s still exists after all migrations down", c.name)
			}
			up()

			// The statements work on the migrated table, and the fence continues across release.
			l, err := m.NewLock(ctx, db, "job")
			if err != nil {
				t.Fatal(err)
			}
			other, err := m.NewLock(ctx, db, "job")
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Acquire(ctx, db, time.Minute); err != nil || l.Fence() != 1 {
				t.Fatalf("acquire: fence %d, %v", l.Fence(), err)
			}
			if err := other.Acquire(ctx, db, time.Minute); err == nil {
				t.Fatal("a second token acquired a held lock")
			}
			if err := l.Extend(ctx, db); err != nil {
				t.Fatalf("extend: %v", err)
			}
			if err := l.Release(ctx, db); err != nil {
				t.Fatalf("release: %v", err)
			}
			if err := other.Acquire(ctx, db, time.Minute); err != nil || other.Fence() != 2 {
				t.Fatalf("acquire after release: fence %d, %v", other.Fence(), err)
			}
		})
	}
}
