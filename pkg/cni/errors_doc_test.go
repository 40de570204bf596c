package cni

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/constant"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// errorsDoc is the operators' page of every error, which this test keeps honest.
const errorsDoc = "../../docs/errors.md"

// cniTypesPath is the CNI library's package of the spec's error codes.
const cniTypesPath = "github.com/containernetworking/cni/pkg/types"

// TestErrorsDocumented fails when the plugin can return a CNI error code or a coded
// message that docs/errors.md does not document. It type-checks this package's
// source and finds every code (each withCode call's constant, each types.Error
// literal's Code, every Err* constant of the CNI types package used, every Code*
// constant declared) and every message that carries a code (each configError
// format, each fmt.Errorf format that withCode tags, and each fmt.Errorf format
// that a typed error of a package the plugin builds on wraps, where codeOf maps
// that type to a code: those packages are type-checked too). The doc's CNI section must
// have a row in its code table for each code and none for another; and, for each
// message, a table row whose first cell quotes it as a code span, the fixed text
// exactly and <…> (or "<…>" for %q) where a verb stands, and whose second cell gives
// the message's code.
func TestErrorsDocumented(t *testing.T) {
	l := newLoader(t)
	target := l.check(t, l.target.ImportPath, l.target.Dir, l.target.GoFiles)
	found, err := extractErrors(target)
	if err != nil {
		t.Fatal(err)
	}
	// The typed errors that codeOf maps are made in the packages that declare them.
	for _, path := range found.typedPackages() {
		if path == target.pkg.Path() {
			continue
		}
		lp, ok := l.listed[path]
		if !ok {
			t.Fatalf("codeOf maps an error type of %s, which go list does not list as a dependency", path)
		}
		before := len(found.msgs)
		if err := found.extractTyped(l.check(t, lp.ImportPath, lp.Dir, lp.GoFiles)); err != nil {
			t.Fatal(err)
		}
		if len(found.msgs) == before {
			t.Fatalf("found no coded message in %s, whose error types codeOf maps: the extraction is broken", path)
		}
	}
	if len(found.codes) < 5 || len(found.msgs) < 20 {
		t.Fatalf("found %d codes and %d coded messages: the extraction is broken", len(found.codes), len(found.msgs))
	}
	doc, err := os.ReadFile(errorsDoc)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range checkDoc(string(doc), found) {
		t.Error(p)
	}
}

// TestErrorsDocCheckFindsGaps shows that the check fails for an error that the doc
// does not document: a new configError, a new typed error that codeOf maps, a new
// code, a code documented wrong.
func TestErrorsDocCheckFindsGaps(t *testing.T) {
	const src = `package p

import "fmt"

const (
	CodeInvalidConfig = 7
	CodeLocked        = 11
	CodeBusy          = 101
)

type codedError struct{ err error }

func (e *codedError) Error() string { return e.err.Error() }

func withCode(code uint, err error) error { return &codedError{err} }

func configError(format string, args ...any) error {
	return withCode(CodeInvalidConfig, fmt.Errorf(format, args...))
}

type lockedError struct{ Err error }

func (e *lockedError) Error() string { return e.Err.Error() }

func codeOf(err error) (uint, bool) {
	switch err.(type) {
	case *lockedError:
		return CodeLocked, true
	}
	return 0, false
}

func f(n int, s string) error {
	if n > 0 {
		return configError("\"vlan\" %d is out of range", n)
	}
	if s != "" {
		return configError("%q: new key nobody documented", s)
	}
	switch s {
	case "locked":
		return &lockedError{Err: fmt.Errorf("VF %s is locked", s)}
	case "lock":
		return &lockedError{fmt.Errorf("lock %s: nobody documented it", s)}
	}
	return withCode(CodeBusy, fmt.Errorf("VF %s is busy", s))
}
`
	const doc = "## The CNI plugin\n\n### Error codes\n\n| code | meaning |\n|---|---|\n| 7 | refused |\n| 11 | try again |\n\n" +
		"### Config\n\n| message | code |\n|---|---|\n| `\"vlan\" <n> is out of range` | 7 |\n| `VF <addr> is busy` | 11 |\n| `VF <addr> is locked` | 11 |\n\n" +
		"## Another part\n\n| `\"<key>\": new key nobody documented` | 7 |\n"
	l := newLoader(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.go"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	found, err := extractErrors(l.check(t, "p", dir, []string{"p.go"}))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(checkDoc(doc, found), "\n")
	for _, want := range []string{
		"no row for CNI error code 101",
		`"%q: new key nobody documented" (code 7`,  // outside the CNI section: not found
		`"VF %s is busy" (code 101`,                // its row gives 11
		`"lock %s: nobody documented it" (code 11`, // a typed error that codeOf maps
	} {
		if !strings.Contains(got, want) {
			t.Errorf("checkDoc() does not report %s; it reports:\n%s", want, got)
		}
	}
	for _, documented := range []string{"is out of range", "is locked"} {
		if strings.Contains(got, documented) {
			t.Errorf("checkDoc() reports a documented message:\n%s", got)
		}
	}
}

// listedPackage is what go list says of a package.
type listedPackage struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Export     string
}

