// Package house holds tests of the code base itself, not of what it does: rules a
// newcomer relies on when reading it.
package house

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// maxFuncLines is the longest a function of the shipped code may be, from its func
// line to its closing brace. A longer one does several things: give each a name.
const maxFuncLines = 80

// TestShortFunctions fails on every function over maxFuncLines lines in the code
// that ships: every .go file but tests, test/ and internal/ (test helpers), and
// testdata.
func TestShortFunctions(t *testing.T) {
	root := moduleRoot(t)
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			if skipDir(rel, d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		files++
		for _, f := range longFuncs(t, path) {
			t.Errorf("%s:%d: %s is %d lines, over %d: split it into named steps", filepath.ToSlash(rel), f.line, f.name, f.lines, maxFuncLines)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatalf("no Go files found under %s", root)
	}
}

// skipDir reports whether the directory rel (relative to the module root), whose
// base is name, holds no shipped code.
func skipDir(rel, name string) bool {
	switch {
	case rel == ".":
		return false
	case rel == "test" || rel == "internal":
		return true
	case name == "testdata" || name == "vendor":
		return true
	case strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_"):
		return true // ignored by the go command
	}
	return false
}

// longFunc is a function over maxFuncLines lines.
type longFunc struct {
	name  string
	line  int // of its func keyword
	lines int
}

func longFuncs(t *testing.T, path string) []longFunc {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var long []longFunc
	for _, decl := range f.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Body == nil {
			continue
		}
		first, last := fset.Position(fn.Pos()).Line, fset.Position(fn.End()).Line
		if n := last - first + 1; n > maxFuncLines {
			long = append(long, longFunc{name: funcName(fn), line: first, lines: n})
		}
	}
	return long
}

// funcName names a function as a reader searches for it: "Discover",
// "(*Manager).Run", "checker.selector".
func funcName(fn *ast.FuncDecl) string {
	if fn.Recv == nil || len(fn.Recv.List) == 0 {
		return fn.Name.Name
	}
	typ := fn.Recv.List[0].Type
	star := false
	if s, ok := typ.(*ast.StarExpr); ok {
		typ, star = s.X, true
	}
	switch x := typ.(type) { // generic receivers: T[K] or T[K, V]
	case *ast.IndexExpr:
		typ = x.X
	case *ast.IndexListExpr:
		typ = x.X
	}
	recv := "?"
	if id, ok := typ.(*ast.Ident); ok {
		recv = id.Name
	}
	if star {
		return "(*" + recv + ")." + fn.Name.Name
	}
	return recv + "." + fn.Name.Name
}

// moduleRoot is the directory of go.mod, above the test's working directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}
