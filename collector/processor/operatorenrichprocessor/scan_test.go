package operatorenrichprocessor

import (
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

const (
	tid   = "4bf92f3577b34da6a3ce929d0e0e4736"
	sid   = "00f067aa0ba902b7"
	ddTID = "0000000000000000" + "00f067aa0ba902b7" // 67667974448284343 zero-padded
	ddSID = "00f067aa0ba902b7"
	ddDec = "67667974448284343"
)

func hexOf(b []byte) string { return hex.EncodeToString(b) }

func TestScanTraceSpellings(t *testing.T) {
	tests := []struct {
		name, line          string
		wantTrace, wantSpan string
	}{
		{"trace_id", `{"trace_id":"` + tid + `","span_id":"` + sid + `"}`, tid, sid},
		{"traceId", `{"traceId":"` + tid + `","spanId":"` + sid + `"}`, tid, sid},
		{"traceID", `{"traceID":"` + tid + `","spanID":"` + sid + `"}`, tid, sid},
		{"trace.id", `{"trace.id":"` + tid + `","span.id":"` + sid + `"}`, tid, sid},
		{"trace nested", `{"trace":{"id":"` + tid + `"},"span":{"id":"` + sid + `"}}`, tid, sid},
		{"otelTraceID", `{"otelTraceID":"` + tid + `","otelSpanID":"` + sid + `"}`, tid, sid},
		{"dd dotted decimal", `{"dd.trace_id":"` + ddDec + `","dd.span_id":"` + ddDec + `"}`, ddTID, ddSID},
		{"dd number", `{"dd.trace_id":` + ddDec + `,"dd.span_id":` + ddDec + `}`, ddTID, ddSID},
		{"dd nested", `{"dd":{"trace_id":"` + ddDec + `","span_id":"` + ddDec + `"}}`, ddTID, ddSID},
		{"dd 128-bit hex", `{"dd.trace_id":"` + tid + `"}`, tid, ""},
		{"traceparent", `{"traceparent":"00-` + tid + `-` + sid + `-01"}`, tid, sid},
		{"nested otel", `{"otel":{"trace_id":"` + tid + `","span_id":"` + sid + `"}}`, tid, sid},
		{"uppercase normalised", `{"trace_id":"` + strings.ToUpper(tid) + `","span_id":"` + strings.ToUpper(sid) + `"}`, tid, sid},
		{"all-zero is absent", `{"trace_id":"00000000000000000000000000000000","span_id":"0000000000000000"}`, "", ""},
		{"wrong length", `{"trace_id":"` + tid[:31] + `","span_id":"` + sid + `0"}`, "", ""},
		{"not hex", `{"trace_id":"` + tid[:31] + `g"}`, "", ""},
		{"traceparent version ff", `{"traceparent":"ff-` + tid + `-` + sid + `-01"}`, "", ""},
		{"field beats traceparent", `{"traceparent":"00-` + strings.Repeat("1", 32) + `-` + strings.Repeat("2", 16) + `-01","trace_id":"` + tid + `","span_id":"` + sid + `"}`, tid, sid},
		{"dd zero", `{"dd.trace_id":"0"}`, "", ""},
		{"dd overflow", `{"dd.trace_id":"18446744073709551616"}`, "", ""},
		{"too deep not looked at", `{"a":{"b":{"trace_id":"` + tid + `"}}}`, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f fields
			if r := scanLine(tt.line, "reconcileID", &f); r != "" {
				t.Fatalf("reason %q for a valid line", r)
			}
			gotT, gotS := "", ""
			if f.traceRank != rankNone {
				gotT = traceHex(f.traceID, f.traceHex)
			}
			if f.spanRank != rankNone {
				gotS = spanHex(f.spanID, f.spanHex)
			}
			if gotT != tt.wantTrace || gotS != tt.wantSpan {
				t.Errorf("trace %q span %q, want %q %q", gotT, gotS, tt.wantTrace, tt.wantSpan)
			}
		})
	}
}

