package distrlock_test

import (
	"log"

	"github.com/distrlock/distrlock"
	migrate "github.com/distrlock/distrlock/internal/dbkitmigrate"
)

// A go-dbkit program's migration runner and manager; see ExampleDBManager_Migrations_dbkit.
var (
	dbManager         *distrlock.DBManager
	migrationsManager *migrate.MigrationsManager
)

func appMigrations() []migrate.Migration { return nil }

// distrlock's migrations appended to a go-dbkit program's own and run by go-dbkit's runner, restated in
// internal/dbkitmigrate. Compiled, not run.
func ExampleDBManager_Migrations_dbkit() {
	migs := appMigrations() // your []migrate.Migration
	for _, m := range dbManager.Migrations() {
		migs = append(migs, m)
	}
	if err := migrationsManager.Run(migs, migrate.MigrationsDirectionUp); err != nil {
		log.Fatal(err)
	}
}
