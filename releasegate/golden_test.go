package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/releasegate/source/tempotest"
)

// go test -run 'Golden|DocExamples' ./releasegate/ -update rewrites
// testdata/*.golden and the marked blocks of docs/releasegate.md from what
// the gate prints now; review the diff before committing it.
var update = flag.Bool("update", false, "rewrite testdata/*.golden and the golden blocks of docs/releasegate.md")

// demoDir holds `releasegate demo-data --out DIR` (seeded: the same files on
// every run), the fixed data behind the goldens and the documented example.
var demoDir = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "releasegate-golden-")
	if err != nil {
		return "", err
	}
	if code, out, errs := runCLI("demo-data", "--out", dir); code != conventions.ExitPass {
		return "", fmt.Errorf("demo-data: exit %d\n%s%s", code, out, errs)
	}
	return dir, nil
})

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if dir, err := demoDir(); err == nil {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// demoArgs runs the gate on the demo data, as the doc's example does.
func demoArgs(t *testing.T, extra ...string) []string {
	t.Helper()
	dir, err := demoDir()
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{"--otlp-file", filepath.Join(dir, "traces-*.jsonl"), "--baseline", "v1.4.0", "--candidate", "v1.5.0"}, extra...)
}

// The first 20 s of each revision's load: 201 spans, too few for p99.
var shortWindows = []string{"--baseline-window", "2026-11-25T18:00:00Z,2026-11-25T18:00:20Z",
	"--candidate-window", "2026-11-25T19:00:00Z,2026-11-25T19:00:20Z"}

// mixed gives one report every row kind: p50 pass, p90 inconclusive, p99
// context (no threshold), p99.9 fail.
var mixed = []string{"--span-kind", "server", "--quantiles", "0.5,0.9,0.99,0.999", "--threshold", "p50:+10%,p90:+5%,p99.9:+15%"}

// TestGolden compares what people read (the text in CI logs, the Markdown
// PR comment, the JSON and JUnit CI tools parse) with testdata/<name>.golden.
func TestGolden(t *testing.T) {
	tests := []struct {
		name string
		args []string
		exit int
	}{
		{"demo.txt", nil, conventions.ExitFail},
		{"mixed.txt", mixed, conventions.ExitFail},
		{"mixed.md", append(mixed, "--format", "markdown"), conventions.ExitFail},
		{"mixed.json", append(mixed, "--format", "json"), conventions.ExitFail},
		{"mixed.junit.xml", append(mixed, "--format", "junit"), conventions.ExitFail},
		{"pass.txt", []string{"--span-kind", "server", "--threshold", "p99:+100%"}, conventions.ExitPass},
		{"pass.md", []string{"--span-kind", "server", "--threshold", "p99:+100%", "--format", "markdown"}, conventions.ExitPass},
		{"inconclusive.txt", append([]string{"--span-kind", "server"}, shortWindows...), conventions.ExitInconclusive},
		{"inconclusive.md", append([]string{"--span-kind", "server", "--format", "markdown"}, shortWindows...), conventions.ExitInconclusive},
		{"inconclusive.junit.xml", append([]string{"--span-kind", "server", "--format", "junit"}, shortWindows...), conventions.ExitInconclusive},
		{"errors.txt", []string{"--span-kind", "server", "--gate-errors", "--error-threshold", "1%"}, conventions.ExitFail},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := runCLI(demoArgs(t, tc.args...)...)
			if code != tc.exit {
				t.Errorf("exit %d, want %d\n%s", code, tc.exit, stderr)
			}
			checkGolden(t, filepath.Join("testdata", tc.name), out)
		})
	}
}

// checkGolden compares got with the file, or rewrites it under -update.
func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if strings.HasSuffix(path, ".json") {
		// JSON carries full float64 precision: the last digits move with
		// the platform's floating point (FMA) and the special-function
		// library. Same document, numbers to 1e-9 relative.
		var w, g any
		if err := json.Unmarshal(want, &w); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if err := json.Unmarshal([]byte(got), &g); err != nil {
			t.Fatalf("output is not JSON: %v\n%s", err, got)
		}
		if where := jsonDiff("", w, g); where != "" {
			t.Errorf("output differs from %s at %s (run with -update to accept):\n%s", path, where, lineDiff(string(want), got))
		}
		return
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run with -update to accept):\n%s", path, lineDiff(string(want), got))
	}
}

