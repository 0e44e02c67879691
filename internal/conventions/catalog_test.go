package conventions

import (
	"go/ast"
	"go/constant"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"strings"
	"testing"
)

// packageConstants type-checks this package's non-test files and returns its
// exported string and int constants by name.
func packageConstants(t *testing.T) map[string]constant.Value {
	t.Helper()
	fset := token.NewFileSet()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, e.Name(), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	pkg, err := new(types.Config).Check("conventions", fset, files, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]constant.Value{}
	for _, name := range pkg.Scope().Names() {
		if c, ok := pkg.Scope().Lookup(name).(*types.Const); ok && c.Exported() {
			out[name] = c.Val()
		}
	}
	return out
}

// TestCatalogListsEveryName: every Metric*, Env*, Verdict*, Exit* and
// Dashboard* constant appears in the catalogue docs/conventions.md is
// generated from, so a new name cannot reach users undocumented.
func TestCatalogListsEveryName(t *testing.T) {
	metrics := map[string]bool{}
	for _, set := range [][]Metric{SpanMetrics, SidecarMetrics, OperatorMetrics} {
		for _, m := range set {
			if metrics[m.Name] {
				t.Errorf("metric %s is listed twice", m.Name)
			}
			metrics[m.Name] = true
		}
	}
	env := map[string]bool{}
	for _, e := range EnvSettings {
		if env[e.Name] {
			t.Errorf("variable %s is listed twice", e.Name)
		}
		env[e.Name] = true
	}
	verdicts := map[string]bool{}
	exits := map[int64]bool{int64(ExitError): true}
	for _, v := range Verdicts {
		verdicts[v.Name] = true
		exits[int64(v.ExitCode)] = true
	}
	uids := map[string]bool{}
	for _, d := range Dashboards {
		uids[d.UID] = true
	}
	str := func(v constant.Value) string { return constant.StringVal(v) }
	checked := 0
	for name, v := range packageConstants(t) {
		var ok bool
		switch {
		case strings.HasPrefix(name, "Metric"):
			ok = metrics[str(v)]
		case strings.HasPrefix(name, "Env"):
			ok = env[str(v)]
		case strings.HasPrefix(name, "Verdict"):
			ok = verdicts[str(v)]
		case strings.HasPrefix(name, "Exit") && v.Kind() == constant.Int:
			n, _ := constant.Int64Val(v)
			ok = exits[n]
		case strings.HasPrefix(name, "Dashboard"):
			ok = uids[str(v)]
		default:
			continue
		}
		checked++
		if !ok {
			t.Errorf("%s = %s is not in the catalogue (catalog.go): add it so docs/conventions.md documents it", name, v)
		}
	}
	if checked < 40 {
		t.Errorf("checked only %d constants: the prefixes no longer match names.go", checked)
	}
}

// TestCatalogLabelsMatchComments: names.go and operator.go note a metric's
// labels in a trailing comment ("// exporter, reason"); the catalogue must
// list the same labels, in the same order.
func TestCatalogLabelsMatchComments(t *testing.T) {
	labels := map[string][]string{}
	for _, set := range [][]Metric{SpanMetrics, SidecarMetrics, OperatorMetrics} {
		for _, m := range set {
			labels[m.Name] = m.Labels
		}
	}
	consts := packageConstants(t)
	fset := token.NewFileSet()
	for _, file := range []string{"names.go", "operator.go"} {
		f, err := parser.ParseFile(fset, file, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok || vs.Comment == nil || len(vs.Names) != 1 || !strings.HasPrefix(vs.Names[0].Name, "Metric") {
				return true
			}
			comment := strings.TrimSpace(vs.Comment.Text())
			if !isLabelList(comment) {
				return true
			}
			name := constant.StringVal(consts[vs.Names[0].Name])
			if got := strings.Join(labels[name], ", "); got != comment {
				t.Errorf("%s: %s notes labels %q, the catalogue lists %q", name, file, comment, got)
			}
			return true
		})
	}
}

// isLabelList reports whether a comment is a bare list of label names.
func isLabelList(s string) bool {
	for _, l := range strings.Split(s, ", ") {
		if l == "" || strings.Trim(l, "abcdefghijklmnopqrstuvwxyz_") != "" {
			return false
		}
	}
	return true
}
