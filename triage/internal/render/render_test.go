package render

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/opsight/opsight/triage/internal/analysis"
)

// TestJSONNonFinite: an estimate that cannot be made is null, and the
// output stays valid JSON (encoding/json would refuse NaN and infinity).
func TestJSONNonFinite(t *testing.T) {
	r := &analysis.Report{Service: "s", Operations: []analysis.Operation{{Span: "GET",
		Latency: []analysis.Estimate{{Measure: "p99", Baseline: math.NaN(), High: math.Inf(1), Low: 0.5}}}}}
	var b bytes.Buffer
	if err := JSON(&b, r); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b.String())
	}
	e := back["operations"].([]any)[0].(map[string]any)["latency"].([]any)[0].(map[string]any)
	if e["baseline"] != nil || e["high"] != nil || e["low"] != 0.5 {
		t.Errorf("estimate %v: want baseline and high null, low 0.5", e)
	}
	if back["findings"] == nil {
		t.Error("nil slices must be [] so readers need no null check")
	}
}

func TestWriteUnknownFormat(t *testing.T) {
	err := Write(&bytes.Buffer{}, &analysis.Report{}, "xml")
	if err == nil || !strings.Contains(err.Error(), "text, markdown or json") {
		t.Errorf("error %v", err)
	}
}
