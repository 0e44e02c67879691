package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/opsight/opsight/internal/conventions"
)

// writeTraces writes n Reconcile spans per revision as OTLP JSON lines
// (500 spans per export request), durations drawn by dur.
func writeTraces(t *testing.T, path string, n int, revs map[string]func(r *rand.Rand) float64) {
	t.Helper()
	r := rand.New(rand.NewPCG(42, 43))
	var out bytes.Buffer
	t0 := time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)
	for _, rev := range []string{"v1.4.0", "v1.5.0"} {
		dur := revs[rev]
		for k := 0; k < n; k += 500 {
			td := ptrace.NewTraces()
			rs := td.ResourceSpans().AppendEmpty()
			rs.Resource().Attributes().PutStr(conventions.AttrServiceName, "etcd-operator")
			rs.Resource().Attributes().PutStr(conventions.AttrServiceVersion, rev)
			ss := rs.ScopeSpans().AppendEmpty().Spans()
			for i := k; i < k+500 && i < n; i++ {
				sp := ss.AppendEmpty()
				sp.SetName("Reconcile")
				sp.SetKind(ptrace.SpanKindServer)
				start := t0.Add(time.Duration(i) * 100 * time.Millisecond)
				sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
				sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(dur(r) * 1e9))))
				if r.Float64() < 0.02 {
					sp.Status().SetCode(ptrace.StatusCodeError)
				}
			}
			b, err := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
			if err != nil {
				t.Fatal(err)
			}
			out.Write(b)
			out.WriteByte('\n')
		}
	}
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func logn(f float64) func(r *rand.Rand) float64 {
	return func(r *rand.Rand) float64 { return f * 0.05 * math.Exp(0.5*r.NormFloat64()) }
}

func slowTail(r *rand.Rand) float64 {
	x := 0.05 * math.Exp(0.5*r.NormFloat64())
	if r.Float64() < 0.05 {
		x *= 3
	}
	return x
}

