package lokiexporter

import (
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/opsight/opsight/internal/conventions"
)

// t0 is half an hour ago (whole second + 123456789 ns): inside Loki's
// default limits whatever day the tests run.
var t0 = time.Now().UTC().Truncate(time.Second).Add(-30*time.Minute + 123456789)

// testEncoder has Loki's default limits and the real clock.
func testEncoder(extra map[string]string) *encoder {
	return newEncoder(extra, defaultLimits())
}

// fullResource fills every resource attribute the enrichment processor sets.
func fullResource(r pcommon.Resource, pod string) {
	a := r.Attributes()
	a.PutStr(conventions.AttrCluster, "prod-eu")
	a.PutStr(conventions.AttrNamespace, "operators")
	a.PutStr(conventions.AttrPod, pod)
	a.PutStr(conventions.AttrContainer, "manager")
	a.PutStr(conventions.AttrServiceName, "cert-manager")
	a.PutStr(conventions.AttrServiceVersion, "v1.14.2")
	a.PutStr(conventions.AttrNode, "node-7")
	a.PutStr(conventions.AttrZone, "eu-west-1a")
	a.PutStr(conventions.AttrNodePool, "system")
	a.PutStr(conventions.AttrLogFilePath, "/var/log/pods/x/manager/0.log")
}

func decodeProtobuf(t testing.TB, body []byte) push.PushRequest {
	t.Helper()
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		t.Fatalf("body is not snappy block data: %v", err)
	}
	var req push.PushRequest
	if err := req.Unmarshal(raw); err != nil {
		t.Fatalf("body is not a push.PushRequest: %v", err)
	}
	return req
}

