package localfileexporter

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/zap"

	"github.com/opsight/opsight/internal/conventions"
)

func startLogs(t *testing.T, cfg *Config) exporter.Logs {
	t.Helper()
	exp, err := NewFactory().CreateLogs(context.Background(), exportertest.NewNopSettings(componentType), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	return exp
}

func startTraces(t *testing.T, cfg *Config) exporter.Traces {
	t.Helper()
	exp, err := NewFactory().CreateTraces(context.Background(), exportertest.NewNopSettings(componentType), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	return exp
}

// readLines returns every line of the signal's files, oldest file first,
// and fails on any line that is not exactly one JSON object.
func readLines(t *testing.T, dir, prefix string) (lines []string, files []string) {
	t.Helper()
	files, _ = filepath.Glob(filepath.Join(dir, prefix+"*"))
	sort.Strings(files)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > 0 && data[len(data)-1] != '\n' {
			t.Errorf("%s does not end with a newline", f)
		}
		sc := bufio.NewScanner(strings.NewReader(string(data)))
		sc.Buffer(make([]byte, 4<<20), 4<<20)
		for sc.Scan() {
			var obj map[string]any
			if err := json.Unmarshal(sc.Bytes(), &obj); err != nil {
				t.Errorf("%s: line is not a JSON object: %v\n%.200s", filepath.Base(f), err, sc.Text())
			}
			lines = append(lines, sc.Text())
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return lines, files
}

func enrichedResource(r pcommon.Resource) {
	a := r.Attributes()
	a.PutStr(conventions.AttrServiceVersion, "v2.0.1")
	a.PutStr(conventions.AttrCluster, "prod")
	a.PutStr(conventions.AttrNamespace, "ops")
	a.PutStr(conventions.AttrPod, "op-0")
	a.PutStr(conventions.AttrContainer, "manager")
	a.PutStr(conventions.AttrServiceName, "my-operator")
	a.PutStr(conventions.AttrNode, "n1")
	a.PutStr(conventions.AttrZone, "") // empty: omitted
}

func TestLogsRoundTrip(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	tests := []struct {
		name   string
		body   func(pcommon.Value)
		attrs  map[string]string
		want   map[string]any // expected decoded line (all keys)
		prefix string         // the output line must start with this (verbatim fields)
	}{
		{
			name:  "json object, added fields, same and different values",
			body:  func(v pcommon.Value) { v.SetStr(`{"level":"info","msg":"ok","controller":"other","n":1}`) },
			attrs: map[string]string{"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "level": "info", "controller": "cert", "correlation": "field"},
			want: map[string]any{"level": "info", "msg": "ok", "controller": "other", "n": 1.0,
				"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "correlation": "field", "opsight.controller": "cert",
				"revision": "v2.0.1", "cluster": "prod", "namespace": "ops", "pod": "op-0", "container": "manager",
				"service_name": "my-operator", "node": "n1"},
			prefix: `{"level":"info","msg":"ok","controller":"other","n":1,"trace_id":`,
		},
		{
			name:  "plain text",
			body:  func(v pcommon.Value) { v.SetStr("E1125 reconcile failed") },
			attrs: map[string]string{"risk": "reconciler_error", "opsight.parse_error": "not_json", "reconcile_id": "r1", "span_id": "00f067aa0ba902b7"},
			want: map[string]any{"line": "E1125 reconcile failed", "risk": "reconciler_error", "opsight.parse_error": "not_json",
				"reconcile_id": "r1", "span_id": "00f067aa0ba902b7",
				"revision": "v2.0.1", "cluster": "prod", "namespace": "ops", "pod": "op-0", "container": "manager",
				"service_name": "my-operator", "node": "n1"},
			prefix: `{"line":"E1125 reconcile failed",`,
		},
		{
			name:  "invalid utf-8 and NUL",
			body:  func(v pcommon.Value) { v.SetStr("a\xff\xfeb\x00c\"\\\u2028") },
			attrs: map[string]string{"opsight.parse_error": "invalid_utf8"},
			want: map[string]any{"line": "a\uFFFD\uFFFDb\x00c\"\\\u2028", "opsight.parse_error": "invalid_utf8",
				"revision": "v2.0.1", "cluster": "prod", "namespace": "ops", "pod": "op-0", "container": "manager",
				"service_name": "my-operator", "node": "n1"},
		},
		{
			name: "json object with invalid utf-8 is a line",
			body: func(v pcommon.Value) { v.SetStr("{\"msg\":\"\xff\"}") },
			want: map[string]any{"line": "{\"msg\":\"\uFFFD\"}",
				"revision": "v2.0.1", "cluster": "prod", "namespace": "ops", "pod": "op-0", "container": "manager",
				"service_name": "my-operator", "node": "n1"},
		},
		{
			name: "pretty json object is compacted",
			body: func(v pcommon.Value) { v.SetStr("{\n  \"a\": [1, 2],\r\n  \"b\": {\"c\": \"d\"}\n}") },
			want: map[string]any{"a": []any{1.0, 2.0}, "b": map[string]any{"c": "d"},
				"revision": "v2.0.1", "cluster": "prod", "namespace": "ops", "pod": "op-0", "container": "manager",
				"service_name": "my-operator", "node": "n1"},
			prefix: `{"a":[1,2],"b":{"c":"d"},"revision"`,
		},
		{
			name: "empty object",
			body: func(v pcommon.Value) { v.SetStr("{ }") },
			want: map[string]any{"revision": "v2.0.1", "cluster": "prod", "namespace": "ops", "pod": "op-0",
				"container": "manager", "service_name": "my-operator", "node": "n1"},
			prefix: `{"revision"`,
		},
		{
			name: "json array is a line",
			body: func(v pcommon.Value) { v.SetStr(`[1,2]`) },
			want: map[string]any{"line": "[1,2]", "revision": "v2.0.1", "cluster": "prod", "namespace": "ops",
				"pod": "op-0", "container": "manager", "service_name": "my-operator", "node": "n1"},
		},
		{
			name:  "escaped key conflicts like the plain key",
			body:  func(v pcommon.Value) { v.SetStr(`{"lev\u0065l":"debug","x":"}{\"level\":1"}`) },
			attrs: map[string]string{"level": "info"},
			want: map[string]any{"level": "debug", "x": `}{"level":1`, "opsight.level": "info",
				"revision": "v2.0.1", "cluster": "prod", "namespace": "ops", "pod": "op-0", "container": "manager",
				"service_name": "my-operator", "node": "n1"},
		},
		{
			name: "1 MiB line",
			body: func(v pcommon.Value) { v.SetStr(big) },
			want: map[string]any{"line": big, "revision": "v2.0.1", "cluster": "prod", "namespace": "ops",
				"pod": "op-0", "container": "manager", "service_name": "my-operator", "node": "n1"},
		},
		{
			name: "bytes body",
			body: func(v pcommon.Value) { v.SetEmptyBytes().FromRaw([]byte("raw\x01")) },
			want: map[string]any{"line": "raw\x01", "revision": "v2.0.1", "cluster": "prod", "namespace": "ops",
				"pod": "op-0", "container": "manager", "service_name": "my-operator", "node": "n1"},
		},
	}
	dir := t.TempDir()
	exp := startLogs(t, &Config{Directory: dir, MaxFileBytes: 64 << 20})
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	enrichedResource(rl.Resource())
	lrs := rl.ScopeLogs().AppendEmpty().LogRecords()
	for _, tt := range tests {
		r := lrs.AppendEmpty()
		tt.body(r.Body())
		for k, v := range tt.attrs {
			r.Attributes().PutStr(k, v)
		}
	}
	if err := exp.ConsumeLogs(context.Background(), ld); err != nil {
		t.Fatal(err)
	}
	if err := exp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	lines, files := readLines(t, dir, "logs-")
	if len(files) != 1 || !strings.HasSuffix(files[0], ".ndjson") {
		t.Fatalf("files %v", files)
	}
	if len(lines) != len(tests) {
		t.Fatalf("%d lines, want %d", len(lines), len(tests))
	}
	for i, tt := range tests {
		var got map[string]any
		_ = json.Unmarshal([]byte(lines[i]), &got)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s:\n got %.300v\nwant %.300v", tt.name, got, tt.want)
		}
		if !strings.HasPrefix(lines[i], tt.prefix) {
			t.Errorf("%s: line %.120q does not start with %q", tt.name, lines[i], tt.prefix)
		}
	}
}

// TestAddedFieldOrder: the added fields follow the documented order.
func TestAddedFieldOrder(t *testing.T) {
	var vals [nFields]string
	for i := range vals {
		vals[i] = "v"
	}
	ld := plog.NewLogs()
	body := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty().Body()
	body.SetStr("x")
	got := string(appendRecord(nil, body, &vals))
	want := `{"line":"x","trace_id":"v","span_id":"v","correlation":"v","risk":"v","level":"v","controller":"v","reconcile_id":"v","revision":"v","cluster":"v","namespace":"v","pod":"v","container":"v","service_name":"v","node":"v","zone":"v","opsight.parse_error":"v"}`
	if got != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
}

func TestRecordContextFallback(t *testing.T) {
	ld := plog.NewLogs()
	r := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	r.Body().SetStr("x")
	r.SetTraceID(pcommon.TraceID{1, 2, 3})
	r.SetSpanID(pcommon.SpanID{4})
	r.SetSeverityText("WARN")
	buf, _ := appendLogs(nil, nil, ld)
	want := `{"line":"x","trace_id":"01020300000000000000000000000000","span_id":"0400000000000000","level":"warn"}` + "\n"
	if string(buf) != want {
		t.Errorf("\n got %s\nwant %s", buf, want)
	}
}

func TestTracesRoundTrip(t *testing.T) {
	dir := t.TempDir()
	exp := startTraces(t, &Config{Directory: dir, MaxFileBytes: 64 << 20})
	var sent []ptrace.Traces
	for b := 0; b < 3; b++ {
		td := ptrace.NewTraces()
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr(conventions.AttrServiceName, "my-operator")
		rs.Resource().Attributes().PutStr(conventions.AttrServiceVersion, "v2")
		ss := rs.ScopeSpans().AppendEmpty().Spans()
		for i := 0; i < 4; i++ {
			s := ss.AppendEmpty()
			s.SetName(fmt.Sprintf("reconcile-%d-%d", b, i))
			s.SetTraceID(pcommon.TraceID{byte(b), byte(i), 1})
			s.SetSpanID(pcommon.SpanID{byte(i), 2})
			s.SetStartTimestamp(pcommon.NewTimestampFromTime(time.Unix(1700000000, 0)))
			s.SetEndTimestamp(pcommon.NewTimestampFromTime(time.Unix(1700000001, 0)))
			s.Attributes().PutStr("note", "multi\nline \xff")
		}
		sent = append(sent, td)
		if err := exp.ConsumeTraces(context.Background(), td); err != nil {
			t.Fatal(err)
		}
	}
	if err := exp.ConsumeTraces(context.Background(), ptrace.NewTraces()); err != nil { // empty: no line
		t.Fatal(err)
	}
	if err := exp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	lines, files := readLines(t, dir, "traces-")
	if len(files) != 1 || !strings.HasSuffix(files[0], ".jsonl") || len(lines) != 3 {
		t.Fatalf("files %v, %d lines", files, len(lines))
	}
	var um ptrace.JSONUnmarshaler
	for i, l := range lines {
		td, err := um.UnmarshalTraces([]byte(l))
		if err != nil {
			t.Fatalf("line %d is not OTLP JSON: %v", i, err)
		}
		want := sent[i].ResourceSpans().At(0).ScopeSpans().At(0).Spans()
		got := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
		if got.Len() != want.Len() {
			t.Fatalf("line %d: %d spans", i, got.Len())
		}
		for j := 0; j < want.Len(); j++ {
			if got.At(j).Name() != want.At(j).Name() || got.At(j).TraceID() != want.At(j).TraceID() {
				t.Errorf("line %d span %d: %s %s", i, j, got.At(j).Name(), got.At(j).TraceID())
			}
		}
	}
}

func idLogs(from, n int, pad int) plog.Logs {
	ld := plog.NewLogs()
	lrs := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords()
	for i := from; i < from+n; i++ {
		lrs.AppendEmpty().Body().SetStr(fmt.Sprintf(`{"id":%d,"pad":"%s"}`, i, strings.Repeat("p", pad)))
	}
	return ld
}

func ids(t *testing.T, lines []string) []int {
	t.Helper()
	var out []int
	for _, l := range lines {
		var v struct{ ID int }
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v.ID)
	}
	return out
}

func TestRotation(t *testing.T) {
	tests := []struct {
		name     string
		maxFiles int
	}{
		{"keep all", 0},
		{"keep 3", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			const maxBytes = 1000
			exp := startLogs(t, &Config{Directory: dir, MaxFileBytes: maxBytes, MaxFiles: tt.maxFiles})
			// 100 lines of ~100 bytes in batches of 7: about 10 lines per file.
			for i := 0; i < 100; i += 7 {
				n := min(7, 100-i)
				if err := exp.ConsumeLogs(context.Background(), idLogs(i, n, 80)); err != nil {
					t.Fatal(err)
				}
			}
			// One line longer than max_file_bytes gets a file of its own.
			if err := exp.ConsumeLogs(context.Background(), idLogs(100, 1, 3000)); err != nil {
				t.Fatal(err)
			}
			if err := exp.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			lines, files := readLines(t, dir, "logs-")
			for _, f := range files {
				st, _ := os.Stat(f)
				data, _ := os.ReadFile(f)
				if st.Size() > maxBytes && strings.Count(string(data), "\n") != 1 {
					t.Errorf("%s: %d bytes with several lines, over max_file_bytes", filepath.Base(f), st.Size())
				}
			}
			got := ids(t, lines)
			if tt.maxFiles == 0 {
				if len(files) < 10 {
					t.Errorf("%d files; want rotation into >= 10", len(files))
				}
				for i, id := range got {
					if id != i {
						t.Fatalf("line %d has id %d: lines lost, duplicated or reordered", i, id)
					}
				}
				if len(got) != 101 {
					t.Errorf("%d lines, want 101", len(got))
				}
				return
			}
			if len(files) != tt.maxFiles {
				t.Errorf("%d files kept, want %d", len(files), tt.maxFiles)
			}
			// The newest files are the ones kept: they end with the last ids.
			if len(got) == 0 || got[len(got)-1] != 100 || got[len(got)-2] != 99 {
				t.Errorf("kept ids %v; want the newest", got)
			}
			for i := 1; i < len(got); i++ {
				if got[i] != got[i-1]+1 {
					t.Errorf("kept ids not contiguous: %v", got)
					break
				}
			}
		})
	}
}

// TestConcurrent: several exporters (sharing the directory) and goroutines
// write at once with rotation; every line arrives once and whole.
func TestConcurrent(t *testing.T) {
	dir := t.TempDir()
	cfg := &Config{Directory: dir, MaxFileBytes: 20000}
	exps := []exporter.Logs{startLogs(t, cfg), startLogs(t, cfg)}
	const workers, batches, per = 8, 40, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			for b := 0; b < batches; b++ {
				from := (w*batches + b) * per
				if err := exps[w%2].ConsumeLogs(context.Background(), idLogs(from, per, 50)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, e := range exps {
		if err := e.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	lines, files := readLines(t, dir, "logs-")
	got := ids(t, lines)
	sort.Ints(got)
	if len(got) != workers*batches*per {
		t.Fatalf("%d lines, want %d", len(got), workers*batches*per)
	}
	for i, id := range got {
		if id != i {
			t.Fatalf("id %d missing or duplicated", i)
		}
	}
	if len(files) < 2 {
		t.Errorf("%d files; the test should rotate", len(files))
	}
}

// TestRestartContinuesFile: restarts append to the newest file while it has
// room (so max_files never prunes what a few restarts wrote), after cutting
// a torn last line a killed process may have left (that batch was never
// acknowledged, so the receiver sends it again).
func TestRestartContinuesFile(t *testing.T) {
	dir := t.TempDir()
	cfg := &Config{Directory: dir, MaxFileBytes: 1 << 20, MaxFiles: 2}
	for run := 0; run < 5; run++ {
		exp := startLogs(t, cfg)
		if err := exp.ConsumeLogs(context.Background(), idLogs(run, 1, 1)); err != nil {
			t.Fatal(err)
		}
		if err := exp.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if run == 2 {
			// A kill -9 in the middle of a write.
			_, files := readLines(t, dir, "logs-")
			f, err := os.OpenFile(files[len(files)-1], os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = f.WriteString(`{"id":99,"torn`)
			f.Close()
		}
	}
	lines, files := readLines(t, dir, "logs-")
	if len(files) != 1 || !reflect.DeepEqual(ids(t, lines), []int{0, 1, 2, 3, 4}) {
		t.Errorf("files %v ids %v; want one file with every run's record and no torn line", files, ids(t, lines))
	}
}

// A full newest file is not continued: a new one starts.
func TestRestartStartsNewFileWhenFull(t *testing.T) {
	dir := t.TempDir()
	cfg := &Config{Directory: dir, MaxFileBytes: 10, MaxFiles: 0}
	for run := 0; run < 2; run++ {
		exp := startLogs(t, cfg)
		if err := exp.ConsumeLogs(context.Background(), idLogs(run, 1, 1)); err != nil {
			t.Fatal(err)
		}
		if err := exp.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	lines, files := readLines(t, dir, "logs-")
	if len(files) != 2 || !reflect.DeepEqual(ids(t, lines), []int{0, 1}) {
		t.Errorf("files %v ids %v; want two files", files, ids(t, lines))
	}
}

func TestStartFailsOnUnusableDirectory(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	exp, err := NewFactory().CreateLogs(context.Background(), exportertest.NewNopSettings(componentType), &Config{Directory: filepath.Join(f, "sub"), MaxFileBytes: 10})
	if err != nil {
		t.Fatal(err)
	}
	err = exp.Start(context.Background(), componenttest.NewNopHost())
	if err == nil || !strings.Contains(err.Error(), "cannot be created") {
		t.Errorf("Start: %v; want a directory error", err)
	}
}

func FuzzAppendRecord(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"level":"x","trace_id":"y"}`, "\xff", "{", `{"a":"\u0000"}`, " {\n\"b\" : [ ] } ", `{"":{}}`, `{"level":"a","opsight.level":"b"}`} {
		f.Add(s, "info")
	}
	f.Fuzz(func(t *testing.T, body, level string) {
		var vals [nFields]string
		vals[fLevel] = level
		vals[fTraceID] = "abc"
		v := pcommon.NewValueStr(body)
		out := appendRecord(nil, v, &vals)
		var got map[string]any
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("not a JSON object: %v\n%q", err, out)
		}
		if strings.ContainsAny(string(out), "\n\r") {
			t.Fatalf("line break in output %q", out)
		}
		if _, ok := jsonObject([]byte(body)); ok {
			var orig map[string]any
			if err := json.Unmarshal([]byte(body), &orig); err == nil {
				for k, ov := range orig {
					if !reflect.DeepEqual(got[k], ov) {
						t.Fatalf("key %q: %v became %v", k, ov, got[k])
					}
				}
			}
		} else if got["line"] != string([]rune(body)) { // []rune: U+FFFD per invalid byte
			t.Fatalf("line %q, body %q", got["line"], body)
		}
	})
}

// TestWriteFailure: a failed write returns an error, leaves no partial line,
// and the next batch is written.
func TestWriteFailure(t *testing.T) {
	dir := t.TempDir()
	cfg := &Config{Directory: dir, MaxFileBytes: 1 << 20}
	failed := prometheus.NewCounter(prometheus.CounterOpts{Name: "failed_test"})
	w := newFileWriter(cfg, "logs-", ".ndjson", zap.NewNop(), failed)
	if err := w.start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.shutdown(context.Background()) }()
	write := func(id int) error {
		buf, ends := appendLogs(nil, nil, idLogs(id, 1, 10))
		return w.write(buf, ends)
	}
	if err := write(0); err != nil {
		t.Fatal(err)
	}
	// Swap in a read-only descriptor of the same file: the next write fails
	// as on a full or broken disk.
	ro, err := os.Open(w.r.f.Name())
	if err != nil {
		t.Fatal(err)
	}
	good := w.r.f
	w.r.f = ro
	if err := write(1); err == nil || !strings.Contains(err.Error(), "writing") {
		t.Fatalf("write on a failing file: %v; want an error naming the write", err)
	}
	_ = good.Close()
	if n := testutil.ToFloat64(failed); n != 1 {
		t.Errorf("failed writes counted %v, want 1", n)
	}
	if err := write(2); err != nil {
		t.Fatalf("write after a failure: %v", err)
	}
	lines, _ := readLines(t, dir, "logs-")
	if got := ids(t, lines); !reflect.DeepEqual(got, []int{0, 2}) {
		t.Errorf("ids %v, want [0 2]: the failed batch must be absent, the next present", got)
	}
}

func BenchmarkLogs(b *testing.B) {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	enrichedResource(rl.Resource())
	lrs := rl.ScopeLogs().AppendEmpty().LogRecords()
	const n = 1000
	for i := 0; i < n; i++ {
		r := lrs.AppendEmpty()
		r.Body().SetStr(fmt.Sprintf(`{"level":"info","ts":"2026-11-25T12:00:00Z","logger":"controller","msg":"Reconciling","controller":"certificate","reconcileID":"%08d"}`, i))
		r.Attributes().PutStr(conventions.LogTraceID, "4bf92f3577b34da6a3ce929d0e0e4736")
		r.Attributes().PutStr(conventions.LogLevel, "info")
		r.Attributes().PutStr(conventions.LogController, "certificate")
		r.Attributes().PutStr(conventions.LogReconcileID, fmt.Sprintf("%08d", i))
	}
	b.Run("encode", func(b *testing.B) {
		var buf []byte
		var ends []int
		for i := 0; i < b.N; i++ {
			buf, ends = appendLogs(buf[:0], ends[:0], ld)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
	})
	b.Run("consume+fsync", func(b *testing.B) {
		exp, err := NewFactory().CreateLogs(context.Background(), exportertest.NewNopSettings(componentType), &Config{Directory: b.TempDir(), MaxFileBytes: 64 << 20, MaxFiles: 2})
		if err != nil {
			b.Fatal(err)
		}
		if err := exp.Start(context.Background(), componenttest.NewNopHost()); err != nil {
			b.Fatal(err)
		}
		defer func() { _ = exp.Shutdown(context.Background()) }()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := exp.ConsumeLogs(context.Background(), ld); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
	})
}
