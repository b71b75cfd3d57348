package distrlock

import (
	"database/sql"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Migration is one step of the table's schema, with the method set of go-dbkit's migrate.Migration, so
// that go-dbkit's migration runner (and anything built on github.com/rubenv/sql-migrate) can apply it.
type Migration interface {
	// ID is distrlock_<5-digit version>_<title>; version 1 has go-dbkit's ID distrlock_00001_create_table.
	ID() string
	// UpSQL returns the statements that apply the step, one statement per element.
	UpSQL() []string
	// DownSQL returns the statements that undo the step.
	DownSQL() []string
	// UpFn returns nil: every step is SQL.
	UpFn() func(tx *sql.Tx) error
	// DownFn returns nil: every step is SQL.
	DownFn() func(tx *sql.Tx) error
}

type sqlMigration struct {
	id       string
	up, down []string
}

func (m *sqlMigration) ID() string                     { return m.id }
func (m *sqlMigration) UpSQL() []string                { return m.up }
func (m *sqlMigration) DownSQL() []string              { return m.down }
func (m *sqlMigration) UpFn() func(tx *sql.Tx) error   { return nil }
func (m *sqlMigration) DownFn() func(tx *sql.Tx) error { return nil }

// Migrations returns, in order, the steps that take the manager's table from nothing (or from go-dbkit's
// table) to the shape this version uses, rendered for the manager's table name. Step 1 creates go-dbkit's
// table; later steps upgrade it in place, keeping the locks held in it.
func (m *DBManager) Migrations() []Migration {
	migs, err := m.migrations()
	if err != nil {
		// The files are embedded and checked by the tests, so this is a build defect, not a runtime condition.
		panic(err)
	}
	return migs
}

func (m *DBManager) migrations() ([]Migration, error) {
	dir := path.Join("schema", m.spec.dir)
	ups, err := fs.Glob(schemaFS, path.Join(dir, "*.up.sql"))
	if err != nil {
		return nil, err
	}
	sort.Strings(ups)
	migs := make([]Migration, 0, len(ups))
	for _, up := range ups {
		base := strings.TrimSuffix(path.Base(up), ".up.sql")
		num, title, ok := strings.Cut(base, "_")
		version, convErr := strconv.Atoi(num)
		if !ok || convErr != nil {
			return nil, fmt.Errorf("distrlock: embedded schema: bad migration name %s", up)
		}
		upText, err := renderFile(m.spec, up, m.quoted)
		if err != nil {
			return nil, err
		}
		downText, err := renderFile(m.spec, path.Join(dir, base+".down.sql"), m.quoted)
		if err != nil {
			return nil, err
		}
		migs = append(migs, &sqlMigration{
			id:   fmt.Sprintf("distrlock_%05d_%s", version, title),
			up:   splitStatements(upText),
			down: splitStatements(downText),
		})
	}
	return migs, nil
}

// splitStatements splits a migration file of this package into its statements. The files end every
// statement with a semicolon at the end of a line and have no semicolons elsewhere at a line's end;
// comment lines before a statement stay with it.
func splitStatements(text string) []string {
	var stmts []string
	var cur strings.Builder
	for line := range strings.Lines(text) {
		cur.WriteString(line)
		if strings.HasSuffix(strings.TrimSpace(line), ";") && !strings.HasPrefix(strings.TrimSpace(line), "--") {
			stmts = append(stmts, strings.TrimSpace(cur.String()))
			cur.Reset()
		}
	}
	if rest := strings.TrimSpace(cur.String()); rest != "" {
		stmts = append(stmts, rest)
	}
	return stmts
}
