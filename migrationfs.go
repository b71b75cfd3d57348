package distrlock

import (
	"bytes"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"
)

// GolangMigrateFS returns the manager's migrations in golang-migrate's layout, rendered for its table: a
// read-only [fs.FS] of {version}_{title}.up.sql and .down.sql files, for golang-migrate's iofs source with
// a version table of distrlock's own (see docs/migrations.md). The result is safe for concurrent use.
func (m *DBManager) GolangMigrateFS() fs.FS {
	return m.renderDir(path.Join("schema", m.spec.dir), "*.sql")
}

// GooseFS returns the manager's migrations in goose's layout, rendered for its table: a read-only [fs.FS] of
// {version}_{title}.sql files, for goose.NewProvider with a version table of distrlock's own (see
// docs/migrations.md). The result is safe for concurrent use.
func (m *DBManager) GooseFS() fs.FS {
	return m.renderDir(path.Join("schema", "goose", m.spec.dir), "*.sql")
}

// renderDir renders the files of one embedded folder that match pattern into a flat in-memory file system.
func (m *DBManager) renderDir(dir, pattern string) fs.FS {
	names, err := fs.Glob(schemaFS, path.Join(dir, pattern))
	if err != nil || len(names) == 0 {
		// The files are embedded and checked by the tests: a build defect, not a runtime condition.
		panic("distrlock: embedded schema: no migrations in " + dir)
	}
	files := make(memFS, len(names))
	for _, name := range names {
		text, err := renderFile(m.spec, name, m.quoted)
		if err != nil {
			panic(err)
		}
		files[path.Base(name)] = []byte(text)
	}
	return files
}

// memFS is a flat, read-only, in-memory file system: file names without folders, and the root ".".
type memFS map[string][]byte

var (
	_ fs.ReadDirFS  = memFS(nil)
	_ fs.ReadFileFS = memFS(nil)
)

func (f memFS) Open(name string) (fs.File, error) {
	if name == "." {
		entries, _ := f.ReadDir(".")
		return &memDir{entries: entries}, nil
	}
	b, ok := f[name]
	if !ok || !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return &memFile{name: name, Reader: bytes.NewReader(b), size: int64(len(b))}, nil
}

func (f memFS) ReadFile(name string) ([]byte, error) {
	b, ok := f[name]
	if !ok || name == "." || !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrNotExist}
	}
	return bytes.Clone(b), nil
}

func (f memFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if name != "." {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	entries := make([]fs.DirEntry, 0, len(f))
	for n, b := range f {
		entries = append(entries, fs.FileInfoToDirEntry(memInfo{name: n, size: int64(len(b))}))
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return entries, nil
}

// memFile is an open file of a memFS.
type memFile struct {
	name string
	*bytes.Reader
	size int64
}

func (f *memFile) Stat() (fs.FileInfo, error) { return memInfo{name: f.name, size: f.size}, nil }
func (f *memFile) Close() error               { return nil }

// memDir is the open root of a memFS.
type memDir struct {
	entries []fs.DirEntry
	read    int
}

func (d *memDir) Stat() (fs.FileInfo, error) { return memInfo{name: ".", dir: true}, nil }
func (d *memDir) Close() error               { return nil }
func (d *memDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: ".", Err: fs.ErrInvalid}
}

func (d *memDir) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.read:]
	if n <= 0 {
		d.read = len(d.entries)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	rest = rest[:min(n, len(rest))]
	d.read += len(rest)
	return rest, nil
}

// memInfo describes a file or the root of a memFS.
type memInfo struct {
	name string
	size int64
	dir  bool
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return i.dir }
func (i memInfo) Sys() any           { return nil }
func (i memInfo) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}
