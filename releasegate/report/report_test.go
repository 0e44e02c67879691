package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/opsight/opsight/releasegate/gate"
	"github.com/opsight/opsight/releasegate/source"
	"github.com/opsight/opsight/releasegate/stats"
)

// sampleReport has one decided and one undecidable (no candidate spans)
// operation, so NaN and infinite values must survive every format.
func sampleReport(t *testing.T) *gate.Report {
	t.Helper()
	x := make([]float64, 1000)
	y := make([]float64, 1000)
	for i := range x {
		x[i] = 0.01 + float64(i)*1e-4
		y[i] = 2 * x[i]
	}
	res := &source.Result{Source: "test", Ops: []source.Op{
		{Service: "svc", Name: "Reconcile <a|b>", Baseline: source.Side{Durations: x, Count: 1000}, Candidate: source.Side{Durations: y, Count: 1000}},
		{Service: "svc", Name: "Only&Baseline", Baseline: source.Side{Hist: &stats.Histogram{Buckets: []stats.Bucket{{Lower: 0, Upper: 1, Count: 10}}}, Count: 10}},
	}}
	return gate.Evaluate(res, "v1", "v2", gate.Config{})
}

func TestJSONHasNoNaN(t *testing.T) {
	var b bytes.Buffer
	if err := JSON(&b, sampleReport(t)); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Verdict     string           `json:"verdict"`
		Comparisons []map[string]any `json:"comparisons"`
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if doc.Verdict != "fail" || len(doc.Comparisons) != 6 {
		t.Fatalf("verdict %s, %d comparisons", doc.Verdict, len(doc.Comparisons))
	}
	last := doc.Comparisons[5]
	if n, ok := last["n_needed"]; last["candidate"] != nil || last["ratio"] != nil || last["ci_high"] != nil || last["verdict"] != "inconclusive" || !ok || n != nil {
		t.Errorf("undecidable comparison: %v", last)
	}
}

func TestTextMarkdownJUnitSVG(t *testing.T) {
	r := sampleReport(t)
	var b bytes.Buffer
	if err := Text(&b, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"p99", "+100%", "fail", "verdict: fail (exit 1)", "no candidate spans"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	if err := Markdown(&b, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `Reconcile &lt;a\|b&gt;`) {
		t.Errorf("markdown does not escape table cells:\n%s", b.String())
	}
	b.Reset()
	if err := JUnit(&b, r); err != nil {
		t.Fatal(err)
	}
	var s struct {
		Tests, Failures, Skipped int `xml:",attr"`
	}
	if err := xml.Unmarshal(b.Bytes(), &s); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	b.Reset()
	if err := SVG(&b, r); err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(b.Bytes(), new(struct{})); err != nil || strings.Contains(b.String(), "NaN") {
		t.Errorf("svg invalid or has NaN: %v", err)
	}
}

func TestWriteUnknownFormat(t *testing.T) {
	if err := Write(&bytes.Buffer{}, "yaml", sampleReport(t)); err == nil || !strings.Contains(err.Error(), "expected one of") {
		t.Errorf("err %v", err)
	}
}

func TestDur(t *testing.T) {
	for in, want := range map[float64]string{0.1663: "166ms", 0.0505: "50.5ms", 2.5: "2.50s", 4e-4: "400µs", math.NaN(): "-"} {
		if got := Dur(in); got != want {
			t.Errorf("Dur(%v) = %s, want %s", in, got, want)
		}
	}
}

// Rows without a threshold carry the neutral verdict "context" in JSON and
// JUnit, never "pass".
func TestContextRows(t *testing.T) {
	r := sampleReport(t)
	var b bytes.Buffer
	if err := JSON(&b, r); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Comparisons []struct {
			Operation string  `json:"operation"`
			Quantile  float64 `json:"quantile"`
			Verdict   string  `json:"verdict"`
			Gating    bool    `json:"gating"`
		} `json:"comparisons"`
		Operations []struct {
			ErrorVerdict string `json:"error_verdict"`
			ErrorGating  bool   `json:"error_gating"`
		} `json:"operations"`
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	want := map[bool]map[string]bool{false: {"context": true}, true: {"pass": true, "fail": true, "inconclusive": true}}
	contexts := 0
	for _, c := range doc.Comparisons {
		if !want[c.Gating][c.Verdict] {
			t.Errorf("%s q%g: gating %v with verdict %q", c.Operation, c.Quantile, c.Gating, c.Verdict)
		}
		if c.Verdict == "context" {
			contexts++
		}
	}
	if contexts != 4 { // p50 and p90 of both operations
		t.Errorf("%d context rows, want 4", contexts)
	}
	for _, o := range doc.Operations {
		if !o.ErrorGating && o.ErrorVerdict != "context" {
			t.Errorf("non-gating error share with verdict %q", o.ErrorVerdict)
		}
	}

	b.Reset()
	if err := JUnit(&b, r); err != nil {
		t.Fatal(err)
	}
	var s struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Skipped  int `xml:"skipped,attr"`
		Suite    struct {
			Cases []struct {
				Name  string `xml:"name,attr"`
				Props []struct {
					Name  string `xml:"name,attr"`
					Value string `xml:"value,attr"`
				} `xml:"properties>property"`
				Failure   *struct{} `xml:"failure"`
				Skipped   *struct{} `xml:"skipped"`
				SystemOut string    `xml:"system-out"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b.Bytes(), &s); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if s.Tests != 6 || s.Failures != 1 || s.Skipped != 1 {
		t.Errorf("tests %d failures %d skipped %d", s.Tests, s.Failures, s.Skipped)
	}
	contexts = 0
	for i, c := range s.Suite.Cases {
		// verdict on every testcase; n_needed too on an inconclusive one
		// ("none" here: no candidate spans, so no ratio to plan from).
		want := []struct{ Name, Value string }{{"verdict", r.Comparisons[i].Verdict}}
		if r.Comparisons[i].Verdict == "inconclusive" {
			want = append(want, struct{ Name, Value string }{"n_needed", "none"})
		}
		got := make([]struct{ Name, Value string }, len(c.Props))
		for j, p := range c.Props {
			got[j] = struct{ Name, Value string }{p.Name, p.Value}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: properties %+v, want %+v", c.Name, got, want)
			continue
		}
		if c.Props[0].Value == "context" {
			contexts++
			if c.Failure != nil || c.Skipped != nil || !strings.HasPrefix(c.SystemOut, "context (not gating): ") {
				t.Errorf("context testcase %s: %+v", c.Name, c)
			}
		}
	}
	if contexts != 4 {
		t.Errorf("%d context testcases, want 4\n%s", contexts, b.String())
	}
}
