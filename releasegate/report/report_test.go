package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"math"
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
	if last["candidate"] != nil || last["ratio"] != nil || last["ci_high"] != nil || last["verdict"] != "inconclusive" {
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