func runCLI(args ...string) (int, string, string) {
	var o, e bytes.Buffer
	code := run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestBadFlags(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "traces.jsonl")
	writeTraces(t, f, 10, map[string]func(*rand.Rand) float64{"v1.4.0": logn(1), "v1.5.0": logn(1)})
	base := []string{"--otlp-file", f, "--baseline", "v1.4.0", "--candidate", "v1.5.0"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no baseline", []string{"--otlp-file", f}, "--baseline is required"},
		{"no candidate", []string{"--otlp-file", f, "--baseline", "a"}, "--candidate is required"},
		{"same revisions", []string{"--otlp-file", f, "--baseline", "a", "--candidate", "a"}, "expected two different revisions"},
		{"threshold without %", append(base, "--threshold", "p99:15"), `--threshold "p99:15"`},
		{"threshold bad quantile", append(base, "--threshold", "p100:+15%"), "is not a quantile"},
		{"bad quantiles", append(base, "--quantiles", "0.5,1.5"), "--quantiles"},
		{"bad format", append(base, "--format", "yaml"), `--format "yaml": expected one of text, json, markdown, junit`},
		{"bad span kind", append(base, "--span-kind", "sideways"), "--span-kind"},
		{"bad window", append(base, "--baseline-window", "yesterday"), "--baseline-window"},
		{"window end before start", append(base, "--baseline-window", "2026-11-25T18:00:00Z,2026-11-25T17:00:00Z"), "end must be after start"},
		{"bad alpha", append(base, "--alpha", "0.7"), "--alpha"},
		{"bad error threshold", append(base, "--error-threshold", "2pp"), `--error-threshold "2pp"`},
		{"unknown flag", append(base, "--frobnicate"), "frobnicate"},
		{"no source", []string{"--baseline", "a", "--candidate", "b"}, "no source"},
		{"two sources", append(base, "--tempo-url", "http://x"), "several sources"},
		{"prometheus needs windows", []string{"--prometheus-url", "http://127.0.0.1:1", "--baseline", "a", "--candidate", "b"}, "--baseline-window and --candidate-window"},
		{"bad header", append(base, "--header", "nocolon"), "--header"},
		{"bad source", append(base, "--source", "loki"), `--source "loki"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(tc.args...)
			if code != conventions.ExitError {
				t.Errorf("exit %d, want %d", code, conventions.ExitError)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q does not mention %q", stderr, tc.want)
			}
		})
	}
}

func TestSourceErrors(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "traces.jsonl")
	writeTraces(t, f, 10, map[string]func(*rand.Rand) float64{"v1.4.0": logn(1), "v1.5.0": logn(1)})
	win := "2026-11-25T18:00:00Z,2026-11-25T18:10:00Z"
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unreachable prometheus", []string{"--prometheus-url", "http://127.0.0.1:1", "--baseline", "a", "--candidate", "b", "--baseline-window", win, "--candidate-window", win}, "prometheus unreachable"},
		{"unreachable tempo", []string{"--tempo-url", "http://127.0.0.1:1", "--baseline", "a", "--candidate", "b", "--baseline-window", win, "--candidate-window", win}, "tempo unreachable"},
		{"empty selection: unknown revision", []string{"--otlp-file", f, "--baseline", "v1.4.0", "--candidate", "v9"}, `empty selection: no spans for candidate revision "v9"`},
		{"empty selection: unknown service", []string{"--otlp-file", f, "--service", "nope", "--baseline", "v1.4.0", "--candidate", "v1.5.0"}, "empty selection: no spans for service=nope"},
		{"missing file", []string{"--otlp-file", filepath.Join(dir, "none-*.jsonl"), "--baseline", "a", "--candidate", "b"}, "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(tc.args...)
			if code != conventions.ExitError || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d stderr %q, want %d and %q", code, stderr, conventions.ExitError, tc.want)
			}
		})
	}
}

func TestVerdictsEndToEnd(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "regression.jsonl")
	same := filepath.Join(dir, "same.jsonl")
	small := filepath.Join(dir, "small.jsonl")
	writeTraces(t, reg, 3000, map[string]func(*rand.Rand) float64{"v1.4.0": logn(1), "v1.5.0": slowTail})
	writeTraces(t, same, 3000, map[string]func(*rand.Rand) float64{"v1.4.0": logn(1), "v1.5.0": logn(1)})
	writeTraces(t, small, 100, map[string]func(*rand.Rand) float64{"v1.4.0": logn(1), "v1.5.0": logn(2)})
	revs := []string{"--baseline", "v1.4.0", "--candidate", "v1.5.0"}

	t.Run("regression fails with exit 1", func(t *testing.T) {
		svg := filepath.Join(dir, "plot.svg")
		code, out, stderr := runCLI(append([]string{"--otlp-file", reg, "--plot", svg}, revs...)...)
		t.Logf("\n%s%s", out, stderr)
		if code != conventions.ExitFail {
			t.Fatalf("exit %d, want 1", code)
		}
		for _, want := range []string{"Reconcile", "p99", "fail", "verdict: fail (exit 1)", "(context)"} {
			if !strings.Contains(out, want) {
				t.Errorf("text output lacks %q", want)
			}
		}
		b, err := os.ReadFile(svg)
		if err != nil {
			t.Fatal(err)
		}
		if err := xml.Unmarshal(b, new(struct{})); err != nil || !bytes.Contains(b, []byte("<polyline")) {
			t.Errorf("plot is not an SVG with curves: %v", err)
		}
	})
	t.Run("json fields", func(t *testing.T) {
		code, out, _ := runCLI(append([]string{"--otlp-file", reg, "--format", "json"}, revs...)...)
		if code != conventions.ExitFail {
			t.Fatalf("exit %d", code)
		}
		var doc struct {
			Verdict     string           `json:"verdict"`
			Comparisons []map[string]any `json:"comparisons"`
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if doc.Verdict != "fail" || len(doc.Comparisons) != 3 {
			t.Fatalf("verdict %q, %d comparisons", doc.Verdict, len(doc.Comparisons))
		}
		for _, k := range []string{"service", "operation", "quantile", "baseline", "candidate", "ratio", "ci_low", "ci_high", "n_baseline", "n_candidate", "verdict", "reason"} {
			if _, ok := doc.Comparisons[2][k]; !ok {
				t.Errorf("comparison lacks %q", k)
			}
		}
		c := doc.Comparisons[2]
		if c["quantile"] != 0.99 || c["verdict"] != "fail" || c["n_baseline"] != 3000.0 || c["ci_low"].(float64) <= 1.15 {
			t.Errorf("p99 comparison %v", c)
		}
	})
	t.Run("junit", func(t *testing.T) {
		_, out, _ := runCLI(append([]string{"--otlp-file", small, "--format", "junit", "--threshold", "p99:+15%,p50:+10%"}, revs...)...)
		var s struct {
			Tests    int `xml:"tests,attr"`
			Failures int `xml:"failures,attr"`
			Skipped  int `xml:"skipped,attr"`
			Suite    struct {
				Cases []struct {
					Name    string    `xml:"name,attr"`
					Failure *struct{} `xml:"failure"`
					Skipped *struct {
						Message string `xml:"message,attr"`
					} `xml:"skipped"`
				} `xml:"testcase"`
			} `xml:"testsuite"`
		}
		if err := xml.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		// n=100 with doubled latency: p50 is decidable (fail), p99 is not (skipped).
		if s.Tests != 3 || s.Failures != 1 || s.Skipped != 1 {
			t.Errorf("tests %d failures %d skipped %d\n%s", s.Tests, s.Failures, s.Skipped, out)
		}
		for _, c := range s.Suite.Cases {
			if c.Name == "Reconcile p99" && (c.Skipped == nil || !strings.Contains(c.Skipped.Message, "too few spans")) {
				t.Errorf("p99 testcase %+v", c)
			}
		}
	})
	t.Run("markdown", func(t *testing.T) {
		_, out, _ := runCLI(append([]string{"--otlp-file", reg, "--format", "markdown"}, revs...)...)
		if !strings.Contains(out, "### Release gate: **FAIL**") || !strings.Contains(out, "| Reconcile") && !strings.Contains(out, "| etcd-operator Reconcile") {
			t.Errorf("markdown:\n%s", out)
		}
	})
	t.Run("same latency passes with exit 0", func(t *testing.T) {
		code, out, _ := runCLI(append([]string{"--otlp-file", same}, revs...)...)
		if code != conventions.ExitPass {
			t.Errorf("exit %d\n%s", code, out)
		}
	})
	t.Run("too few spans is inconclusive, exit 2", func(t *testing.T) {
		code, out, _ := runCLI(append([]string{"--otlp-file", small}, revs...)...)
		if code != conventions.ExitInconclusive || !strings.Contains(out, "too few spans") || !strings.Contains(out, "~") {
			t.Errorf("exit %d\n%s", code, out)
		}
		code, _, _ = runCLI(append([]string{"--otlp-file", small, "--inconclusive-as-pass"}, revs...)...)
		if code != conventions.ExitPass {
			t.Errorf("--inconclusive-as-pass: exit %d", code)
		}
	})
}

func TestTempoEndToEnd(t *testing.T) {
	fix := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("source", "testdata", "tempo", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query().Get("q")
		switch {
		case strings.Contains(q, "histogram_over_time"):
			w.Write(fix("instant_histogram_by_version.json"))
		case strings.Contains(q, "quantile_over_time"):
			w.Write(fix("instant_quantiles_by_version_and_name.json"))
		default:
			w.Write(fix("instant_count_by_version.json"))
		}
	}))
	defer srv.Close()
	win := "1795630492,1795630792"
	code, out, stderr := runCLI("--tempo-url", srv.URL, "--service", "etcd-operator", "--span-name", "Reconcile",
		"--baseline", "v1.4.0", "--candidate", "v1.5.0", "--baseline-window", win, "--candidate-window", win, "--format", "json")
	// truth.json: p99 rose from 0.167 s to 0.264 s (+59%), but both sit in the
	// same power-of-two bucket, so Tempo's data cannot decide it.
	if code != conventions.ExitInconclusive {
		t.Fatalf("exit %d\n%s\n%s", code, out, stderr)
	}
	if !strings.Contains(out, "resolution factor 2") || !strings.Contains(out, "bucket resolution at p99 is x2.00") ||
		!strings.Contains(out, "tempo's own quantile_over_time: 0.2131s -> 0.2661s") {
		t.Errorf("the factor-2 resolution is not stated:\n%s", out)
	}
}

func TestDemoAndBench(t *testing.T) {
	dir := t.TempDir()
	if code, out, errs := runCLI("demo-data", "--out", dir, "--spans", "2000"); code != 0 {
		t.Fatalf("demo-data: %d %s %s", code, out, errs)
	}
	// The documented example: the demo's slow tail fails the gate.
	code, out, _ := runCLI("--otlp-file", filepath.Join(dir, "traces-*.jsonl"), "--baseline", "v1.4.0", "--candidate", "v1.5.0", "--span-kind", "server")
	if code != conventions.ExitFail || !strings.Contains(out, "Reconcile") || strings.Contains(out, "GET /apis") {
		t.Errorf("demo gate: exit %d\n%s", code, out)
	}
	if code, out, errs := runCLI("bench", "--spans", "80000"); code != 0 || !strings.Contains(out, "compared 80000 spans") {
		t.Errorf("bench: %d %s %s", code, out, errs)
	}
	if code, _, errs := runCLI("demo-data"); code != conventions.ExitError || !strings.Contains(errs, "--out") {
		t.Errorf("demo-data without --out: %d %s", code, errs)
	}
}