func md(kv ...string) push.LabelsAdapter {
	var out push.LabelsAdapter
	for i := 0; i < len(kv); i += 2 {
		out = append(out, push.LabelAdapter{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

// sampleLogs: two resources for pod a (same labels: one stream), one for pod
// b, one resource with no label attributes, and records covering every
// metadata key, empty values, timestamps and invalid UTF-8.
func sampleLogs() plog.Logs {
	ld := plog.NewLogs()
	rlA := ld.ResourceLogs().AppendEmpty()
	fullResource(rlA.Resource(), "pod-a")
	lrs := rlA.ScopeLogs().AppendEmpty().LogRecords()
	r := lrs.AppendEmpty()
	r.Body().SetStr(`{"level":"info","msg":"reconciled","reconcileID":"abc"}`)
	r.SetTimestamp(pcommon.NewTimestampFromTime(t0))
	r.SetObservedTimestamp(pcommon.NewTimestampFromTime(t0.Add(time.Second)))
	a := r.Attributes()
	a.PutStr(conventions.LogTraceID, "4bf92f3577b34da6a3ce929d0e0e4736")
	a.PutStr(conventions.LogSpanID, "00f067aa0ba902b7")
	a.PutStr(conventions.LogLevel, "info")
	a.PutStr(conventions.LogController, "certificate")
	a.PutStr(conventions.LogReconcileID, "abc")
	a.PutStr(conventions.LogRisk, "conflict,throttling")
	a.PutStr(conventions.LogCorrelation, conventions.CorrelationField)
	a.PutStr(conventions.LogObjectNS, "default") // not metadata per conventions
	a.PutStr(conventions.LogParseError, "")      // not metadata per conventions

	r = lrs.AppendEmpty() // no Timestamp: ObservedTimestamp is used; empty attributes omitted
	r.Body().SetStr("plain \xff\xfe line\x00")
	r.SetObservedTimestamp(pcommon.NewTimestampFromTime(t0.Add(2 * time.Second)))
	r.Attributes().PutStr(conventions.LogTraceID, "")
	r.Attributes().PutStr(conventions.LogLevel, "error")

	rlB := ld.ResourceLogs().AppendEmpty()
	fullResource(rlB.Resource(), "pod-b")
	rlB.Resource().Attributes().PutStr(conventions.AttrZone, "")    // empty zone: no metadata
	rlB.Resource().Attributes().PutStr(conventions.AttrCluster, "") // empty label: omitted
	r = rlB.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	r.Body().SetStr("b-1")
	r.SetTimestamp(pcommon.NewTimestampFromTime(t0.Add(3 * time.Second)))

	rlA2 := ld.ResourceLogs().AppendEmpty() // same labels as rlA: appended to its stream
	fullResource(rlA2.Resource(), "pod-a")
	r = rlA2.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	r.Body().SetStr("a-3")
	r.SetTimestamp(pcommon.NewTimestampFromTime(t0.Add(4 * time.Second)))

	rlN := ld.ResourceLogs().AppendEmpty() // no label attributes at all
	r = rlN.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	r.Body().SetEmptyBytes().FromRaw([]byte("bytes body"))
	r.SetTimestamp(pcommon.NewTimestampFromTime(t0.Add(5 * time.Second)))
	return ld
}

const (
	labelsA = `{cluster="prod-eu", container="manager", namespace="operators", pod="pod-a", revision="v1.14.2", service_name="cert-manager"}`
	labelsB = `{container="manager", namespace="operators", pod="pod-b", revision="v1.14.2", service_name="cert-manager"}`
	labelsN = `{service_name="unknown_service"}`
)

func wantStreams() []push.Stream {
	return []push.Stream{
		{Labels: labelsA, Entries: []push.Entry{
			{Timestamp: t0, Line: `{"level":"info","msg":"reconciled","reconcileID":"abc"}`, StructuredMetadata: md(
				"trace_id", "4bf92f3577b34da6a3ce929d0e0e4736", "span_id", "00f067aa0ba902b7", "level", "info",
				"controller", "certificate", "reconcile_id", "abc", "risk", "conflict,throttling", "correlation", "field",
				"node", "node-7", "zone", "eu-west-1a")},
			{Timestamp: t0.Add(2 * time.Second), Line: "plain \uFFFD\uFFFD line\x00", StructuredMetadata: md("level", "error", "node", "node-7", "zone", "eu-west-1a")},
			{Timestamp: t0.Add(4 * time.Second), Line: "a-3", StructuredMetadata: md("node", "node-7", "zone", "eu-west-1a")},
		}},
		{Labels: labelsB, Entries: []push.Entry{
			{Timestamp: t0.Add(3 * time.Second), Line: "b-1", StructuredMetadata: md("node", "node-7")},
		}},
		{Labels: labelsN, Entries: []push.Entry{
			{Timestamp: t0.Add(5 * time.Second), Line: "bytes body"},
		}},
	}
}

func TestEncodeProtobuf(t *testing.T) {
	body, err := testEncoder(nil).encodeProtobuf(sampleLogs())
	if err != nil {
		t.Fatal(err)
	}
	got := decodeProtobuf(t, body)
	want := wantStreams()
	if len(got.Streams) != len(want) {
		t.Fatalf("got %d streams, want %d: %+v", len(got.Streams), len(want), got.Streams)
	}
	for i := range want {
		g, w := got.Streams[i], want[i]
		if g.Labels != w.Labels {
			t.Errorf("stream %d labels\n got %s\nwant %s", i, g.Labels, w.Labels)
		}
		if len(g.Entries) != len(w.Entries) {
			t.Fatalf("stream %d: %d entries, want %d", i, len(g.Entries), len(w.Entries))
		}
		for j := range w.Entries {
			ge, we := g.Entries[j], w.Entries[j]
			if !ge.Timestamp.Equal(we.Timestamp) || ge.Line != we.Line || !reflect.DeepEqual(normMD(ge.StructuredMetadata), normMD(we.StructuredMetadata)) {
				t.Errorf("stream %d entry %d\n got %v %q %v\nwant %v %q %v", i, j, ge.Timestamp, ge.Line, ge.StructuredMetadata, we.Timestamp, we.Line, we.StructuredMetadata)
			}
		}
	}
	// No forbidden key may ever be a label, and no label key may be metadata.
	for _, s := range got.Streams {
		for _, f := range conventions.ForbiddenLokiLabels {
			if containsLabel(s.Labels, f) {
				t.Errorf("forbidden label %s in %s", f, s.Labels)
			}
		}
	}
}

func normMD(m push.LabelsAdapter) push.LabelsAdapter {
	if len(m) == 0 {
		return nil
	}
	return m
}

func containsLabel(labels, name string) bool {
	return strings.Contains(labels, "{"+name+"=") || strings.Contains(labels, " "+name+"=")
}

func TestEncodeExtraLabels(t *testing.T) {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	fullResource(rl.Resource(), "p")
	rl.Resource().Attributes().PutStr("k8s.deployment.name", "cm")
	rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty().Body().SetStr("x")
	body, err := testEncoder(map[string]string{"deployment": "k8s.deployment.name", "pool": conventions.AttrNodePool, "absent": "no.such.attr"}).encodeProtobuf(ld)
	if err != nil {
		t.Fatal(err)
	}
	got := decodeProtobuf(t, body)
	want := `{cluster="prod-eu", container="manager", deployment="cm", namespace="operators", pod="p", pool="system", revision="v1.14.2", service_name="cert-manager"}`
	if got.Streams[0].Labels != want {
		t.Errorf("labels\n got %s\nwant %s", got.Streams[0].Labels, want)
	}
}

type jsonPush struct {
	Streams []struct {
		Stream map[string]string   `json:"stream"`
		Values [][]json.RawMessage `json:"values"`
	} `json:"streams"`
}

func TestEncodeJSON(t *testing.T) {
	body := testEncoder(nil).encodeJSON(sampleLogs())
	var got jsonPush
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, body)
	}
	want := wantStreams()
	if len(got.Streams) != len(want) {
		t.Fatalf("got %d streams, want %d", len(got.Streams), len(want))
	}
	for i, w := range want {
		g := got.Streams[i]
		wantLabels := map[string]string{}
		for _, p := range labelPairs(t, w.Labels) {
			wantLabels[p.Name] = p.Value
		}
		if !reflect.DeepEqual(g.Stream, wantLabels) {
			t.Errorf("stream %d labels %v, want %v", i, g.Stream, wantLabels)
		}
		if len(g.Values) != len(w.Entries) {
			t.Fatalf("stream %d: %d values, want %d", i, len(g.Values), len(w.Entries))
		}
		for j, we := range w.Entries {
			v := g.Values[j]
			var ts, line string
			if err := json.Unmarshal(v[0], &ts); err != nil || ts != strconv.FormatInt(we.Timestamp.UnixNano(), 10) {
				t.Errorf("stream %d value %d: ts %s want %d", i, j, v[0], we.Timestamp.UnixNano())
			}
			if err := json.Unmarshal(v[1], &line); err != nil || line != we.Line {
				t.Errorf("stream %d value %d: line %s want %q", i, j, v[1], we.Line)
			}
			wantMD := map[string]string{}
			for _, m := range we.StructuredMetadata {
				wantMD[m.Name] = m.Value
			}
			gotMD := map[string]string{}
			if len(v) == 3 {
				if err := json.Unmarshal(v[2], &gotMD); err != nil {
					t.Errorf("metadata %s: %v", v[2], err)
				}
			} else if len(v) != 2 {
				t.Errorf("value has %d elements", len(v))
			}
			if !reflect.DeepEqual(gotMD, wantMD) {
				t.Errorf("stream %d value %d: metadata %v want %v", i, j, gotMD, wantMD)
			}
		}
	}
}

// labelPairs parses a Loki label string the way Loki's selector parser
// reads it (name="go-quoted value", ...), to check the string round-trips.
func labelPairs(t *testing.T, s string) push.LabelsAdapter {
	t.Helper()
	var out push.LabelsAdapter
	s = s[1 : len(s)-1]
	for len(s) > 0 {
		eq := strings.Index(s, "=")
		name := s[:eq]
		rest := s[eq+1:]
		q, err := strconv.QuotedPrefix(rest)
		if err != nil {
			t.Fatalf("label string %q: %v", s, err)
		}
		v, _ := strconv.Unquote(q)
		out = append(out, push.LabelAdapter{Name: name, Value: v})
		s = rest[len(q):]
		if len(s) >= 2 && s[:2] == ", " {
			s = s[2:]
		}
	}
	return out
}

func TestLabelValueQuoting(t *testing.T) {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr(conventions.AttrPod, "a\"b\\c\nd\xff")
	rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty().Body().SetStr("x")
	body, err := testEncoder(nil).encodeProtobuf(ld)
	if err != nil {
		t.Fatal(err)
	}
	got := labelPairs(t, decodeProtobuf(t, body).Streams[0].Labels)
	if len(got) != 1 || got[0].Name != "pod" || got[0].Value != "a\"b\\c\nd\uFFFD" {
		t.Errorf("labels %v", got)
	}
}

func FuzzEncode(f *testing.F) {
	f.Add("line", "pod", "trace")
	f.Add("\xff\x00{", "", "\xfe")
	f.Fuzz(func(t *testing.T, line, pod, traceID string) {
		ld := plog.NewLogs()
		rl := ld.ResourceLogs().AppendEmpty()
		rl.Resource().Attributes().PutStr(conventions.AttrPod, pod)
		r := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
		r.Body().SetStr(line)
		r.Attributes().PutStr(conventions.LogTraceID, traceID)
		e := testEncoder(nil)
		body, err := e.encodeProtobuf(ld)
		if err != nil {
			t.Fatal(err)
		}
		req := decodeProtobuf(t, body)
		if got := req.Streams[0].Entries[0].Line; got != validUTF8(line) {
			t.Fatalf("line %q, want %q", got, validUTF8(line))
		}
		var jp jsonPush
		if err := json.Unmarshal(e.encodeJSON(ld), &jp); err != nil {
			t.Fatalf("json body invalid: %v", err)
		}
	})
}

func benchLogs(n int) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	fullResource(rl.Resource(), "pod-a")
	lrs := rl.ScopeLogs().AppendEmpty().LogRecords()
	for i := 0; i < n; i++ {
		r := lrs.AppendEmpty()
		r.Body().SetStr(fmt.Sprintf(`{"level":"info","ts":"2026-11-25T12:00:00Z","logger":"controller","msg":"Reconciling","controller":"certificate","reconcileID":"%08d","namespace":"default","name":"web-tls"}`, i))
		r.SetTimestamp(pcommon.NewTimestampFromTime(t0.Add(time.Duration(i))))
		a := r.Attributes()
		a.PutStr(conventions.LogTraceID, "4bf92f3577b34da6a3ce929d0e0e4736")
		a.PutStr(conventions.LogSpanID, "00f067aa0ba902b7")
		a.PutStr(conventions.LogLevel, "info")
		a.PutStr(conventions.LogController, "certificate")
		a.PutStr(conventions.LogReconcileID, fmt.Sprintf("%08d", i))
		a.PutStr(conventions.LogCorrelation, conventions.CorrelationField)
	}
	return ld
}

// BenchmarkEncodeProtobuf reports ns/record and allocs/record for 1000-record batches.
func BenchmarkEncodeProtobuf(b *testing.B) {
	const n = 1000
	ld := benchLogs(n)
	e := testEncoder(nil)
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.encodeProtobuf(ld); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(b.N*n), "allocs/record")
}

func BenchmarkEncodeJSON(b *testing.B) {
	const n = 1000
	ld := benchLogs(n)
	e := testEncoder(nil)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = e.encodeJSON(ld)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
}