// loader type-checks source against the compiler's export data of this package's
// dependencies, as go list -export finds them.
type loader struct {
	fset   *token.FileSet
	export map[string]string        // import path → export data file
	listed map[string]listedPackage // import path → this package and its dependencies
	target listedPackage            // this package
}

func newLoader(t *testing.T) *loader {
	t.Helper()
	cmd := exec.Command("go", "list", "-export", "-deps", "-json=ImportPath,Dir,GoFiles,Export", ".")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -export: %v: %s", err, stderr.Bytes())
	}
	l := &loader{fset: token.NewFileSet(), export: map[string]string{}, listed: map[string]listedPackage{}}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p listedPackage
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("go list -export: %v", err)
		}
		l.export[p.ImportPath] = p.Export
		l.listed[p.ImportPath] = p
		l.target = p // -deps lists the package itself last
	}
	return l
}

// checked is a type-checked package.
type checked struct {
	fset  *token.FileSet
	pkg   *types.Package
	files []*ast.File
	info  *types.Info
}

// check parses and type-checks the files of dir as the package path.
func (l *loader) check(t *testing.T, path, dir string, names []string) *checked {
	t.Helper()
	var files []*ast.File
	for _, n := range names {
		f, err := parser.ParseFile(l.fset, filepath.Join(dir, n), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	imp := importer.ForCompiler(l.fset, "gc", func(path string) (io.ReadCloser, error) {
		p, ok := l.export[path]
		if !ok || p == "" {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(p)
	})
	info := &types.Info{Types: map[ast.Expr]types.TypeAndValue{}, Uses: map[*ast.Ident]types.Object{}, Defs: map[*ast.Ident]types.Object{}}
	pkg, err := (&types.Config{Importer: imp}).Check(path, l.fset, files, info)
	if err != nil {
		t.Fatalf("type-check %s: %v", dir, err)
	}
	return &checked{fset: l.fset, pkg: pkg, files: files, info: info}
}

// pos is the position of n, file:line:column with the file's base name.
func (c *checked) pos(n ast.Node) string { return shortPos(c.fset, n.Pos()) }

// callee is the function or method that call calls, nil when it is not a named one.
func (c *checked) callee(call *ast.CallExpr) types.Object {
	switch fn := ast.Unparen(call.Fun).(type) {
	case *ast.Ident:
		return c.info.Uses[fn]
	case *ast.SelectorExpr:
		return c.info.Uses[fn.Sel]
	}
	return nil
}

func (c *checked) constUint(e ast.Expr) (uint64, bool) {
	tv := c.info.Types[e]
	if tv.Value == nil {
		return 0, false
	}
	return constant.Uint64Val(constant.ToInt(tv.Value))
}

func (c *checked) constString(e ast.Expr) (string, bool) {
	tv := c.info.Types[e]
	if tv.Value == nil || tv.Value.Kind() != constant.String {
		return "", false
	}
	return constant.StringVal(tv.Value), true
}

// errorf returns e as a call of fmt.Errorf.
func (c *checked) errorf(e ast.Expr) (*ast.CallExpr, bool) {
	call, ok := ast.Unparen(e).(*ast.CallExpr)
	if !ok {
		return nil, false
	}
	fn, ok := c.callee(call).(*types.Func)
	return call, ok && fn.Pkg() != nil && fn.Pkg().Path() == "fmt" && fn.Name() == "Errorf"
}

// typeKey names a named type, or the type a pointer points to, across type-checks:
// "<package path>.<name>"; "" for any other type.
func typeKey(t types.Type) string {
	if p, ok := types.Unalias(t).(*types.Pointer); ok {
		t = p.Elem()
	}
	named, ok := types.Unalias(t).(*types.Named)
	if !ok || named.Obj().Pkg() == nil {
		return ""
	}
	return named.Obj().Pkg().Path() + "." + named.Obj().Name()
}

// codedMsg is a message format that reaches the runtime with a code.
type codedMsg struct {
	format string
	code   uint64
}

// foundErrors is what extractErrors finds, each with where it was found.
type foundErrors struct {
	codes map[uint64]string
	msgs  map[codedMsg]string
	// typed maps each error type that codeOf gives a constant code (typeKey) to it.
	typed map[string]uint64
}

// typedPackages lists the packages that declare the error types of f.typed.
func (f *foundErrors) typedPackages() []string {
	var out []string
	for key := range f.typed {
		path := key[:strings.LastIndex(key, ".")]
		if !slices.Contains(out, path) {
			out = append(out, path)
		}
	}
	slices.Sort(out)
	return out
}

// extractErrors finds the codes and coded messages of a type-checked package that
// has functions withCode(code uint, err error), configError(format string, ...)
// and codeOf(err error) (uint, bool), this one a type switch.
func extractErrors(c *checked) (*foundErrors, error) {
	scope := c.pkg.Scope()
	withCode, _ := scope.Lookup("withCode").(*types.Func)
	configError, _ := scope.Lookup("configError").(*types.Func)
	codeOf, _ := scope.Lookup("codeOf").(*types.Func)
	if withCode == nil || configError == nil || codeOf == nil {
		return nil, fmt.Errorf("package %s has no func withCode, configError or codeOf: update %s", c.pkg.Path(), "errors_doc_test.go")
	}
	f := &foundErrors{codes: map[uint64]string{}, msgs: map[codedMsg]string{}, typed: map[string]uint64{}}
	for _, name := range scope.Names() {
		if k, ok := scope.Lookup(name).(*types.Const); ok && strings.HasPrefix(name, "Code") {
			if v, ok := constant.Uint64Val(k.Val()); ok {
				f.codes[v] = name + " at " + shortPos(c.fset, k.Pos())
			}
		}
	}
	configDecl, configCode := c.configErrorCode(configError, withCode)
	if configCode == 0 {
		return nil, fmt.Errorf("configError does not call withCode with a constant code")
	}
	if err := f.codeOfTypes(c, codeOf); err != nil {
		return nil, err
	}
	var errs []string
	for _, file := range c.files {
		ast.Inspect(file, func(n ast.Node) bool {
			if n == configDecl {
				return false // its fmt.Errorf has the caller's format
			}
			if p := f.inspectCoded(c, n, withCode, configError, configCode); p != "" {
				errs = append(errs, p)
			}
			return true
		})
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("messages the doc cannot quote:\n%s", strings.Join(errs, "\n"))
	}
	return f, f.extractTyped(c)
}

// configErrorCode returns configError's declaration and the code its own withCode
// call gives (0 when it gives no constant one).
func (c *checked) configErrorCode(configError, withCode *types.Func) (*ast.FuncDecl, uint64) {
	var decl *ast.FuncDecl
	for _, file := range c.files {
		for _, d := range file.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && c.info.Defs[fd.Name] == configError {
				decl = fd
			}
		}
	}
	var code uint64
	if decl != nil {
		ast.Inspect(decl, func(n ast.Node) bool {
			if call, ok := n.(*ast.CallExpr); ok && c.callee(call) == withCode {
				code, _ = c.constUint(call.Args[0])
			}
			return true
		})
	}
	return decl, code
}

// codeOfTypes records the error types of codeOf's type switch whose case returns a
// constant code.
func (f *foundErrors) codeOfTypes(c *checked, codeOf *types.Func) error {
	var decl *ast.FuncDecl
	for _, file := range c.files {
		for _, d := range file.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && c.info.Defs[fd.Name] == codeOf {
				decl = fd
			}
		}
	}
	if decl == nil {
		return fmt.Errorf("no declaration of codeOf")
	}
	ast.Inspect(decl, func(n ast.Node) bool {
		clause, ok := n.(*ast.CaseClause)
		if !ok || len(clause.Body) == 0 {
			return true
		}
		ret, ok := clause.Body[len(clause.Body)-1].(*ast.ReturnStmt)
		if !ok || len(ret.Results) == 0 {
			return true
		}
		code, ok := c.constUint(ret.Results[0])
		if !ok {
			return true // codedError's own code
		}
		for _, e := range clause.List {
			if key := typeKey(c.info.Types[e].Type); key != "" {
				f.typed[key] = code
				if _, ok := f.codes[code]; !ok {
					f.codes[code] = "codeOf at " + c.pos(e)
				}
			}
		}
		return true
	})
	if len(f.typed) == 0 {
		return fmt.Errorf("codeOf at %s maps no error type to a constant code", c.pos(decl))
	}
	return nil
}

// inspectCoded records what node n of the plugin's package says of codes and coded
// messages; it returns a problem that keeps the doc from quoting a message.
func (f *foundErrors) inspectCoded(c *checked, n ast.Node, withCode, configError *types.Func, configCode uint64) string {
	switch n := n.(type) {
	case *ast.CallExpr:
		switch c.callee(n) {
		case withCode:
			code, ok := c.constUint(n.Args[0])
			if !ok {
				return c.pos(n) + ": withCode's code is not a constant"
			}
			f.codes[code] = "withCode at " + c.pos(n)
			if call, ok := c.errorf(n.Args[1]); ok {
				format, ok := c.constString(call.Args[0])
				if !ok {
					return c.pos(n) + ": fmt.Errorf's format is not a constant"
				}
				f.msgs[codedMsg{format, code}] = c.pos(n)
			}
		case configError:
			format, ok := c.constString(n.Args[0])
			if !ok {
				return c.pos(n) + ": configError's format is not a constant"
			}
			f.msgs[codedMsg{format, configCode}] = c.pos(n)
		}
	case *ast.CompositeLit:
		if typeKey(c.info.Types[n].Type) == cniTypesPath+".Error" {
			for _, el := range n.Elts {
				if kv, ok := el.(*ast.KeyValueExpr); ok {
					if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Code" {
						if code, ok := c.constUint(kv.Value); ok {
							f.codes[code] = "types.Error at " + c.pos(n)
						}
					}
				}
			}
		}
	case *ast.Ident:
		if k, ok := c.info.Uses[n].(*types.Const); ok && k.Pkg() != nil && k.Pkg().Path() == cniTypesPath && strings.HasPrefix(k.Name(), "Err") {
			if v, ok := constant.Uint64Val(k.Val()); ok {
				f.codes[v] = "types." + k.Name() + " at " + c.pos(n)
			}
		}
	}
	return ""
}