func TestScanControllerRuntimeLine(t *testing.T) {
	line := `{"level":"info","ts":"2024-05-01T10:00:00.123Z","logger":"controller.foo","msg":"Reconciling \"bar\"","controller":"foo","controllerGroup":"apps.example.com","controllerKind":"Foo","Foo":{"name":"bar","namespace":"default"},"namespace":"default","name":"bar","reconcileID":"6b3a0a5e-2d2c-4d7e-9c1e-9a3b1b1f2e11"}`
	var f fields
	if r := scanLine(line, "reconcileID", &f); r != "" {
		t.Fatalf("reason %q", r)
	}
	want := time.Date(2024, 5, 1, 10, 0, 0, 123e6, time.UTC).UnixNano()
	if !f.hasTS || f.ts != want {
		t.Errorf("ts = %d, want %d", f.ts, want)
	}
	if f.level != levelInfo || f.msg != `Reconciling "bar"` || f.controller != "foo" || f.reconcileID != "6b3a0a5e-2d2c-4d7e-9c1e-9a3b1b1f2e11" {
		t.Errorf("fields %+v", f)
	}
	if f.objectNamespace() != "default" || f.objectName() != "bar" {
		t.Errorf("object %q/%q", f.objectNamespace(), f.objectName())
	}

	// Only the nested "<Kind>" form (older controller-runtime).
	f = fields{}
	scanLine(`{"msg":"x","Pod":{"name":"p1","namespace":"ns1"},"other":{"name":"nope"}}`, "reconcileID", &f)
	if f.objectNamespace() != "ns1" || f.objectName() != "p1" {
		t.Errorf("nested kind object %q/%q", f.objectNamespace(), f.objectName())
	}
	// A custom correlation key.
	f = fields{}
	scanLine(`{"reconcile_id":"abc","reconcileID":"no"}`, "reconcile_id", &f)
	if f.reconcileID != "abc" {
		t.Errorf("custom key: %q", f.reconcileID)
	}
}

func TestScanLevels(t *testing.T) {
	tests := []struct {
		line string
		want level
	}{
		{`{"level":"debug"}`, levelDebug},
		{`{"level":"INFO"}`, levelInfo},
		{`{"level":"warn"}`, levelWarn},
		{`{"level":"warning"}`, levelWarn},
		{`{"level":"error"}`, levelError},
		{`{"level":"dpanic"}`, levelPanic},
		{`{"level":"panic"}`, levelPanic},
		{`{"level":"fatal"}`, levelFatal},
		{`{"level":"Level(-3)"}`, levelDebug},
		{`{"level":"Level(-2)"}`, levelDebug},
		{`{"level":-1}`, levelDebug},
		{`{"level":0}`, levelInfo},
		{`{"level":2}`, levelError},
		{`{"level":5}`, levelFatal},
		{`{"level":30}`, levelInfo},
		{`{"level":50}`, levelError},
		{`{"lvl":"eror"}`, levelError},
		{`{"severity":"WARNING"}`, levelWarn},
		{`{"level":"bogus"}`, levelUnknown},
		{`{"level":null}`, levelUnknown},
		{`{"ts":1,"caller":"x.go:1","msg":"m","v":0}`, levelInfo}, // klog JSON
		{`{"ts":1,"caller":"x.go:1","msg":"m","v":4}`, levelDebug},
		{`{"ts":1,"caller":"x.go:1","msg":"m","err":"boom"}`, levelError},
		{`{"msg":"no level"}`, levelUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			var f fields
			if r := scanLine(tt.line, "reconcileID", &f); r != "" {
				t.Fatalf("reason %q", r)
			}
			if got := f.resolvedLevel(); got != tt.want {
				t.Errorf("level %v, want %v", got, tt.want)
			}
		})
	}
}

