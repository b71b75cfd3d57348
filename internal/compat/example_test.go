package compat

import (
	"context"
	"database/sql"
	"errors"
	"log"
	"os"
	"testing"

	"github.com/distrlock/distrlock"
	"github.com/distrlock/distrlock/internal/readmecheck"
	"github.com/golang-migrate/migrate/v4"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/pressly/goose/v3"
	sqlmigrate "github.com/rubenv/sql-migrate"
)

// The examples are the snippets of docs/migrations.md. They are compiled, not run (they need PostgreSQL);
// migrators_test.go runs the same calls on every database.

var dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Example_golangMigrate applies distrlock's migrations with golang-migrate, recording them in a version
// table of their own.
func Example_golangMigrate() {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		log.Fatal(err)
	}
	manager, err := distrlock.NewDBManager(distrlock.DialectPgx) // WithTableName works too
	if err != nil {
		log.Fatal(err)
	}
	source, err := iofs.New(manager.GolangMigrateFS(), ".")
	if err != nil {
		log.Fatal(err)
	}
	driver, err := migratepgx.WithInstance(db, &migratepgx.Config{MigrationsTable: "distrlock_schema_migrations"})
	if err != nil {
		log.Fatal(err)
	}
	m, err := migrate.NewWithInstance("iofs", source, "pgx5", driver)
	if err != nil {
		log.Fatal(err)
	}
	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		log.Fatal(err)
	}
}

// Example_goose applies distrlock's migrations with a goose Provider, recording them in a version table of
// their own.
func Example_goose() {
	ctx := context.Background()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		log.Fatal(err)
	}
	manager, err := distrlock.NewDBManager(distrlock.DialectPgx)
	if err != nil {
		log.Fatal(err)
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, db, manager.GooseFS(),
		goose.WithTableName("distrlock_goose_db_version"))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := provider.Up(ctx); err != nil {
		log.Fatal(err)
	}
}

// Example_sqlMigrate applies distrlock's migrations with rubenv/sql-migrate, the engine of go-dbkit's
// migration runner, from Migrations().
func Example_sqlMigrate() {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		log.Fatal(err)
	}
	manager, err := distrlock.NewDBManager(distrlock.DialectPgx)
	if err != nil {
		log.Fatal(err)
	}
	source := &sqlmigrate.MemoryMigrationSource{}
	for _, m := range manager.Migrations() {
		source.Migrations = append(source.Migrations, &sqlmigrate.Migration{Id: m.ID(), Up: m.UpSQL(), Down: m.DownSQL()})
	}
	set := sqlmigrate.MigrationSet{TableName: "distrlock_migrations"}
	if _, err := set.Exec(db, "postgres", source, sqlmigrate.Up); err != nil {
		log.Fatal(err)
	}
}

// TestREADMEMigrationSnippets: the Go snippets of docs/migrations.md (the migrations guide) are these examples.
func TestREADMEMigrationSnippets(t *testing.T) {
	readme, err := os.ReadFile("../../docs/migrations.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range readmecheck.Check(readme, "../internal/compat/example_test.go", "example_test.go", 3) {
		t.Error(err)
	}
}
