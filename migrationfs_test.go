package distrlock

import (
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
)

// unitGooseFiles returns the goose files that schema/<dir> implies: for each golang-migrate pair
// {version}_{title}.up.sql/.down.sql, one {5-digit version}_{title}.sql with the up file under
// -- +goose Up and the down file under -- +goose Down.
func unitGooseFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	ups, err := fs.Glob(schemaFS, path.Join("schema", dir, "*.up.sql"))
	if err != nil || len(ups) == 0 {
		t.Fatalf("no up migrations in schema/%s: %v", dir, err)
	}
	files := map[string]string{}
	for _, up := range ups {
		base := strings.TrimSuffix(path.Base(up), ".up.sql")
		num, title, _ := strings.Cut(base, "_")
		version, err := strconv.Atoi(num)
		if err != nil {
			t.Fatal(err)
		}
		upText, err := schemaFS.ReadFile(up)
		if err != nil {
			t.Fatal(err)
		}
		downText, err := schemaFS.ReadFile(path.Join("schema", dir, base+".down.sql"))
		if err != nil {
			t.Fatal(err)
		}
		files[fmt.Sprintf("%05d_%s.sql", version, title)] = "-- +goose Up\n" + string(upText) + "-- +goose Down\n" + string(downText)
	}
	return files
}

// unitReadFS returns every file of fsys's root by name.
func unitReadFS(t *testing.T, fsys fs.FS) map[string]string {
	t.Helper()
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range entries {
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(b)
	}
	return files
}

// TestGooseFilesMatchMigrations: schema/goose/<dialect> holds exactly the golang-migrate files of
// schema/<dialect> in goose's one-file form (go test -run TestGooseFilesMatchMigrations -update . writes them).
func TestGooseFilesMatchMigrations(t *testing.T) {
	for _, spec := range []*dialectSpec{postgresSpec, mysqlSpec, sqliteSpec} {
		t.Run(spec.dir, func(t *testing.T) {
			want := unitGooseFiles(t, spec.dir)
			dir := filepath.Join("schema", "goose", spec.dir)
			if *unitUpdate {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				for name, text := range want {
					if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			got := unitReadFS(t, os.DirFS(dir))
			if !maps.Equal(got, want) {
				t.Errorf("schema/goose/%s has %v, the migrations imply %v (or the texts differ; -update rewrites them)",
					spec.dir, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
			}
		})
	}
}

// TestMigrationFSDefaultTable: for the default table, GolangMigrateFS and GooseFS serve the files of
// schema/<dialect> and schema/goose/<dialect> byte for byte, and nothing else.
func TestMigrationFSDefaultTable(t *testing.T) {
	for _, d := range []Dialect{DialectPostgres, DialectPgx, DialectMySQL, DialectMariaDB, DialectSQLite} {
		t.Run(string(d), func(t *testing.T) {
			m, err := NewDBManager(d)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				fsys fs.FS
				dir  string
			}{
				{m.GolangMigrateFS(), filepath.Join("schema", m.spec.dir)},
				{m.GooseFS(), filepath.Join("schema", "goose", m.spec.dir)},
			} {
				want := map[string]string{}
				matches, err := filepath.Glob(filepath.Join(c.dir, "*.sql"))
				if err != nil || len(matches) < 4 && !strings.Contains(c.dir, "goose") || len(matches) < 2 {
					t.Fatalf("%s: %d files, %v", c.dir, len(matches), err)
				}
				for _, f := range matches {
					b, err := os.ReadFile(f)
					if err != nil {
						t.Fatal(err)
					}
					want[filepath.Base(f)] = string(b)
				}
				if got := unitReadFS(t, c.fsys); !maps.Equal(got, want) {
					t.Errorf("%s: the FS serves %v, the folder holds %v (or the texts differ)",
						c.dir, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
				}
			}
		})
	}
}

// TestMigrationFSCustomTable: for another table, both file systems pass fstest.TestFS, name only the
// manager's quoted table, and split into exactly the statements of Migrations().
func TestMigrationFSCustomTable(t *testing.T) {
	for _, d := range []Dialect{DialectPostgres, DialectMySQL, DialectSQLite} {
		for _, table := range unitGoldenTables {
			t.Run(string(d)+"/"+table, func(t *testing.T) {
				m, err := NewDBManager(d, WithTableName(table))
				if err != nil {
					t.Fatal(err)
				}
				var ups, downs, gooseUps, gooseDowns []string
				migrate := unitReadFS(t, m.GolangMigrateFS())
				for _, name := range slices.Sorted(maps.Keys(migrate)) {
					stmts := splitStatements(migrate[name])
					if strings.HasSuffix(name, ".up.sql") {
						ups = append(ups, strings.Join(stmts, "\n"))
					} else {
						downs = append(downs, strings.Join(stmts, "\n"))
					}
				}
				goose := unitReadFS(t, m.GooseFS())
				for _, name := range slices.Sorted(maps.Keys(goose)) {
					upPart, downPart, ok := strings.Cut(strings.TrimPrefix(goose[name], "-- +goose Up\n"), "-- +goose Down\n")
					if !ok || !strings.HasPrefix(goose[name], "-- +goose Up\n") {
						t.Fatalf("%s lacks the goose annotations:\n%s", name, goose[name])
					}
					gooseUps = append(gooseUps, strings.Join(splitStatements(upPart), "\n"))
					gooseDowns = append(gooseDowns, strings.Join(splitStatements(downPart), "\n"))
				}
				var wantUps, wantDowns []string
				for _, mig := range m.Migrations() {
					wantUps = append(wantUps, strings.Join(mig.UpSQL(), "\n"))
					wantDowns = append(wantDowns, strings.Join(mig.DownSQL(), "\n"))
				}
				if !slices.Equal(ups, wantUps) || !slices.Equal(downs, wantDowns) {
					t.Errorf("GolangMigrateFS differs from Migrations():\n%q\n%q\nwant\n%q\n%q", ups, downs, wantUps, wantDowns)
				}
				if !slices.Equal(gooseUps, wantUps) || !slices.Equal(gooseDowns, wantDowns) {
					t.Errorf("GooseFS differs from Migrations():\n%q\n%q\nwant\n%q\n%q", gooseUps, gooseDowns, wantUps, wantDowns)
				}
				quoted := m.quoted
				for name, text := range goose {
					migrate["goose/"+name] = text
				}
				for name, text := range migrate {
					if !strings.Contains(text, quoted) || strings.Contains(text, "distributed_locks") {
						t.Errorf("%s does not name only %s:\n%s", name, quoted, text)
					}
				}
				for _, fsys := range []fs.FS{m.GolangMigrateFS(), m.GooseFS()} {
					names := slices.Sorted(maps.Keys(unitReadFS(t, fsys)))
					if err := fstest.TestFS(fsys, names...); err != nil {
						t.Error(err)
					}
				}
			})
		}
	}
}