func TestScanTimestamps(t *testing.T) {
	at := func(s string) int64 {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm.UnixNano()
	}
	tests := []struct {
		line string
		want int64 // 0 = none
	}{
		{`{"ts":1700000000.123456}`, 1700000000123456000},
		{`{"ts":1700000000}`, 1700000000e9},
		{`{"ts":"1700000000.5"}`, 1700000000500000000},
		{`{"ts":1700000000123}`, 1700000000123e6},        // ms
		{`{"ts":1.7000000001e+09}`, 1700000000100000000}, // exponent form
		{`{"time":"2024-02-29T23:59:59.999999999Z"}`, at("2024-02-29T23:59:59.999999999Z")},
		{`{"@timestamp":"2024-05-01T12:00:00+02:00"}`, at("2024-05-01T10:00:00Z")},
		{`{"timestamp":"2024-05-01T12:00:00.5-0130"}`, at("2024-05-01T13:30:00.5Z")}, // zap ISO8601
		{`{"ts":"2024-05-01 10:00:00"}`, at("2024-05-01T10:00:00Z")},
		{`{"ts":"2023-02-29T00:00:00Z"}`, 0}, // no such day
		{`{"ts":"yesterday"}`, 0},
		{`{"ts":true}`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			var f fields
			scanLine(tt.line, "reconcileID", &f)
			got := int64(0)
			if f.hasTS {
				got = f.ts
			}
			if d := got - tt.want; d > 1000 || d < -1000 { // float exponent form: µs precision
				t.Errorf("ts %d, want %d", got, tt.want)
			}
		})
	}
}

func TestKlogHeader(t *testing.T) {
	ref := time.Date(2025, 1, 1, 0, 10, 0, 0, time.UTC)
	tests := []struct {
		line   string
		ok     bool
		lvl    level
		wantTS time.Time
	}{
		{`I1231 23:59:58.123456       1 controller.go:120] "Reconciling" controller="foo" reconcileID="abc"`, true, levelInfo,
			time.Date(2024, 12, 31, 23, 59, 58, 123456000, time.UTC)}, // year boundary: last year
		{`E0101 00:05:00.000001   42 reflector.go:1] failed to list`, true, levelError, time.Date(2025, 1, 1, 0, 5, 0, 1000, time.UTC)},
		{`W0101 00:05:00.000001 1 x.go:1] w`, true, levelWarn, time.Date(2025, 1, 1, 0, 5, 0, 1000, time.UTC)},
		{`F0101 00:05:00.000001 1 x.go:1] f`, true, levelFatal, time.Date(2025, 1, 1, 0, 5, 0, 1000, time.UTC)},
		{`X0101 00:05:00.000001 1 x.go:1] f`, false, 0, time.Time{}},
		{`I1301 00:05:00.000001 1 x.go:1] f`, false, 0, time.Time{}},
		{`plain text`, false, 0, time.Time{}},
	}
	for _, tt := range tests {
		l, ts, ok := parseKlogHeader(tt.line, ref)
		if ok != tt.ok || (ok && (l != tt.lvl || ts != tt.wantTS.UnixNano())) {
			t.Errorf("%q: got %v %v %v, want %v %v %v", tt.line, l, time.Unix(0, ts).UTC(), ok, tt.lvl, tt.wantTS, tt.ok)
		}
	}
}

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

func TestUnescape(t *testing.T) {
	for _, s := range []string{`a\"b`, `\\n`, `\u00e9\n\t\/`, `\ud83d\ude00 smile`, `\ud83d alone`, `x\u0041`} {
		var want string
		if err := json.Unmarshal([]byte(`"`+s+`"`), &want); err != nil {
			t.Fatal(err)
		}
		if got := unescape(s); got != want {
			t.Errorf("unescape(%q) = %q, want %q", s, got, want)
		}
	}
}

func TestImageTag(t *testing.T) {
	tests := map[string]string{
		"ghcr.io/acme/op:v1.2.3": "v1.2.3",
		"registry:5000/acme/op:abc123@sha256:" + strings.Repeat("a", 64): "abc123",
		"registry:5000/acme/op":                                "",
		"op@sha256:0123456789abcdef" + strings.Repeat("0", 48): "0123456789ab",
		"": "",
	}
	for in, want := range tests {
		if got := imageTag(in); got != want {
			t.Errorf("imageTag(%q) = %q, want %q", in, got, want)
		}
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
		// but rejected by encoding/json.
		hasCtl := strings.ContainsFunc(line, func(r rune) bool { return r < 0x20 && r != ' ' && r != '\t' && r != '\n' && r != '\r' })
		if isObject && reason != "" {
			t.Fatalf("encoding/json accepts %q, scanner says %q", line, reason)
		}
		if !isObject && reason == "" && !hasCtl {
			t.Fatalf("encoding/json rejects %q (%v), scanner accepts it", line, err)
		}
	})
}