// extractTyped records the messages of package c's typed errors: each fmt.Errorf
// among the values of a composite literal of a type that codeOf maps, or of a
// literal among them (an embedded type that holds the error), with that type's
// code.
func (f *foundErrors) extractTyped(c *checked) error {
	var errs []string
	for _, file := range c.files {
		ast.Inspect(file, func(n ast.Node) bool {
			lit, ok := n.(*ast.CompositeLit)
			if !ok {
				return true
			}
			code, ok := f.typed[typeKey(c.info.Types[lit].Type)]
			if !ok {
				return true
			}
			elts := slices.Clone(lit.Elts)
			for i := 0; i < len(elts); i++ {
				el := elts[i]
				if kv, ok := el.(*ast.KeyValueExpr); ok {
					el = kv.Value
				}
				if inner, ok := el.(*ast.CompositeLit); ok {
					elts = append(elts, inner.Elts...)
					continue
				}
				call, ok := c.errorf(el)
				if !ok {
					continue
				}
				if format, ok := c.constString(call.Args[0]); ok {
					f.msgs[codedMsg{format, code}] = c.pos(lit)
				} else {
					errs = append(errs, c.pos(lit)+": fmt.Errorf's format is not a constant")
				}
			}
			return true
		})
	}
	if len(errs) > 0 {
		return fmt.Errorf("messages the doc cannot quote:\n%s", strings.Join(errs, "\n"))
	}
	return nil
}