// jsonDiff returns the path of the first difference between two decoded
// JSON documents, numbers compared to 1e-9 relative, or "".
func jsonDiff(at string, want, got any) string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok || len(g) != len(w) {
			return at
		}
		for k, v := range w {
			if d := jsonDiff(at+"."+k, v, g[k]); d != "" {
				return d
			}
		}
		return ""
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return at
		}
		for i := range w {
			if d := jsonDiff(fmt.Sprintf("%s[%d]", at, i), w[i], g[i]); d != "" {
				return d
			}
		}
		return ""
	case float64:
		g, ok := got.(float64)
		if !ok || math.Abs(g-w) > 1e-9*math.Max(math.Abs(w), math.Abs(g)) {
			return at
		}
		return ""
	}
	if want != got {
		return at
	}
	return ""
}

// lineDiff lists the lines that differ, prefixed - (want) and + (got).
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n-%s\n+%s\n", i+1, wl, gl)
		}
	}
	return b.String()
}

const docPath = "../docs/releasegate.md"

// goldenBlock matches a fenced block right after <!-- golden: name -->.
var goldenBlock = regexp.MustCompile("(?s)(<!-- golden: ([a-z0-9-]+) -->\n```[a-z]*\n)(.*?)```\n")

// TestDocExamples runs the commands docs/releasegate.md documents on the
// demo data and compares their output with the blocks marked
// <!-- golden: name --> there. The command line must appear in the doc too,
// so the doc cannot show one command and the output of another.
func TestDocExamples(t *testing.T) {
	win := fmt.Sprintf("%d,%d", tempotest.WindowStart, tempotest.WindowEnd)
	examples := map[string]struct {
		command string               // as the doc writes it
		run     func() (int, string) // the same command here: exit code and the text the doc shows
		exit    int
	}{
		"demo": {
			command: "bin/releasegate --otlp-file '/tmp/rg/traces-*.jsonl' --baseline v1.4.0 --candidate v1.5.0 --plot /tmp/rg/plot.svg",
			run: func() (int, string) {
				code, out, _ := runCLI(demoArgs(t, "--plot", filepath.Join(t.TempDir(), "plot.svg"))...)
				return code, out
			},
			exit: conventions.ExitFail,
		},
		// The error a Tempo search cap gives, on the replayed recording
		// (the doc's baseline window is the recording's).
		"tempo-cap": {
			command: "--baseline v1.4.0 --baseline-window 2026-12-01T13:05:42Z,2026-12-01T13:12:42Z",
			run: func() (int, string) {
				srv := tempotest.New(t, tempoDir, tempotest.Options{})
				code, _, stderr := runCLI("--tempo-url", srv.URL, "--service", "etcd-operator", "--span-name", "Reconcile",
					"--baseline", "v1.4.0", "--baseline-window", win, "--candidate", "v1.5.0", "--candidate-window", win,
					"--tempo-max-spans", "1000")
				return code, stderr
			},
			exit: conventions.ExitError,
		},
	}
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	updated := goldenBlock.ReplaceAllFunc(doc, func(block []byte) []byte {
		m := goldenBlock.FindSubmatch(block)
		open, name, want := m[1], string(m[2]), string(m[3])
		ex, ok := examples[name]
		if !ok {
			t.Errorf("%s: block <!-- golden: %s --> has no command in TestDocExamples", docPath, name)
			return block
		}
		found[name] = true
		if !bytes.Contains(doc, []byte(ex.command)) {
			t.Errorf("%s no longer shows the command %q behind <!-- golden: %s -->", docPath, ex.command, name)
		}
		code, got := ex.run()
		if code != ex.exit {
			t.Errorf("%s: exit %d, want %d\n%s", name, code, ex.exit, got)
		}
		if *update {
			return []byte(string(open) + got + "```\n")
		}
		if got != want {
			t.Errorf("%s: the example <!-- golden: %s --> differs from the real output (run with -update to rewrite it):\n%s",
				docPath, name, lineDiff(want, got))
		}
		return block
	})
	for name := range examples {
		if !found[name] {
			t.Errorf("%s has no block marked <!-- golden: %s -->", docPath, name)
		}
	}
	if *update && !bytes.Equal(updated, doc) {
		if err := os.WriteFile(docPath, updated, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
