package distrlock

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on what a lock accepts. Longer keys and tokens do not fit the table's columns.
const (
	// MaxKeyLength is the longest key, in bytes (go-dbkit allowed 40).
	MaxKeyLength = 255
	// MaxTokenLength is the longest static token, in bytes.
	MaxTokenLength = 255
	// MinTTL is the shortest lease: SQLite's clock has millisecond resolution.
	MinTTL = time.Millisecond
	// MaxTTL is the longest lease, 100 years; every dialect computes expiry exactly up to it.
	MaxTTL = 100 * 365 * 24 * time.Hour
	// MaxOwnerLength is the longest DBLock.Owner, in bytes.
	MaxOwnerLength = 255
	// MaxDataLength is the longest DBLock.Data, in bytes.
	MaxDataLength = 1 << 20
)

func validateKey(key string) error {
	return validateText(ErrInvalidKey, "key", key, MaxKeyLength)
}

func validateToken(token string) error {
	return validateText(ErrInvalidToken, "token", token, MaxTokenLength)
}

// validateText rejects what no column stores faithfully in every dialect: PostgreSQL text refuses NUL and
// invalid UTF-8.
func validateText(sentinel error, what, s string, maxLen int) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty %s", sentinel, what)
	case len(s) > maxLen:
		return fmt.Errorf("%w: %s is %d bytes, longer than %d", sentinel, what, len(s), maxLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s is not valid UTF-8", sentinel, what)
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("%w: %s contains a NUL byte", sentinel, what)
	}
	return nil
}

// validateOwnerData checks what an acquisition stores besides the lease; both may be empty.
func validateOwnerData(owner, data string) error {
	if owner != "" {
		if err := validateText(ErrInvalidOption, "owner", owner, MaxOwnerLength); err != nil {
			return err
		}
	}
	if len(data) > MaxDataLength {
		return fmt.Errorf("%w: data is %d bytes, longer than %d", ErrInvalidOption, len(data), MaxDataLength)
	}
	return nil
}

func validateTTL(ttl time.Duration) error {
	if ttl < MinTTL || ttl > MaxTTL {
		return fmt.Errorf("%w: %v is outside [%v, %v]", ErrInvalidTTL, ttl, MinTTL, MaxTTL)
	}
	return nil
}

// identifierPart is a plain SQL identifier that needs no case folding rules to be read: the quoting added
// when rendering keeps it exactly as written.
var identifierPart = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// quoteTableName validates a table name, "table" or "schema.table", and quotes each part.
func quoteTableName(name string, quote byte) (string, error) {
	parts := strings.Split(name, ".")
	if len(parts) > 2 {
		return "", fmt.Errorf("%w %q: more than one dot", ErrInvalidTableName, name)
	}
	quoted := make([]string, len(parts))
	for i, p := range parts {
		if !identifierPart.MatchString(p) {
			return "", fmt.Errorf("%w %q: each part must be 1 to 63 letters, digits or underscores, not starting with a digit",
				ErrInvalidTableName, name)
		}
		quoted[i] = string(quote) + p + string(quote)
	}
	return strings.Join(quoted, "."), nil
}

// validateNotifier accepts a non-nil notifier with a plain channel name on a PostgreSQL dialect.
func validateNotifier(dialect Dialect, n Notifier) error {
	switch {
	case dialect != DialectPostgres && dialect != DialectPgx:
		return fmt.Errorf("%w: a notifier needs PostgreSQL (LISTEN/NOTIFY), not %q", ErrInvalidOption, dialect)
	case isNilInterface(n):
		return fmt.Errorf("%w: nil notifier", ErrInvalidOption)
	case !identifierPart.MatchString(n.Channel()):
		return fmt.Errorf("%w: notification channel %q: need 1 to 63 letters, digits or underscores", ErrInvalidOption, n.Channel())
	}
	return nil
}

// isNilInterface reports a nil interface or a typed nil pointer in it.
func isNilInterface(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}
