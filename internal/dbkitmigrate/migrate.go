// Package migrate restates the part of go-dbkit's migrate package (github.com/acronis/go-dbkit/migrate) that
// the migrations guide uses, so that its go-dbkit snippet compiles here: go-dbkit cannot be fetched from this
// project's module proxy. Only the signatures are go-dbkit's; nothing here runs a migration.
package migrate

import (
	"database/sql"
	"errors"
)

// Migration is go-dbkit's migration method set.
type Migration interface {
	ID() string
	UpSQL() []string
	DownSQL() []string
	UpFn() func(tx *sql.Tx) error
	DownFn() func(tx *sql.Tx) error
}

// MigrationsDirection is the direction go-dbkit's runner applies migrations in.
type MigrationsDirection string

// MigrationsDirectionUp applies migrations.
const MigrationsDirectionUp MigrationsDirection = "up"

// MigrationsManager stands for go-dbkit's migration runner.
type MigrationsManager struct{}

// Run has the signature of go-dbkit's MigrationsManager.Run and always fails: this is a restatement.
func (*MigrationsManager) Run(migrations []Migration, direction MigrationsDirection) error {
	return errors.New("migrate: a restatement of go-dbkit's API, not a runner")
}