// checkDoc returns every way in which doc fails to document f: see
// TestErrorsDocumented.
func checkDoc(doc string, f *foundErrors) []string {
	section := markdownSection(doc, "## ", "CNI plugin")
	if section == "" {
		return []string{"no \"## … CNI plugin …\" section"}
	}
	codeTable := markdownSection(section, "### ", "Error codes")
	documented := map[uint64]bool{}
	for _, row := range tableRows(codeTable) {
		if n, err := strconv.ParseUint(strings.TrimSpace(row[0]), 10, 32); err == nil {
			documented[n] = true
		}
	}
	var problems []string
	for _, code := range slices.Sorted(maps.Keys(f.codes)) {
		if !documented[code] {
			problems = append(problems, fmt.Sprintf("%s: no row for CNI error code %d (%s) in the table under \"### Error codes\"", errorsDoc, code, f.codes[code]))
		}
	}
	for _, code := range slices.Sorted(maps.Keys(documented)) {
		if _, ok := f.codes[code]; !ok {
			problems = append(problems, fmt.Sprintf("%s: a row for CNI error code %d, which the plugin neither returns nor declares", errorsDoc, code))
		}
	}
	rows := tableRows(strings.Replace(section, codeTable, "", 1))
	msgs := slices.SortedFunc(maps.Keys(f.msgs), func(a, b codedMsg) int { return strings.Compare(a.format, b.format) })
	for _, m := range msgs {
		re := formatRegexp(m.format)
		var quoted []string // the code cells of the rows that quote it
		for _, row := range rows {
			if len(row) < 2 {
				continue
			}
			if slices.ContainsFunc(codeSpans(row[0]), re.MatchString) {
				quoted = append(quoted, row[1])
			}
		}
		word := regexp.MustCompile(`\b` + strconv.FormatUint(m.code, 10) + `\b`)
		switch {
		case len(quoted) == 0:
			problems = append(problems, fmt.Sprintf("%s: no row quotes %q (code %d, %s): add one to the CNI section, the message as a code span with <…> for each verb", errorsDoc, m.format, m.code, f.msgs[m]))
		case !slices.ContainsFunc(quoted, word.MatchString):
			problems = append(problems, fmt.Sprintf("%s: the row of %q (code %d, %s) gives the code as %q", errorsDoc, m.format, m.code, f.msgs[m], quoted))
		}
	}
	return problems
}

