// Package readmecheck checks that the Go snippets of a README are the bodies of compiled Example functions,
// so that the README shows code that builds (and, where the example has an Output comment, whose output is
// checked). A snippet is marked in the README by the line
//
//	<!-- from ExampleName in path/to/example_test.go -->
//
// right before its ```go block.
package readmecheck

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"strings"
)

// Snippet is one marked README snippet.
type Snippet struct {
	Example, File, Body string
}

var marker = regexp.MustCompile("(?s)<!-- from (Example\\w*) in ([\\w./-]+) -->\n```go\n(.*?)```")

// Snippets returns the marked snippets of a README whose example lives in file (a path relative to the
// README, as the marker writes it).
func Snippets(readme []byte, file string) []Snippet {
	var out []Snippet
	for _, m := range marker.FindAllStringSubmatch(string(readme), -1) {
		if m[2] == file {
			out = append(out, Snippet{Example: m[1], File: m[2], Body: m[3]})
		}
	}
	return out
}

// ExampleBodies returns the body of each Example function of a Go file as a README shows it: without the
// braces, one tab less indented, and without the trailing Output comment.
func ExampleBodies(path string) (map[string]string, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, src, 0)
	if err != nil {
		return nil, err
	}
	bodies := map[string]string{}
	for _, decl := range f.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || !strings.HasPrefix(fn.Name.Name, "Example") {
			continue
		}
		// From the line after the opening brace to the line before the closing one.
		text := string(src[fset.Position(fn.Body.Lbrace).Offset+1 : fset.Position(fn.Body.Rbrace).Offset])
		text = strings.TrimPrefix(text, "\n")
		if i := strings.Index(text, "\t// Output:"); i >= 0 {
			text = text[:i]
		}
		var b strings.Builder
		for line := range strings.Lines(text) {
			b.WriteString(strings.TrimPrefix(line, "\t"))
		}
		bodies[fn.Name.Name] = strings.TrimRight(b.String(), "\n") + "\n"
	}
	return bodies, nil
}

// Check compares the README's snippets marked as coming from file with the examples in examplePath (the
// same file, as seen from the caller) and returns one error per snippet that differs or has no example,
// and an error if there are fewer than min snippets.
func Check(readme []byte, file, examplePath string, min int) []error {
	bodies, err := ExampleBodies(examplePath)
	if err != nil {
		return []error{err}
	}
	snippets := Snippets(readme, file)
	var errs []error
	if len(snippets) < min {
		errs = append(errs, fmt.Errorf("the README has %d snippets from %s, want at least %d", len(snippets), file, min))
	}
	for _, s := range snippets {
		body, ok := bodies[s.Example]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("the README shows %s, which %s does not define", s.Example, file))
		case s.Body != body:
			errs = append(errs, fmt.Errorf("the README's snippet of %s differs from its body in %s:\n--- README\n%s--- %s\n%s",
				s.Example, file, s.Body, file, body))
		}
	}
	return errs
}
