package readmecheck

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "example_test.go")
	src := "package x\n\nfunc ExampleA() {\n\tprintln(1)\n\t// Output: 1\n}\n"
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	good := []byte("<!-- from ExampleA in example_test.go -->\n```go\nprintln(1)\n```\n")
	if errs := Check(good, "example_test.go", file, 1); len(errs) != 0 {
		t.Errorf("matching snippet: %v", errs)
	}
	bad := []byte("<!-- from ExampleA in example_test.go -->\n```go\nprintln(2)\n```\n" +
		"<!-- from ExampleB in example_test.go -->\n```go\nprintln(1)\n```\n")
	if errs := Check(bad, "example_test.go", file, 1); len(errs) != 2 {
		t.Errorf("a differing snippet and a missing example: %d errors, want 2: %v", len(errs), errs)
	}
	if errs := Check(good, "other_test.go", file, 1); len(errs) != 1 {
		t.Errorf("no snippet of the file: %d errors, want 1", len(errs))
	}
}
