package operatorenrichprocessor

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestScanReasons(t *testing.T) {
	tests := []struct{ line, want string }{
		{`{"msg":"ok"}`, ""},
		{`  {"msg":"ok"}  `, ""},
		{``, reasonEmpty},
		{"   \t", reasonEmpty},
		{`plain text line`, reasonNotJSON},
		{`["array"]`, reasonNotJSON},
		{`{"msg":"ok"} trailing`, reasonNotJSON},
		{`{"msg" "x"}`, reasonNotJSON},
		{`{"msg":"bad \q escape"}`, reasonNotJSON},
		{`{"n":01}`, reasonNotJSON},
		{`{"msg":"cut`, reasonTruncatedJSON},
		{`{"msg":"ok","n":12`, reasonTruncatedJSON},
		{`{"a":{"b":[1,2`, reasonTruncatedJSON},
		{`{"a":tru`, reasonTruncatedJSON},
		{`{"a":"\u12`, reasonTruncatedJSON},
		{"{\"msg\":\"caf\xe9\"}", reasonInvalidUTF8},
		{"caf\xe9 not json", reasonInvalidUTF8},
		{"\x00\x01\x02binary", reasonBinary},
		{"\x01\x02\x03\x04ab", reasonBinary},
		{"\x1b[31mred\x1b[0m text", reasonNotJSON},
		{strings.Repeat("[", 300) + strings.Repeat("]", 300), reasonNotJSON},
		{`{"a":` + strings.Repeat("[", 300) + strings.Repeat("]", 300) + `}`, ""},            // deeper than maxDepth: still an object
		{`{"a":` + strings.Repeat("[", 300) + strings.Repeat("]", 299) + `}`, reasonNotJSON}, // deep and unbalanced
		{`{"a":` + strings.Repeat(`{"b":`, 300) + `1` + strings.Repeat("}", 300) + `}`, ""},  // deep objects
		{`{"a":` + strings.Repeat("[", 300) + `"x`, reasonTruncatedJSON},                     // deep and cut
		{"{\"msg\":\"a\x00b\"}", reasonBinary},                                               // raw NUL: JSON forbids it
		{`{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, ""},
	}
	for _, tt := range tests {
		var f fields
		if got := scanLine(tt.line, "reconcileID", &f); got != tt.want {
			t.Errorf("%q: reason %q, want %q", tt.line, got, tt.want)
		}
	}
	// Fields before the cut of a truncated line are still used.
	var f fields
	scanLine(`{"level":"error","reconcileID":"r1","msg":"long...`, "reconcileID", &f)
	if f.level != levelError || f.reconcileID != "r1" {
		t.Errorf("truncated line lost its early fields: %+v", f)
	}
}

// FuzzScanJSON: the scanner never panics, agrees with encoding/json on what
// is one JSON object (valid UTF-8 inputs, depth within limits), and every
// trace id it reports is valid.
func FuzzScanJSON(f *testing.F) {
	for _, s := range []string{
		`{"level":"info","ts":1700000000.5,"msg":"x","reconcileID":"r","trace_id":"` + tid + `"}`,
		`{"Foo":{"name":"a","namespace":"b"},"traceparent":"00-` + tid + `-` + sid + `-01"}`,
		`{"dd":{"trace_id":"123"},"a":[1,{"b":null}],"c":"\u00e9\"\\"}`,
		`{"msg":"cut`, `not json`, "", `{"level":"Level(-3)"}`, `{"a":-0.5e+3}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		var fl fields
		reason := scanLine(line, "reconcileID", &fl)
		if fl.traceRank != rankNone {
			if fl.traceID.IsEmpty() {
				t.Fatal("all-zero trace id reported")
			}
			if fl.traceHex != "" && fl.traceHex != hexOf(fl.traceID[:]) {
				t.Fatalf("traceHex %q disagrees with id", fl.traceHex)
			}
		}
		if fl.spanRank != rankNone && fl.spanID.IsEmpty() {
			t.Fatal("all-zero span id reported")
		}
		if !utf8.ValidString(line) || strings.Count(line, "[")+strings.Count(line, "{") > maxDepth {
			return
		}
		var obj map[string]json.RawMessage
		err := json.Unmarshal([]byte(line), &obj)
		isObject := err == nil && obj != nil && strings.TrimSpace(line)[0] == '{'
		// Raw control characters inside strings are tolerated by the scanner
		// but rejected by encoding/json. Tab, CR and LF are whitespace
		// between tokens but such characters inside a string, and this
		// oracle does not know where they stand: any of them exempts the line.
		hasCtl := strings.ContainsFunc(line, func(r rune) bool { return r < 0x20 })
		if isObject && reason != "" {
			t.Fatalf("encoding/json accepts %q, scanner says %q", line, reason)
		}
		if !isObject && reason == "" && !hasCtl {
			t.Fatalf("encoding/json rejects %q (%v), scanner accepts it", line, err)
		}
	})
}

// BenchmarkScanLine: classifying and routing benchLine alone, in this
// thread's CPU time (cpu-ns/line).
func BenchmarkScanLine(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	c0 := threadCPU()
	for b.Loop() {
		var f fields
		if r := scanLine(benchLine, "reconcileID", &f); r != "" || f.reconcileID == "" {
			b.Fatalf("reason %q", r)
		}
	}
	b.ReportMetric(float64(threadCPU()-c0)/float64(b.N), "cpu-ns/line")
}
