package distrlock

import (
	"embed"
	"fmt"
	"path"
	"strings"
)

// schemaFS holds every SQL text the library runs or ships; see schema/README.md.
//
//go:embed schema
var schemaFS embed.FS

// queries are the statements of one manager, rendered once for its table.
type queries struct {
	createTable string
	dropTable   string
	acquire     string
	extend      string
	extendBatch string
	// extendBatchHeld is MySQL's: its UPDATE cannot return the rows it changed.
	extendBatchHeld string
	release         string
	get             string
	list            string
	peek            string // the waiters' read between attempts
	proclaim        string // an elected leader's new value
	enqueue         string // a waiter's ticket in the key's queue
	dequeue         string // a waiter that gives up leaves the queue
	guard           string // confirms a lease and share-locks its row in the caller's transaction
	// releaseNotify is PostgreSQL's release that also publishes the key to a Notifier's channel.
	releaseNotify string
	// proclaimNotify is PostgreSQL's proclaim that also publishes the key to a Notifier's channel.
	proclaimNotify string
	// acquireInTx is the acquire sent inside a caller's transaction: MySQL's has no gate (see
	// schema/mysql/queries/acquire_in_tx.sql); the other dialects send acquire.
	acquireInTx string
	// prune deletes a batch of free rows and raises the fence floor in one statement (PostgreSQL); the
	// other dialects scan, raise the floor, then delete (pruneScan, pruneFloor, pruneDelete).
	prune, pruneScan, pruneFloor, pruneDelete string

	// syncWait is MariaDB's prefix that makes a Galera node catch up with the cluster before the statement
	// (sync_wait.sql), for a manager made WithGalera.
	syncWait string
}

// withSyncWait puts q.syncWait before every statement but the DDL.
func (q *queries) withSyncWait() {
	for _, s := range []*string{&q.acquire, &q.acquireInTx, &q.extend, &q.extendBatch, &q.extendBatchHeld, &q.release,
		&q.get, &q.list, &q.peek, &q.proclaim, &q.enqueue, &q.dequeue, &q.guard,
		&q.prune, &q.pruneScan, &q.pruneFloor, &q.pruneDelete} {
		if *s != "" {
			*s = q.syncWait + *s
		}
	}
}

func renderQueries(spec *dialectSpec, quotedTable string) (queries, error) {
	var q queries
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"create_table.sql", &q.createTable},
		{"drop_table.sql", &q.dropTable},
		{"acquire.sql", &q.acquire},
		{"extend.sql", &q.extend},
		{"extend_batch.sql", &q.extendBatch},
		{"release.sql", &q.release},
		{"get.sql", &q.get},
		{"list.sql", &q.list},
		{"peek.sql", &q.peek},
		{"enqueue.sql", &q.enqueue},
		{"dequeue.sql", &q.dequeue},
		{"proclaim.sql", &q.proclaim},
		{"guard.sql", &q.guard},
	} {
		text, err := renderFile(spec, path.Join("schema", spec.dir, "queries", f.name), quotedTable)
		if err != nil {
			return queries{}, err
		}
		*f.dst = text
	}
	q.acquireInTx = q.acquire
	if spec.gapLocks {
		text, err := renderFile(spec, path.Join("schema", spec.dir, "queries", "acquire_in_tx.sql"), quotedTable)
		if err != nil {
			return queries{}, err
		}
		q.acquireInTx = text
	}
	pruneFiles := map[string]*string{"prune_scan.sql": &q.pruneScan, "prune_floor.sql": &q.pruneFloor, "prune_delete.sql": &q.pruneDelete}
	if spec.pruneInOne {
		pruneFiles = map[string]*string{"prune.sql": &q.prune}
	}
	for name, dst := range pruneFiles {
		text, err := renderFile(spec, path.Join("schema", spec.dir, "queries", name), quotedTable)
		if err != nil {
			return queries{}, err
		}
		*dst = text
	}
	if spec.notify {
		for name, dst := range map[string]*string{"release_notify.sql": &q.releaseNotify, "proclaim_notify.sql": &q.proclaimNotify} {
			text, err := renderFile(spec, path.Join("schema", spec.dir, "queries", name), quotedTable)
			if err != nil {
				return queries{}, err
			}
			*dst = text
		}
	}
	if spec.syncWait {
		// The prefix names no table.
		b, err := schemaFS.ReadFile(path.Join("schema", spec.dir, "queries", "sync_wait.sql"))
		if err != nil {
			return queries{}, fmt.Errorf("distrlock: embedded schema: %w", err)
		}
		q.syncWait = string(b)
	}
	if spec.pairList {
		text, err := renderFile(spec, path.Join("schema", spec.dir, "queries", "extend_batch_held.sql"), quotedTable)
		if err != nil {
			return queries{}, err
		}
		q.extendBatchHeld = text
		for name, text := range map[string]string{"extend_batch.sql": q.extendBatch, "extend_batch_held.sql": text} {
			if strings.Count(text, pairListMarker) != 1 {
				return queries{}, fmt.Errorf("distrlock: embedded schema: %s must hold %s once", name, pairListMarker)
			}
		}
	}
	return q, nil
}

// pairListMarker stands, in MySQL's batched statements, for the list of (key, token) pairs: it is sent with
// one "(?, ?)" per lock.
const pairListMarker = "((?, ?))"

// withPairList returns query with room for n pairs where its file has one.
func withPairList(query string, n int) string {
	var b strings.Builder
	b.Grow(len(query) + 8*n)
	before, after, _ := strings.Cut(query, pairListMarker)
	b.WriteString(before)
	b.WriteString("((?, ?)")
	for range n - 1 {
		b.WriteString(", (?, ?)")
	}
	b.WriteString(")")
	b.WriteString(after)
	return b.String()
}

// renderFile reads an embedded SQL file, written for DefaultTableName so that it runs as it stands, and
// puts the manager's validated, quoted table name in place of the default one.
func renderFile(spec *dialectSpec, name, quotedTable string) (string, error) {
	b, err := schemaFS.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("distrlock: embedded schema: %w", err)
	}
	text := string(b)
	quotedDefault := string(spec.quote) + DefaultTableName + string(spec.quote)
	if !strings.Contains(text, quotedDefault) {
		return "", fmt.Errorf("distrlock: embedded schema: %s does not name table %s", name, quotedDefault)
	}
	return strings.ReplaceAll(text, quotedDefault, quotedTable), nil
}
