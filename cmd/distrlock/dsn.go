package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/distrlock/distrlock"
)

// target is a database the tool connects to.
type target struct {
	dialect distrlock.Dialect
	driver  string // database/sql driver name
	dsn     string // what the driver takes
	display string // what messages show: no password
	local   bool   // the default SQLite file, which the tool creates and migrates itself
}

// parseDSN chooses the dialect from the DSN's scheme: postgres:// or postgresql://, mysql:// (also for
// MariaDB), sqlite:// or a file: URI. An empty DSN selects the default SQLite file.
func parseDSN(dsn string) (target, error) {
	if dsn == "" {
		path, err := defaultSQLitePath()
		if err != nil {
			return target{}, err
		}
		return sqliteTarget(path, true), nil
	}
	scheme, rest, ok := strings.Cut(dsn, "://")
	if !ok {
		if strings.HasPrefix(dsn, "file:") {
			return sqliteFile(strings.TrimPrefix(dsn, "file:"))
		}
		return target{}, fmt.Errorf("DSN %q has no scheme: use postgres://, mysql:// or sqlite://", redact(dsn))
	}
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql":
		return target{dialect: distrlock.DialectPgx, driver: "pgx", dsn: dsn, display: redact(dsn)}, nil
	case "mysql", "mariadb":
		u, err := url.Parse("mysql://" + rest)
		if err != nil {
			// url.Parse's error quotes the whole URL, password included.
			return target{}, fmt.Errorf("DSN %q is not a valid URL (percent-encode special characters in the password)", redact(dsn))
		}
		q := u.Query()
		if !q.Has("interpolateParams") {
			q.Set("interpolateParams", "true") // one round trip per statement instead of prepare + execute
		}
		// go-sql-driver parses its own parameters; address, credentials and database come from the URL.
		cfg, err := mysql.ParseDSN("/?" + q.Encode())
		if err != nil {
			return target{}, fmt.Errorf("DSN %q: %w", redact(dsn), err)
		}
		cfg.Net, cfg.Addr = "tcp", u.Host
		if u.Port() == "" {
			cfg.Addr = u.Host + ":3306"
		}
		if u.User != nil {
			cfg.User = u.User.Username()
			cfg.Passwd, _ = u.User.Password()
		}
		cfg.DBName = strings.TrimPrefix(u.Path, "/")
		if cfg.DBName == "" {
			return target{}, fmt.Errorf("DSN %q names no database: mysql://user:password@host:3306/dbname", redact(dsn))
		}
		return target{dialect: distrlock.DialectMySQL, driver: "mysql", dsn: cfg.FormatDSN(), display: redact(dsn)}, nil
	case "sqlite", "sqlite3":
		return sqliteFile(rest)
	default:
		return target{}, fmt.Errorf("DSN scheme %q is not supported: use postgres://, mysql:// or sqlite://", scheme)
	}
}

// sqliteFile is the target of a SQLite file a DSN names. A relative path is taken from the working
// directory and shown absolute, so that messages say which file was meant.
func sqliteFile(path string) (target, error) {
	if path == "" {
		return target{}, errors.New("SQLite DSN names no file: sqlite:///absolute/path.db or sqlite://relative/path.db")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return target{}, fmt.Errorf("SQLite file %q: %w", path, err)
	}
	return sqliteTarget(abs, false), nil
}

func sqliteTarget(path string, local bool) target {
	// WAL lets readers (list, inspect) run beside a writer; the busy timeout makes writers queue instead of
	// failing, and immediate transactions avoid lock upgrades that cannot wait.
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate"
	return target{dialect: distrlock.DialectSQLite, driver: "sqlite", dsn: dsn, display: path, local: local}
}

// defaultSQLitePath is $XDG_STATE_HOME/distrlock/locks.db, else ~/.local/state/distrlock/locks.db (on macOS
// ~/Library/Application Support/distrlock/locks.db, on Windows %LocalAppData%\distrlock\locks.db).
func defaultSQLitePath() (string, error) {
	if dir := os.Getenv("XDG_STATE_HOME"); dir != "" {
		return filepath.Join(dir, "distrlock", "locks.db"), nil
	}
	switch runtime.GOOS {
	case "darwin", "windows":
		dir, err := os.UserCacheDir()
		if runtime.GOOS == "darwin" {
			var home string
			home, err = os.UserHomeDir()
			dir = filepath.Join(home, "Library", "Application Support")
		}
		if err != nil {
			return "", err
		}
		return filepath.Join(dir, "distrlock", "locks.db"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", errors.New("no home directory for the default SQLite file: set --dsn, DISTRLOCK_DSN or XDG_STATE_HOME")
	}
	return filepath.Join(home, ".local", "state", "distrlock", "locks.db"), nil
}

// userPassword matches the password of a URL's user part, even in a URL that does not parse.
var userPassword = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*://[^:@/]*):[^@]*@`)

// redact hides the passwords of a URL-shaped DSN: in its user part and in password or sslpassword query
// parameters.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		// Unparseable: hide the user part's password and everything after the query's start.
		dsn = userPassword.ReplaceAllString(dsn, "${1}:xxxxx@")
		if i := strings.Index(dsn, "?"); i >= 0 {
			dsn = dsn[:i] + "?…"
		}
		return dsn
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	q := u.Query()
	for _, name := range []string{"password", "sslpassword"} {
		if q.Has(name) {
			q.Set(name, "xxxxx")
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}
