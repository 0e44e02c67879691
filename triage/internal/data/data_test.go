package data

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/opsight/opsight/internal/conventions"
)

func TestReadSpansDemoOutput(t *testing.T) {
	// testdata/traces.jsonl: a line the sidecar's localfile exporter wrote
	// in `make demo` (trimmed to three spans).
	spans, err := ReadSpans([]string{filepath.Join("testdata", "traces.jsonl")})
	if err != nil {
		t.Fatal(err)
	}
	if len(spans) != 3 {
		t.Fatalf("%d spans, want 3", len(spans))
	}
	root, child := spans[0], spans[1]
	if root.Name != "Reconcile" || root.Kind != "SPAN_KIND_SERVER" || !root.Parent.IsZero() {
		t.Errorf("root %+v", root)
	}
	if child.Parent != root.ID || child.Trace != root.Trace || child.Kind != "SPAN_KIND_CLIENT" {
		t.Errorf("child %+v does not hang under root %+v", child, root)
	}
	r := root.Res
	if r.Service != "etcd-operator" || r.Revision != "v1.4.0" || r.Zone != "zone-1" || r.Pod != "etcd-operator-7c9f-baseline" || r.Namespace != "etcd-system" || r.Cluster != "demo" {
		t.Errorf("resource %+v", *r)
	}
	if spans[0].Res != spans[2].Res {
		t.Error("spans of one resource do not share it")
	}
	if d := root.Duration(); d <= 0 || d > 1 {
		t.Errorf("duration %v", d)
	}
}

func TestParseSpanLine(t *testing.T) {
	tests := []struct {
		name, line string
		spans      int
		err        string
	}{
		{"blank", "   ", 0, ""},
		{"empty request", `{"resourceSpans":[]}`, 0, ""},
		{"a log record", `{"level":"info","msg":"x"}`, 0, "resourceSpans"},
		{"not JSON", `{"resourceSpans":`, 0, "expect"},
		{"error status and ids", `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"s"}}]},"scopeSpans":[{"spans":[{"traceId":"000102030405060708090a0b0c0d0e0f","spanId":"0001020304050607","name":"n","kind":3,"startTimeUnixNano":"1","endTimeUnixNano":"2000000001","status":{"code":2}}]}]}]}`, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gs, err := ParseSpanLine([]byte(tt.line))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, g := range gs {
				n += len(g.spans)
				for _, s := range g.spans {
					if !s.Error || s.Kind != "SPAN_KIND_CLIENT" || s.Duration() != 2 || s.Trace.String() != "000102030405060708090a0b0c0d0e0f" {
						t.Errorf("span %+v", s)
					}
				}
			}
			if n != tt.spans {
				t.Errorf("%d spans, want %d", n, tt.spans)
			}
		})
	}
}

