package source

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/opsight/opsight/internal/conventions"
)

type testSpan struct {
	svc, ver, name string
	kind           ptrace.SpanKind
	start          time.Time
	dur            time.Duration
	err            bool
}

// exportLine encodes spans as one OTLP JSON export request, as the
// collector's file exporter writes it (one resource per service/version).
func exportLine(t testing.TB, spans []testSpan) []byte {
	t.Helper()
	td := ptrace.NewTraces()
	res := map[[2]string]ptrace.SpanSlice{}
	for i, s := range spans {
		k := [2]string{s.svc, s.ver}
		ss, ok := res[k]
		if !ok {
			rs := td.ResourceSpans().AppendEmpty()
			rs.Resource().Attributes().PutStr(conventions.AttrServiceName, s.svc)
			rs.Resource().Attributes().PutStr(conventions.AttrServiceVersion, s.ver)
			ss = rs.ScopeSpans().AppendEmpty().Spans()
			res[k] = ss
		}
		sp := ss.AppendEmpty()
		sp.SetName(s.name)
		sp.SetKind(s.kind)
		sp.SetTraceID(pcommon.TraceID([16]byte{1, byte(i >> 8), byte(i)}))
		sp.SetSpanID(pcommon.SpanID([8]byte{2, byte(i >> 8), byte(i)}))
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(s.start))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(s.start.Add(s.dur)))
		if s.err {
			sp.Status().SetCode(ptrace.StatusCodeError)
		}
	}
	b, err := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeLines(t testing.TB, path string, lines ...[]byte) {
	t.Helper()
	if err := os.WriteFile(path, append(bytes.Join(lines, []byte("\n")), '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

var t0 = time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)

func TestOTLPFileFetch(t *testing.T) {
	dir := t.TempDir()
	var a, b []testSpan
	for i := 0; i < 100; i++ {
		a = append(a, testSpan{"etcd-operator", "v1.4.0", "Reconcile", ptrace.SpanKindServer, t0.Add(time.Duration(i) * time.Second), time.Duration(10+i) * time.Millisecond, i%10 == 0})
		b = append(b, testSpan{"etcd-operator", "v1.5.0", "Reconcile", ptrace.SpanKindServer, t0.Add(time.Hour + time.Duration(i)*time.Second), time.Duration(20+i) * time.Millisecond, i%5 == 0})
		// Noise the query must drop: another service, another kind, another revision.
		a = append(a, testSpan{"other", "v1.4.0", "Reconcile", ptrace.SpanKindServer, t0, time.Second, false})
		a = append(a, testSpan{"etcd-operator", "v1.4.0", "GET", ptrace.SpanKindClient, t0, time.Second, false})
		b = append(b, testSpan{"etcd-operator", "v0.9.0", "Reconcile", ptrace.SpanKindServer, t0, time.Second, false})
	}
	writeLines(t, filepath.Join(dir, "traces-1.jsonl"), exportLine(t, a[:150]), []byte(""), exportLine(t, a[150:]))
	writeLines(t, filepath.Join(dir, "traces-2.jsonl"), exportLine(t, b))

	q := Query{Service: "etcd-operator", SpanKind: "SPAN_KIND_SERVER",
		Baseline: Revision{Name: "v1.4.0"}, Candidate: Revision{Name: "v1.5.0"}}
	src := &OTLPFile{Patterns: []string{filepath.Join(dir, "traces-*.jsonl")}}
	res, err := src.Fetch(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Ops) != 1 || res.Ops[0].Name != "Reconcile" {
		t.Fatalf("ops: %+v", res.Ops)
	}
	op := res.Ops[0]
	if op.Baseline.Count != 100 || op.Candidate.Count != 100 || op.Baseline.Errors != 10 || op.Candidate.Errors != 20 {
		t.Errorf("counts %v/%v errors %v/%v", op.Baseline.Count, op.Candidate.Count, op.Baseline.Errors, op.Candidate.Errors)
	}
	if got := op.Baseline.Durations[0]; got < 0.0099999 || got > 0.0100001 {
		t.Errorf("smallest baseline duration %v, want 0.010", got)
	}
	if got := op.Candidate.Durations[99]; got < 0.1189999 || got > 0.1190001 {
		t.Errorf("largest candidate duration %v, want 0.119", got)
	}
	// Throughput window: from the first start to the last end of the revision's spans.
	if w := res.BaselineWindow; !w.Start.Equal(t0) || !w.End.Equal(t0.Add(99*time.Second+109*time.Millisecond)) {
		t.Errorf("baseline window %v", w)
	}

	// A window keeps only spans starting inside it.
	q.Baseline.Window = Window{Start: t0.Add(50 * time.Second), End: t0.Add(59 * time.Second)}
	q.SpanNames = []string{"Reconcile"}
	res, err = src.Fetch(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	if n := res.Ops[0].Baseline.Count; n != 10 {
		t.Errorf("windowed baseline count %v, want 10", n)
	}
}

func TestOTLPFileErrors(t *testing.T) {
	dir := t.TempDir()
	good := exportLine(t, []testSpan{{"s", "a", "x", ptrace.SpanKindServer, t0, time.Millisecond, false}})
	writeLines(t, filepath.Join(dir, "bad.jsonl"), good, []byte(`{"resourceSpans": [`))
	writeLines(t, filepath.Join(dir, "good.jsonl"), good)
	q := Query{Baseline: Revision{Name: "a"}, Candidate: Revision{Name: "b"}}
	tests := []struct {
		name     string
		patterns []string
		want     string
		empty    bool
	}{
		{"bad line names file and line", []string{filepath.Join(dir, "bad.jsonl")}, "bad.jsonl:2: not an OTLP JSON", false},
		{"missing file", []string{filepath.Join(dir, "nope-*.jsonl")}, "no such file", false},
		{"no patterns", nil, "no files given", false},
		{"candidate revision absent", []string{filepath.Join(dir, "good.jsonl")}, `no spans for candidate revision "b"`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := (&OTLPFile{Patterns: tc.patterns}).Fetch(context.Background(), q)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if errors.Is(err, ErrEmpty) != tc.empty {
				t.Errorf("errors.Is(ErrEmpty) = %v", !tc.empty)
			}
		})
	}
}

func TestReadLineLong(t *testing.T) {
	// Lines far beyond bufio's buffer (big export batches) must come back whole.
	var spans []testSpan
	for i := 0; i < 20000; i++ {
		spans = append(spans, testSpan{"s", "a", "x", ptrace.SpanKindServer, t0, time.Millisecond, false})
	}
	line := exportLine(t, spans)
	if len(line) < 2<<20 {
		t.Fatalf("test line only %d bytes", len(line))
	}
	path := filepath.Join(t.TempDir(), "big.jsonl")
	writeLines(t, path, line, line)
	n := 0
	if err := (&OTLPFile{}).readFile(path, func(SpanRecord) { n++ }); err != nil {
		t.Fatal(err)
	}
	if n != 40000 {
		t.Errorf("%d spans, want 40000", n)
	}
	if err := (&OTLPFile{MaxLine: 1 << 20}).readFile(path, func(SpanRecord) {}); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("max line not enforced: %v", err)
	}
}

func FuzzParseLine(f *testing.F) {
	f.Add(exportLine(f, []testSpan{{"s", "v1", "Reconcile", ptrace.SpanKindServer, t0, time.Millisecond, true}}))
	f.Add([]byte(`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.version","value":{"intValue":"3"}}]},"scopeSpans":[{"spans":[{"name":"x","startTimeUnixNano":"5","endTimeUnixNano":"1"}]}]}]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, line []byte) {
		_ = ParseLine(line, func(s SpanRecord) {
			if d := s.Duration(); d < 0 {
				t.Fatalf("negative duration %v", d)
			}
		})
	})
}

// BenchmarkParseLine measures decoding one 500-span export request with
// pdata's JSON unmarshaler (reported as spans/s).
func BenchmarkParseLine(b *testing.B) {
	var spans []testSpan
	for i := 0; i < 500; i++ {
		spans = append(spans, testSpan{"etcd-operator", "v1.4.0", "Reconcile", ptrace.SpanKindServer, t0, time.Duration(i) * time.Millisecond, i%50 == 0})
	}
	line := exportLine(b, spans)
	b.SetBytes(int64(len(line)))
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		if err := ParseLine(line, func(SpanRecord) { n++ }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "spans/s")
}