// shortPos is file:line:column with the file's base name.
func shortPos(fset *token.FileSet, p token.Pos) string {
	pos := fset.Position(p)
	pos.Filename = filepath.Base(pos.Filename)
	return pos.String()
}

// markdownSection returns the lines from the first heading of the given depth
// ("## " or "### ") that contains title, up to the next heading of that depth or
// less. Lines of fenced code blocks are never headings.
func markdownSection(doc, level, title string) string {
	depth := strings.Count(level, "#")
	var out []string
	in, fenced := false, false
	for line := range strings.SplitSeq(doc, "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
		}
		hashes := len(line) - len(strings.TrimLeft(line, "#"))
		if !fenced && hashes > 0 && hashes <= depth && strings.HasPrefix(line[hashes:], " ") {
			if in {
				break
			}
			in = hashes == depth && strings.Contains(line, title)
		}
		if in {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// tableRows returns the cells of every row of every Markdown table in s, header
// rows included, delimiter rows not. A '|' inside a code span does not split cells.
func tableRows(s string) [][]string {
	var rows [][]string
	for line := range strings.SplitSeq(s, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") || strings.Trim(line, "|-: ") == "" {
			continue
		}
		var cells []string
		var cell strings.Builder
		fence := 0 // length of the backtick run that opened the current code span
		for i := 1; i < len(line); i++ {
			c := line[i]
			switch {
			case c == '`':
				n := 1
				for i+n < len(line) && line[i+n] == '`' {
					n++
				}
				if fence == 0 {
					fence = n
				} else if n == fence {
					fence = 0
				}
				cell.WriteString(line[i : i+n])
				i += n - 1
			case c == '\\' && i+1 < len(line) && line[i+1] == '|' && fence == 0:
				cell.WriteByte('|')
				i++
			case c == '|' && fence == 0:
				cells = append(cells, cell.String())
				cell.Reset()
			default:
				cell.WriteByte(c)
			}
		}
		rows = append(rows, cells)
	}
	return rows
}

// codeSpans returns the contents of the Markdown code spans of s.
func codeSpans(s string) []string {
	var out []string
	for i := 0; i < len(s); i++ {
		if s[i] != '`' {
			continue
		}
		n := 1
		for i+n < len(s) && s[i+n] == '`' {
			n++
		}
		fence := s[i : i+n]
		end := strings.Index(s[i+n:], fence)
		if end < 0 {
			break
		}
		span := s[i+n : i+n+end]
		if len(span) > 2 && span[0] == ' ' && span[len(span)-1] == ' ' {
			span = span[1 : len(span)-1]
		}
		out = append(out, span)
		i += n + end + n - 1
	}
	return out
}

// formatRegexp matches what a doc quotes for a fmt format: its text as is, each %q
// as a quoted placeholder, any other verb as any text.
func formatRegexp(format string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	verb := regexp.MustCompile(`^%[-+# 0]*(\[\d+\])?(\d+|\*)?(\.(\d+|\*)?)?([a-zA-Z%])`)
	lit := 0
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		m := verb.FindStringSubmatch(format[i:])
		if m == nil {
			continue
		}
		b.WriteString(regexp.QuoteMeta(format[lit:i]))
		switch m[5] {
		case "%":
			b.WriteString("%")
		case "q":
			b.WriteString(`".+?"`)
		default:
			b.WriteString(".+?")
		}
		i += len(m[0]) - 1
		lit = i + 1
	}
	b.WriteString(regexp.QuoteMeta(format[lit:]))
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}