func TestParseLogLine(t *testing.T) {
	tests := []struct {
		name, line string
		want       Log
	}{
		{"joined line from the demo",
			`{"level":"error","ts":"2026-12-01T14:33:26.871828Z","msg":"Reconciler error","trace_id":"65493fc40caaab522e292d54ee1484fe","correlation":"join","risk":"object_modified_conflict,reconciler_error","revision":"v1.5.0","cluster":"demo","namespace":"etcd-system","pod":"p","service_name":"etcd-operator","zone":"zone-1"}`,
			Log{Level: "error", Time: time.Date(2026, 12, 1, 14, 33, 26, 871828000, time.UTC), Risk: []string{"object_modified_conflict", "reconciler_error"},
				Revision: "v1.5.0", Cluster: "demo", Namespace: "etcd-system", Pod: "p", Service: "etcd-operator", Zone: "zone-1"}},
		{"our field renamed where the line had its own",
			`{"namespace":"the-object-ns","revision":"line's","opsight.namespace":"etcd-system","opsight.revision":"v2","ts":1764599606.5}`,
			Log{Namespace: "etcd-system", Revision: "v2", Time: time.Unix(1764599606, 500000000).UTC()}},
		{"klog line dated by the year given",
			`{"line":"I1201 14:33:26.695780       1 leaderelection.go:258] successfully acquired lease","level":"info"}`,
			Log{Level: "info", Time: time.Date(2025, 12, 1, 14, 33, 26, 695780000, time.UTC)}},
		{"bad trace id kept absent", `{"trace_id":"xyz"}`, Log{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLogLine([]byte(tt.line), 2025)
			if err != nil {
				t.Fatal(err)
			}
			tt.want.Line = tt.line
			if got.Trace.IsZero() == (strings.Contains(tt.line, `"trace_id":"6549`)) {
				t.Errorf("trace id %s", got.Trace)
			}
			got.Trace = TraceID{}
			if got.Time != tt.want.Time || got.Level != tt.want.Level || strings.Join(got.Risk, ",") != strings.Join(tt.want.Risk, ",") ||
				got.Revision != tt.want.Revision || got.Namespace != tt.want.Namespace || got.Cluster != tt.want.Cluster ||
				got.Pod != tt.want.Pod || got.Service != tt.want.Service || got.Zone != tt.want.Zone {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
	if _, err := ParseLogLine([]byte("not json"), 0); err == nil {
		t.Error("a non-JSON line parsed")
	}
}

func TestReadLogsNamesTheLine(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "logs-1.ndjson")
	os.WriteFile(p, []byte("{\"level\":\"info\"}\n\nnot json\n"), 0o644)
	_, err := ReadLogs([]string{p})
	if err == nil || !strings.Contains(err.Error(), p+":3:") {
		t.Fatalf("error %v, want one naming %s:3", err, p)
	}
	logs, err := ReadLogs([]string{filepath.Join("testdata", "logs.ndjson")})
	if err != nil || len(logs) != 4 {
		t.Fatalf("%d records, %v", len(logs), err)
	}
}

func TestGlob(t *testing.T) {
	if _, err := Glob("--traces", []string{"/nonexistent/*.jsonl"}); err == nil || !strings.Contains(err.Error(), "make demo") {
		t.Errorf("error %v, want one that says how to make the files", err)
	}
	if _, err := Glob("--traces", []string{"["}); err == nil {
		t.Error("a bad glob passed")
	}
	files, err := Glob("--traces", []string{"testdata/*.jsonl", "testdata/traces.jsonl"})
	if err != nil || len(files) != 1 {
		t.Errorf("files %v, %v: want the one file once", files, err)
	}
}

func FuzzParseSpanLine(f *testing.F) {
	b, _ := os.ReadFile(filepath.Join("testdata", "traces.jsonl"))
	f.Add(b)
	f.Add([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		gs, err := ParseSpanLine(line)
		if err != nil && gs != nil {
			t.Fatal("groups returned with an error")
		}
		for _, g := range gs {
			for _, s := range g.spans {
				if s.Duration() < 0 {
					t.Fatalf("negative duration %v", s.Duration())
				}
			}
		}
	})
}

func FuzzParseLogLine(f *testing.F) {
	b, _ := os.ReadFile(filepath.Join("testdata", "logs.ndjson"))
	for _, l := range strings.Split(string(b), "\n") {
		f.Add([]byte(l))
	}
	f.Add([]byte(`{"ts":1e300,"line":"E9999 99:99:99.999999"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		l, err := ParseLogLine(line, 2026)
		if err != nil {
			return
		}
		if l.Line != string(line) {
			t.Fatal("the line is not kept as stored")
		}
		for _, r := range l.Risk {
			if strings.Contains(r, ",") {
				t.Fatalf("risk id %q holds a comma", r)
			}
		}
	})
}

func FuzzKlogTime(f *testing.F) {
	f.Add("I1201 14:33:26.695780       1 x.go:1] m")
	f.Add("W0229 00:00:00.000000 leap")
	f.Fuzz(func(t *testing.T, s string) {
		tm := KlogTime(s, 2024)
		if !tm.IsZero() && tm.Year() != 2024 && tm.Year() != 2025 {
			t.Fatalf("year %d from %q", tm.Year(), s)
		}
	})
}

// TestRecordNames keeps the NDJSON field names in step with the names the
// sidecar writes (CONVENTIONS.md, via internal/conventions).
func TestRecordNames(t *testing.T) {
	want := map[string]bool{"ts": true, "line": true}
	for _, n := range []string{conventions.LogLevel, conventions.LabelRevision, conventions.LabelNamespace, conventions.LabelCluster,
		conventions.LabelServiceName, conventions.LabelPod, conventions.MetaZone, conventions.LogRisk, conventions.LogTraceID} {
		want[n], want["opsight."+n] = true, true
	}
	rt := reflect.TypeOf(record{})
	if rt.NumField() != len(want) {
		t.Errorf("record has %d fields, want %d", rt.NumField(), len(want))
	}
	for i := 0; i < rt.NumField(); i++ {
		if tag := rt.Field(i).Tag.Get("json"); !want[tag] {
			t.Errorf("field %s reads %q, which the sidecar does not write", rt.Field(i).Name, tag)
		}
	}
}

// TestReadLogsOrderAndKlogYear: chunks decoded in parallel come back in
// file order, and a klog line takes the year of the record before it.
func TestReadLogsOrderAndKlogYear(t *testing.T) {
	var b strings.Builder
	start := time.Date(2024, 12, 31, 23, 0, 0, 0, time.UTC)
	const n = 3000
	for i := 0; i < n; i++ {
		if i == 2500 {
			b.WriteString(`{"line":"I1231 23:59:59.000000       1 x.go:1] klog line"}` + "\n")
			continue
		}
		fmt.Fprintf(&b, `{"level":"info","ts":%q,"msg":"m%d"}`+"\n", start.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano), i)
	}
	p := filepath.Join(t.TempDir(), "logs.ndjson")
	os.WriteFile(p, []byte(b.String()), 0o644)
	logs, err := ReadLogs([]string{p})
	if err != nil {
		t.Fatal(err)
	}
	if len(logs) != n {
		t.Fatalf("%d records, want %d", len(logs), n)
	}
	for i, l := range logs {
		if i == 2500 {
			if want := time.Date(2024, 12, 31, 23, 59, 59, 0, time.UTC); !l.Time.Equal(want) {
				t.Errorf("klog line dated %v, want %v", l.Time, want)
			}
			continue
		}
		if !strings.Contains(l.Line, fmt.Sprintf(`"msg":"m%d"`, i)) {
			t.Fatalf("record %d is %s: out of order", i, l.Line)
		}
	}
}
