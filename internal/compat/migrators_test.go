package compat

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/distrlock/distrlock"
	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	migratemysql "github.com/golang-migrate/migrate/v4/database/mysql"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	migratesqlite "github.com/golang-migrate/migrate/v4/database/sqlite"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/pressly/goose/v3"
	sqlmigrate "github.com/rubenv/sql-migrate"
)

// Each migrator test applies distrlock's migrations up, down and up again on PostgreSQL, MariaDB and
// SQLite, with a version table of distrlock's own, and then takes and releases locks on the table.

func TestGolangMigrate(t *testing.T) {
	for _, tg := range targets(t, "gm_locks") {
		t.Run(tg.name, func(t *testing.T) {
			db := tg.open(t)
			versions := tg.table + "_versions"
			tg.dropAfter(t, tg.open(t), tg.quoteIdent(versions))
			m := tg.manager(t)

			src, err := iofs.New(m.GolangMigrateFS(), ".")
			if err != nil {
				t.Fatal(err)
			}
			var drv database.Driver
			switch tg.dialect {
			case distrlock.DialectMySQL:
				drv, err = migratemysql.WithInstance(db, &migratemysql.Config{MigrationsTable: versions})
			case distrlock.DialectSQLite:
				drv, err = migratesqlite.WithInstance(db, &migratesqlite.Config{MigrationsTable: versions})
			default:
				drv, err = migratepgx.WithInstance(db, &migratepgx.Config{MigrationsTable: versions})
			}
			if err != nil {
				t.Fatal(err)
			}
			mig, err := migrate.NewWithInstance("iofs", src, tg.name, drv)
			if err != nil {
				t.Fatal(err)
			}
			step := func(name string, f func() error) {
				t.Helper()
				if err := f(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
					t.Fatalf("golang-migrate %s: %v", name, err)
				}
			}
			step("up", mig.Up)
			checkVersion(t, m, mig)
			checkLocks(t, m, db)
			step("down", mig.Down)
			if tg.tableExists(t, db) {
				t.Fatal("the lock table exists after all migrations down")
			}
			step("up again", mig.Up)
			checkVersion(t, m, mig)
			checkLocks(t, m, db)
		})
	}
}

// latestVersion is the version of the manager's last migration, the same in every dialect (PostgreSQL and
// SQLite skip version 3, which only MySQL has).
const latestVersion = 5

// checkVersion checks that golang-migrate recorded the last migration of the dialect, clean.
func checkVersion(t *testing.T, m *distrlock.DBManager, mig *migrate.Migrate) {
	t.Helper()
	want := lastVersion(t, m)
	v, dirty, err := mig.Version()
	if err != nil || dirty || v != uint(want) {
		t.Fatalf("golang-migrate version %d (dirty %v, %v), want %d", v, dirty, err, want)
	}
}

// lastVersion returns the version of the manager's last migration, read from its ID
// (distrlock_<version>_<title>), and checks it is latestVersion.
func lastVersion(t *testing.T, m *distrlock.DBManager) int64 {
	t.Helper()
	migs := m.Migrations()
	id := migs[len(migs)-1].ID()
	num, _, _ := strings.Cut(strings.TrimPrefix(id, "distrlock_"), "_")
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v != latestVersion {
		t.Fatalf("the last migration is %s, want version %d", id, latestVersion)
	}
	return v
}

func TestGoose(t *testing.T) {
	for _, tg := range targets(t, "goose_locks") {
		t.Run(tg.name, func(t *testing.T) {
			ctx := context.Background()
			db := tg.open(t)
			versions := tg.table + "_versions"
			tg.dropAfter(t, db, tg.quoteIdent(versions))
			m := tg.manager(t)

			p, err := goose.NewProvider(goose.Dialect(tg.gooseDialect), db, m.GooseFS(), goose.WithTableName(versions))
			if err != nil {
				t.Fatal(err)
			}
			n := len(m.Migrations())
			if got := len(p.ListSources()); got != n {
				t.Fatalf("goose found %d migrations, want %d", got, n)
			}
			if res, err := p.Up(ctx); err != nil || len(res) != n {
				t.Fatalf("goose up: %d applied, %v", len(res), err)
			}
			checkLocks(t, m, db)
			if res, err := p.DownTo(ctx, 0); err != nil || len(res) != n {
				t.Fatalf("goose down: %d undone, %v", len(res), err)
			}
			if tg.tableExists(t, db) {
				t.Fatal("the lock table exists after all migrations down")
			}
			if res, err := p.Up(ctx); err != nil || len(res) != n {
				t.Fatalf("goose up again: %d applied, %v", len(res), err)
			}
			if v, err := p.GetDBVersion(ctx); err != nil || v != lastVersion(t, m) {
				t.Fatalf("goose version %d, %v; want %d", v, err, lastVersion(t, m))
			}
			checkLocks(t, m, db)
		})
	}
}

// sqlMigrateSource converts Migrations() the way go-dbkit's migrate.MigrationsManager does before it hands
// them to sql-migrate: ID, up and down statements, in a transaction each.
func sqlMigrateSource(migs []distrlock.Migration) *sqlmigrate.MemoryMigrationSource {
	src := &sqlmigrate.MemoryMigrationSource{}
	for _, m := range migs {
		src.Migrations = append(src.Migrations, &sqlmigrate.Migration{Id: m.ID(), Up: m.UpSQL(), Down: m.DownSQL()})
	}
	return src
}

func TestSQLMigrate(t *testing.T) {
	for _, tg := range targets(t, "sqlm_locks") {
		t.Run(tg.name, func(t *testing.T) {
			db := tg.open(t)
			versions := tg.table + "_versions"
			tg.dropAfter(t, db, tg.quoteIdent(versions))
			m := tg.manager(t)
			set := sqlmigrate.MigrationSet{TableName: versions}
			src := sqlMigrateSource(m.Migrations())
			n := len(src.Migrations)

			run := func(dir sqlmigrate.MigrationDirection) {
				t.Helper()
				if got, err := set.Exec(db, tg.sqlMigrateDialect, src, dir); err != nil || got != n {
					t.Fatalf("sql-migrate %v: %d applied, want %d: %v", dir, got, n, err)
				}
			}
			run(sqlmigrate.Up)
			checkLocks(t, m, db)
			run(sqlmigrate.Down)
			if tg.tableExists(t, db) {
				t.Fatal("the lock table exists after all migrations down")
			}
			run(sqlmigrate.Up)
			records, err := set.GetMigrationRecords(db, tg.sqlMigrateDialect)
			if err != nil || len(records) != n || records[0].Id != "distrlock_00001_create_table" {
				t.Fatalf("sql-migrate records %+v, %v", records, err)
			}
			checkLocks(t, m, db)
		})
	}
}