// FuzzNormaliseTraceID: whatever the input, an accepted id is 32/16 hex
// digits equal to the input ignoring case and never all-zero.
func FuzzNormaliseTraceID(f *testing.F) {
	f.Add(tid, sid, "00-"+tid+"-"+sid+"-01", ddDec)
	f.Add(strings.ToUpper(tid), "0000000000000000", "ff-"+tid+"-"+sid+"-01", "0")
	f.Fuzz(func(t *testing.T, trace, span, traceparent, dec string) {
		if id, lower, ok := parseTraceID(trace); ok {
			h := hexOf(id[:])
			if !strings.EqualFold(h, trace) || id.IsEmpty() || (lower && h != trace) {
				t.Fatalf("parseTraceID(%q) = %s lower=%v", trace, h, lower)
			}
		}
		if id, _, ok := parseSpanID(span); ok {
			if h := hexOf(id[:]); !strings.EqualFold(h, span) || id.IsEmpty() {
				t.Fatalf("parseSpanID(%q) = %s", span, h)
			}
		}
		if tr, sp, ok := parseTraceparent(traceparent); ok {
			if !strings.EqualFold(hexOf(tr[:]), traceparent[3:35]) || !strings.EqualFold(hexOf(sp[:]), traceparent[36:52]) || tr.IsEmpty() || sp.IsEmpty() {
				t.Fatalf("parseTraceparent(%q) = %x %x", traceparent, tr, sp)
			}
		}
		if id, ok := parseDatadogSpanID(dec); ok {
			if id.IsEmpty() || len(hexOf(id[:])) != 16 {
				t.Fatalf("parseDatadogSpanID(%q) = %x", dec, id)
			}
		}
		if id, ok := parseDatadogTraceID(dec); ok && len(dec) != 32 {
			if id.IsEmpty() || hexOf(id[:8]) != "0000000000000000" {
				t.Fatalf("parseDatadogTraceID(%q) = %x: decimal ids are 64-bit, zero-padded", dec, id)
			}
		}
	})
}

func TestScanKeyValues(t *testing.T) {
	tests := []struct {
		line                       string
		controller, reconcile, obj string
		lvl                        level
		trace                      string
	}{
		{`I0102 15:04:05.123456 1 controller.go:120] "Reconciling x=y" controller="foo" namespace="default" name="bar" reconcileID="r-1"`,
			"foo", "r-1", "default/bar", levelUnknown, ""},
		{`level=warn ts=2024-05-01T10:00:00Z msg="retry \"now\"" controller=foo reconcileID=r-2 trace_id=` + tid,
			"foo", "r-2", "/", levelWarn, tid},
		{`just text = not kv`, "", "", "/", levelUnknown, ""},
	}
	for _, tt := range tests {
		var f fields
		scanKeyValues(tt.line, &scanner{logKey: "reconcileID", f: &f})
		gotTrace := ""
		if f.traceRank != rankNone {
			gotTrace = traceHex(f.traceID, f.traceHex)
		}
		if f.controller != tt.controller || f.reconcileID != tt.reconcile || f.objectNamespace()+"/"+f.objectName() != tt.obj ||
			f.level != tt.lvl || gotTrace != tt.trace {
			t.Errorf("%q: %+v", tt.line, f)
		}
	}
}

func FuzzScanKeyValues(f *testing.F) {
	f.Add(`I0102 15:04:05.123456 1 c.go:1] "m" controller="foo" reconcileID="r"`)
	f.Add(`level=info msg="a=b" x==y "=" =`)
	f.Fuzz(func(t *testing.T, line string) {
		var fl fields
		scanKeyValues(line, &scanner{logKey: "reconcileID", f: &fl}) // must not panic
	})
}
