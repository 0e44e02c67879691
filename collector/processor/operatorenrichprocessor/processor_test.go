package operatorenrichprocessor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/selftelemetry"
)

// harness is one component ID's logs and traces processors over sinks, with
// their own metrics registry.
type harness struct {
	t       testing.TB
	ef      *enrichFactory
	factory processor.Factory
	m       *selftelemetry.Metrics
	logs    processor.Logs
	traces  processor.Traces
	logSink *consumertest.LogsSink
	spanOut *consumertest.TracesSink
}

func newHarness(t testing.TB, cfg *Config, env map[string]string) *harness {
	t.Helper()
	h := &harness{t: t, m: selftelemetry.New(), logSink: new(consumertest.LogsSink), spanOut: new(consumertest.TracesSink)}
	h.ef = newEnrichFactory(withMetrics(h.m), withEnv(env))
	h.factory = h.ef.processorFactory()
	if cfg == nil {
		cfg = createDefaultConfig()
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	set := processortest.NewNopSettings(componentType)
	var err error
	if h.logs, err = h.factory.CreateLogs(context.Background(), set, cfg, h.logSink); err != nil {
		t.Fatal(err)
	}
	if h.traces, err = h.factory.CreateTraces(context.Background(), set, cfg, h.spanOut); err != nil {
		t.Fatal(err)
	}
	for _, c := range []component.Component{h.logs, h.traces} {
		if err := c.Start(context.Background(), componenttest.NewNopHost()); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { h.shutdown() })
	return h
}

func (h *harness) shutdown() {
	for _, c := range []component.Component{h.logs, h.traces} {
		if err := c.Shutdown(context.Background()); err != nil {
			h.t.Error(err)
		}
	}
}

// fileLogs builds a batch as the operatorlogs receiver does.
func fileLogs(lines ...string) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr(conventions.AttrLogFilePath, "/var/log/pods/ns_pod_uid/manager/0.log")
	rl.Resource().Attributes().PutStr(conventions.AttrContainer, "manager")
	sl := rl.ScopeLogs().AppendEmpty()
	for _, l := range lines {
		lr := sl.LogRecords().AppendEmpty()
		lr.Body().SetStr(l)
		lr.Attributes().PutStr("log.iostream", "stderr")
	}
	return ld
}

func keyedSpans(keys ...string) (ptrace.Traces, map[string][2]string) {
	td := ptrace.NewTraces()
	ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
	ids := map[string][2]string{}
	for i, k := range keys {
		sp := ss.Spans().AppendEmpty()
		sp.SetName("Reconcile")
		var t pcommon.TraceID
		var s pcommon.SpanID
		copy(t[:], fmt.Sprintf("T%015d", i))
		copy(s[:], fmt.Sprintf("S%07d", i))
		sp.SetTraceID(t)
		sp.SetSpanID(s)
		sp.Attributes().PutStr(conventions.DefaultSpanCorrelationKey, k)
		ids[k] = [2]string{hexOf(t[:]), hexOf(s[:])}
	}
	return td, ids
}

func records(ld plog.Logs) []plog.LogRecord {
	var out []plog.LogRecord
	for i := 0; i < ld.ResourceLogs().Len(); i++ {
		sls := ld.ResourceLogs().At(i).ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			for k := 0; k < sls.At(j).LogRecords().Len(); k++ {
				out = append(out, sls.At(j).LogRecords().At(k))
			}
		}
	}
	return out
}

func (h *harness) allRecords() []plog.LogRecord {
	var out []plog.LogRecord
	for _, ld := range h.logSink.AllLogs() {
		out = append(out, records(ld)...)
	}
	return out
}

func attr(m pcommon.Map, k string) string {
	v, ok := m.Get(k)
	if !ok {
		return "<absent>"
	}
	return v.AsString()
}

func TestEnrichControllerRuntimeLine(t *testing.T) {
	env := map[string]string{
		conventions.EnvCluster: "prod-eu", conventions.EnvPodNamespace: "ops", conventions.EnvPodName: "op-7d9",
		conventions.EnvNodeName: "node-1", conventions.EnvZone: "eu-1a", conventions.EnvNodePool: "pool-a",
		conventions.EnvPodImage: "ghcr.io/acme/op:v1.4.2",
	}
	h := newHarness(t, nil, env)
	line := `{"level":"error","ts":1714557600.25,"logger":"controller.foo","msg":"Reconciler error","controller":"foo","Foo":{"name":"bar","namespace":"default"},"namespace":"default","name":"bar","reconcileID":"r-1","error":"dial tcp: i/o timeout","traceparent":"00-` + tid + `-` + sid + `-01"}`
	if err := h.logs.ConsumeLogs(context.Background(), fileLogs(line)); err != nil {
		t.Fatal(err)
	}
	recs := h.allRecords()
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	lr := recs[0]
	if lr.Body().Str() != line {
		t.Fatal("Body modified")
	}
	if got := lr.Timestamp().AsTime(); !got.Equal(time.Unix(1714557600, 250e6)) {
		t.Errorf("Timestamp %v", got)
	}
	if lr.SeverityNumber() != plog.SeverityNumberError || lr.SeverityText() != "error" {
		t.Errorf("severity %v %q", lr.SeverityNumber(), lr.SeverityText())
	}
	if lr.TraceID().String() != tid || lr.SpanID().String() != sid {
		t.Errorf("TraceID/SpanID %x %x", lr.TraceID(), lr.SpanID())
	}
	a := lr.Attributes()
	want := map[string]string{
		conventions.LogLevel: "error", conventions.LogController: "foo", conventions.LogReconcileID: "r-1",
		conventions.LogObjectNS: "default", conventions.LogObjectName: "bar", conventions.LogTraceID: tid,
		conventions.LogSpanID: sid, conventions.LogCorrelation: "field", conventions.LogRisk: "io_timeout,reconciler_error",
		conventions.LogParseError: "<absent>",
	}
	for k, v := range want {
		if got := attr(a, k); got != v {
			t.Errorf("attribute %s = %q, want %q", k, got, v)
		}
	}
	res := h.logSink.AllLogs()[0].ResourceLogs().At(0).Resource().Attributes()
	wantRes := map[string]string{
		conventions.AttrServiceName: "manager", conventions.AttrServiceVersion: "v1.4.2", conventions.AttrCluster: "prod-eu",
		conventions.AttrNamespace: "ops", conventions.AttrPod: "op-7d9", conventions.AttrContainer: "manager",
		conventions.AttrNode: "node-1", conventions.AttrZone: "eu-1a", conventions.AttrNodePool: "pool-a",
	}
	for k, v := range wantRes {
		if got := attr(res, k); got != v {
			t.Errorf("resource %s = %q, want %q", k, got, v)
		}
	}

	// Counters.
	if v := testutil.ToFloat64(h.m.LogRecords.WithLabelValues("error", "v1.4.2")); v != 1 {
		t.Errorf("records{error,v1.4.2} = %v", v)
	}
	for _, p := range []string{"io_timeout", "reconciler_error"} {
		if v := testutil.ToFloat64(h.m.LogRisk.WithLabelValues(p, "v1.4.2")); v != 1 {
			t.Errorf("risk{%s} = %v", p, v)
		}
	}
	if v := testutil.ToFloat64(h.m.LogCorrelated.WithLabelValues("field")); v != 1 {
		t.Errorf("correlated{field} = %v", v)
	}
	for _, r := range knownReasons {
		if v := testutil.ToFloat64(h.m.LogParseErrors.WithLabelValues(r)); v != 0 {
			t.Errorf("parse_errors{%s} = %v for a valid JSON line", r, v)
		}
	}
}

func TestParseErrorsAndRawLines(t *testing.T) {
	h := newHarness(t, nil, map[string]string{conventions.EnvRevision: "r9"})
	ld := fileLogs(
		`E0102 15:04:05.123456       1 reflector.go:150] failed to list *v1.Pod: connection refused`,
		`{"msg":"cut`,
		"",
		"caf\xe9",
		"\x00\x01bin",
		`{"msg":"piece of a long line`,
		`{"msg":"ok"}`,
		`framing broke`,
	)
	recs := records(ld)
	recs[5].Attributes().PutBool(conventions.LogTruncated, true)
	recs[7].Attributes().PutStr(conventions.LogParseError, "bad_framing")
	bodies := make([]string, len(recs))
	for i, r := range recs {
		bodies[i] = r.Body().Str()
	}
	if err := h.logs.ConsumeLogs(context.Background(), ld); err != nil {
		t.Fatal(err)
	}
	out := h.allRecords()
	want := []string{"not_json", "truncated_json", "empty", "invalid_utf8", "binary", "too_long", "<absent>", "bad_framing"}
	for i, r := range out {
		if got := attr(r.Attributes(), conventions.LogParseError); got != want[i] {
			t.Errorf("record %d: parse_error %q, want %q", i, got, want[i])
		}
		if r.Body().Str() != bodies[i] {
			t.Errorf("record %d: Body modified", i)
		}
	}
	// The klog text line still gets level, time and risk.
	k := out[0]
	if attr(k.Attributes(), conventions.LogLevel) != "error" || attr(k.Attributes(), conventions.LogRisk) != "connection_refused,list_watch_failed" {
		t.Errorf("klog line attributes: %v", k.Attributes().AsRaw())
	}
	if ts := k.Timestamp().AsTime(); ts.Month() != 1 || ts.Day() != 2 || ts.Hour() != 15 || ts.Nanosecond() != 123456000 {
		t.Errorf("klog time %v", ts)
	}
	for _, r := range []string{"not_json", "truncated_json", "empty", "invalid_utf8", "binary", "too_long", "bad_framing"} {
		if v := testutil.ToFloat64(h.m.LogParseErrors.WithLabelValues(r)); v != 1 {
			t.Errorf("parse_errors{%s} = %v", r, v)
		}
	}
	if v := testutil.ToFloat64(h.m.LogRecords.WithLabelValues("unknown", "r9")); v != 7 {
		t.Errorf("records{unknown} = %v, want 7 (all but the klog line)", v)
	}
	if v := testutil.ToFloat64(h.m.LogCorrelated.WithLabelValues("none")); v != 8 {
		t.Errorf("correlated{none} = %v", v)
	}
}

// OTLP records from a logs bridge: map body, or message body with the
// key-values as attributes; TraceID already set.
func TestBridgeRecords(t *testing.T) {
	h := newHarness(t, nil, nil)
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr(conventions.AttrServiceName, "my-operator")
	rl.Resource().Attributes().PutStr(conventions.AttrServiceVersion, "sdk-1.0")
	sl := rl.ScopeLogs().AppendEmpty()

	a := sl.LogRecords().AppendEmpty()
	a.Body().SetStr("Reconciling")
	a.SetSeverityNumber(plog.SeverityNumberInfo)
	var tr pcommon.TraceID
	copy(tr[:], "0123456789abcdef")
	a.SetTraceID(tr)
	a.Attributes().PutStr("controller", "foo")
	a.Attributes().PutStr("reconcileID", "r-2")
	a.Attributes().PutStr("namespace", "ns")
	a.Attributes().PutStr("name", "obj")

	b := sl.LogRecords().AppendEmpty()
	m := b.Body().SetEmptyMap()
	m.PutStr("msg", "failed to call webhook")
	m.PutStr("level", "warn")
	m.PutStr("trace_id", tid)
	m.PutEmptyMap("Foo").PutStr("name", "n1")
	if err := h.logs.ConsumeLogs(context.Background(), ld); err != nil {
		t.Fatal(err)
	}
	out := h.allRecords()
	ga := out[0].Attributes()
	if attr(ga, conventions.LogTraceID) != hexOf(tr[:]) || attr(ga, conventions.LogCorrelation) != "field" ||
		attr(ga, conventions.LogLevel) != "info" || attr(ga, conventions.LogController) != "foo" ||
		attr(ga, conventions.LogReconcileID) != "r-2" || attr(ga, conventions.LogObjectName) != "obj" ||
		attr(ga, conventions.LogParseError) != "<absent>" {
		t.Errorf("bridge string record: %v", ga.AsRaw())
	}
	gb := out[1].Attributes()
	if attr(gb, conventions.LogTraceID) != tid || attr(gb, conventions.LogLevel) != "warn" || attr(gb, conventions.LogRisk) != "webhook_failure" ||
		attr(gb, conventions.LogObjectName) != "n1" || out[1].TraceID().String() != tid {
		t.Errorf("bridge map record: %v", gb.AsRaw())
	}
	res := h.logSink.AllLogs()[0].ResourceLogs().At(0).Resource().Attributes()
	if attr(res, conventions.AttrServiceName) != "my-operator" {
		t.Errorf("SDK's service.name replaced: %q", attr(res, conventions.AttrServiceName))
	}
	// No revision resolved: the SDK's version stays.
	if attr(res, conventions.AttrServiceVersion) != "sdk-1.0" {
		t.Errorf("service.version %q without a revision", attr(res, conventions.AttrServiceVersion))
	}
}

func TestRevisionPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "revision")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	image := "reg:5000/acme/op:from-image@sha256:" + fmt.Sprintf("%064d", 0)
	tests := []struct {
		name     string
		revision string
		file     string
		env      map[string]string
		want     string
	}{
		{"config wins", "from-config", file, map[string]string{conventions.EnvRevision: "from-env", conventions.EnvPodImage: image}, "from-config"},
		{"file next", "", file, map[string]string{conventions.EnvRevision: "from-env", conventions.EnvPodImage: image}, "from-file"},
		{"missing file falls back", "", filepath.Join(dir, "nope"), map[string]string{conventions.EnvRevision: "from-env"}, "from-env"},
		{"env next", "", "", map[string]string{conventions.EnvRevision: "from-env", conventions.EnvPodImage: image}, "from-env"},
		{"image tag last", "", "", map[string]string{conventions.EnvPodImage: image}, "from-image"},
		{"none", "", "", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := createDefaultConfig()
			cfg.Revision, cfg.RevisionFile = tt.revision, tt.file
			h := newHarness(t, cfg, tt.env)
			td, _ := keyedSpans("k")
			if err := h.traces.ConsumeTraces(context.Background(), td); err != nil {
				t.Fatal(err)
			}
			res := h.spanOut.AllTraces()[0].ResourceSpans().At(0).Resource().Attributes()
			want := tt.want
			if want == "" {
				want = "<absent>"
			}
			if got := attr(res, conventions.AttrServiceVersion); got != want {
				t.Errorf("service.version %q, want %q", got, want)
			}
		})
	}
}

func TestOriginalVersion(t *testing.T) {
	cfg := createDefaultConfig()
	cfg.Revision = "v2"
	cfg.ServiceName = "svc"
	h := newHarness(t, cfg, nil)

	td, _ := keyedSpans("k")
	td.ResourceSpans().At(0).Resource().Attributes().PutStr(conventions.AttrServiceVersion, "v1")
	td.ResourceSpans().At(0).Resource().Attributes().PutStr(conventions.AttrServiceName, "sdk-name")
	if err := h.traces.ConsumeTraces(context.Background(), td); err != nil {
		t.Fatal(err)
	}
	res := h.spanOut.AllTraces()[0].ResourceSpans().At(0).Resource().Attributes()
	if attr(res, conventions.AttrServiceVersion) != "v2" || attr(res, conventions.AttrOriginalVersion) != "v1" || attr(res, conventions.AttrServiceName) != "svc" {
		t.Errorf("span resource %v", res.AsRaw())
	}

	ld := fileLogs(`{"msg":"a"}`, `{"msg":"b"}`)
	recs := records(ld)
	recs[0].Attributes().PutStr(conventions.AttrServiceVersion, "v0")
	recs[1].Attributes().PutStr(conventions.AttrServiceVersion, "v2")
	if err := h.logs.ConsumeLogs(context.Background(), ld); err != nil {
		t.Fatal(err)
	}
	out := h.allRecords()
	if a := out[0].Attributes(); attr(a, conventions.AttrServiceVersion) != "v2" || attr(a, conventions.AttrOriginalVersion) != "v0" {
		t.Errorf("record with another version: %v", a.AsRaw())
	}
	if a := out[1].Attributes(); attr(a, conventions.AttrOriginalVersion) != "<absent>" {
		t.Errorf("record with the same version got original_version: %v", a.AsRaw())
	}
	lres := h.logSink.AllLogs()[0].ResourceLogs().At(0).Resource().Attributes()
	if attr(lres, conventions.AttrServiceVersion) != "v2" || attr(lres, conventions.AttrOriginalVersion) != "<absent>" {
		t.Errorf("log resource %v", lres.AsRaw())
	}
}

// Config and env values override the receiver's path-derived ones only when set.
func TestK8sMetadataOverride(t *testing.T) {
	cfg := createDefaultConfig()
	cfg.Pod = "from-config"
	h := newHarness(t, cfg, map[string]string{conventions.EnvPodNamespace: "from-env"})
	ld := fileLogs(`{"msg":"x"}`)
	res := ld.ResourceLogs().At(0).Resource().Attributes()
	res.PutStr(conventions.AttrPod, "from-path")
	res.PutStr(conventions.AttrNamespace, "from-path")
	if err := h.logs.ConsumeLogs(context.Background(), ld); err != nil {
		t.Fatal(err)
	}
	if attr(res, conventions.AttrPod) != "from-config" || attr(res, conventions.AttrNamespace) != "from-env" ||
		attr(res, conventions.AttrContainer) != "manager" || attr(res, conventions.AttrCluster) != "<absent>" ||
		attr(res, conventions.AttrServiceName) != "manager" {
		t.Errorf("resource %v", res.AsRaw())
	}
}

func TestUserRiskPatterns(t *testing.T) {
	cfg := createDefaultConfig()
	cfg.Risk.DisableDefaults = true
	cfg.Risk.Patterns = []PatternConfig{{ID: "quota_exceeded", Severity: "critical", Needles: []string{"exceeded quota"}}}
	h := newHarness(t, cfg, nil)
	if err := h.logs.ConsumeLogs(context.Background(), fileLogs(`{"msg":"panic: Exceeded Quota"}`)); err != nil {
		t.Fatal(err)
	}
	if got := attr(h.allRecords()[0].Attributes(), conventions.LogRisk); got != "quota_exceeded" {
		t.Errorf("risk %q (defaults disabled: panic must not match)", got)
	}
}

func lineFor(key, msg string) string {
	return `{"level":"info","msg":"` + msg + `","controller":"foo","reconcileID":"` + key + `"}`
}

func joinCfg(wait time.Duration) *Config {
	cfg := createDefaultConfig()
	cfg.Correlation.Wait = wait
	return cfg
}

func TestJoinLogAfterSpan(t *testing.T) {
	h := newHarness(t, joinCfg(0), nil)
	td, ids := keyedSpans("r-a")
	if err := h.traces.ConsumeTraces(context.Background(), td); err != nil {
		t.Fatal(err)
	}
	if err := h.logs.ConsumeLogs(context.Background(), fileLogs(lineFor("r-a", "x"), lineFor("r-other", "y"))); err != nil {
		t.Fatal(err)
	}
	out := h.allRecords()
	a := out[0].Attributes()
	if attr(a, conventions.LogTraceID) != ids["r-a"][0] || attr(a, conventions.LogSpanID) != ids["r-a"][1] ||
		attr(a, conventions.LogCorrelation) != "join" || out[0].TraceID().String() != ids["r-a"][0] {
		t.Errorf("joined line: %v", a.AsRaw())
	}
	if attr(out[1].Attributes(), conventions.LogCorrelation) != "<absent>" || !out[1].TraceID().IsEmpty() {
		t.Errorf("unjoinable line: %v", out[1].Attributes().AsRaw())
	}
	if v := testutil.ToFloat64(h.m.LogCorrelated.WithLabelValues("join")); v != 1 {
		t.Errorf("correlated{join} = %v", v)
	}
	if v := testutil.ToFloat64(h.m.LogCorrelated.WithLabelValues("none")); v != 1 {
		t.Errorf("correlated{none} = %v", v)
	}
}

// The parent of the first recorded span wins when it carries the same key.
func TestJoinPrefersParentSpan(t *testing.T) {
	h := newHarness(t, joinCfg(0), nil)
	td := ptrace.NewTraces()
	ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
	var tr pcommon.TraceID
	copy(tr[:], "trace-0000000001")
	child, parent := ss.Spans().AppendEmpty(), ss.Spans().AppendEmpty()
	child.SetTraceID(tr)
	child.SetSpanID(pcommon.SpanID{1})
	child.SetParentSpanID(pcommon.SpanID{2})
	child.Attributes().PutStr("reconcile.id", "r")
	parent.SetTraceID(tr)
	parent.SetSpanID(pcommon.SpanID{2})
	parent.Attributes().PutStr("reconcile.id", "r")
	if err := h.traces.ConsumeTraces(context.Background(), td); err != nil {
		t.Fatal(err)
	}
	if err := h.logs.ConsumeLogs(context.Background(), fileLogs(lineFor("r", "x"))); err != nil {
		t.Fatal(err)
	}
	if got := h.allRecords()[0].SpanID(); got != (pcommon.SpanID{2}) {
		t.Errorf("span %x, want the parent 02…", got)
	}
}

// consumeAsync runs ConsumeLogs and reports when it returned.
func consumeAsync(h *harness, ld plog.Logs) <-chan time.Time {
	done := make(chan time.Time, 1)
	go func() {
		if err := h.logs.ConsumeLogs(context.Background(), ld); err != nil {
			h.t.Error(err)
		}
		done <- time.Now()
	}()
	return done
}

func waitHeld(t testing.TB, h *harness, n int64) {
	t.Helper()
	sh := h.sharedState()
	deadline := time.Now().Add(5 * time.Second)
	for sh.held.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("held = %d, want %d", sh.held.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func (h *harness) sharedState() *shared {
	ef := h.ef
	ef.mu.Lock()
	defer ef.mu.Unlock()
	return ef.shared[processortest.NewNopSettings(componentType).ID]
}

func TestJoinLogBeforeSpan(t *testing.T) {
	h := newHarness(t, joinCfg(10*time.Second), nil)
	// Tracing is active: some keyed span was seen.
	warm, _ := keyedSpans("warm-up")
	if err := h.traces.ConsumeTraces(context.Background(), warm); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	done := consumeAsync(h, fileLogs(`{"msg":"before"}`, lineFor("r-late", "x"), `{"msg":"after"}`))
	waitHeld(t, h, 3)
	select {
	case <-done:
		t.Fatal("ConsumeLogs returned before the span came")
	default:
	}
	if n := len(h.logSink.AllLogs()); n != 0 {
		t.Fatalf("%d batches forwarded while held", n)
	}
	td, ids := keyedSpans("r-late")
	// A different trace than warm-up's index 0: shift ids.
	td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).SetTraceID(pcommon.TraceID{9, 9})
	ids["r-late"] = [2]string{hexOf([]byte{9, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}), ids["r-late"][1]}
	if err := h.traces.ConsumeTraces(context.Background(), td); err != nil {
		t.Fatal(err)
	}
	returned := <-done
	if returned.Sub(start) > 5*time.Second {
		t.Errorf("held %v although the span arrived", returned.Sub(start))
	}
	out := h.allRecords()
	if len(out) != 3 || out[0].Body().Str() != `{"msg":"before"}` || out[2].Body().Str() != `{"msg":"after"}` {
		t.Fatalf("batch not forwarded whole and in order: %d records", len(out))
	}
	if a := out[1].Attributes(); attr(a, conventions.LogTraceID) != ids["r-late"][0] || attr(a, conventions.LogCorrelation) != "join" {
		t.Errorf("late join: %v", a.AsRaw())
	}
	waitHeld(t, h, 0)
}

// Without keyed spans within active_window nothing is held once the
// start-up grace (one wait) is over.
func TestNoHoldWithoutTracing(t *testing.T) {
	const wait = 1500 * time.Millisecond
	h := newHarness(t, joinCfg(wait), nil)
	time.Sleep(wait + 100*time.Millisecond)
	start := time.Now()
	done := consumeAsync(h, fileLogs(lineFor("r-1", "x")))
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a line was held although no keyed span was ever seen")
	}
	if took := time.Since(start); took >= wait {
		t.Errorf("ConsumeLogs took %v after the grace: held without tracing", took)
	}
	if attr(h.allRecords()[0].Attributes(), conventions.LogCorrelation) != "<absent>" {
		t.Error("joined without a span")
	}
}

// Right after start no span can have arrived yet: keyed lines are held then
// (briefly: at most graceHold), so the operator's first reconciles still join.
func TestHoldDuringStartupGrace(t *testing.T) {
	h := newHarness(t, joinCfg(5*time.Second), nil)
	done := consumeAsync(h, fileLogs(lineFor("r-boot", "x")))
	time.Sleep(100 * time.Millisecond)
	select {
	case <-done:
		t.Fatal("a keyed line at start-up was not held for its span")
	default:
	}
	td, ids := keyedSpans("r-boot")
	if err := h.traces.ConsumeTraces(context.Background(), td); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("held line not released when its span arrived")
	}
	if a := h.allRecords()[0].Attributes(); attr(a, conventions.LogTraceID) != ids["r-boot"][0] || attr(a, conventions.LogCorrelation) != "join" {
		t.Errorf("start-up line not joined: %v", a.AsRaw())
	}
}

// The start-up hold is short even when wait is long: a restart's backlog
// must not stall the reader.
func TestStartupGraceHoldIsShort(t *testing.T) {
	h := newHarness(t, joinCfg(5*time.Second), nil)
	start := time.Now()
	if err := h.logs.ConsumeLogs(context.Background(), fileLogs(lineFor("r-never", "x"))); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < graceHold/2 || took > 2*graceHold {
		t.Errorf("start-up hold took %v, want about %v", took, graceHold)
	}
}

// The wait is bounded; the batch then goes unjoined.
func TestHoldTimesOut(t *testing.T) {
	h := newHarness(t, joinCfg(300*time.Millisecond), nil)
	warm, _ := keyedSpans("warm-up")
	_ = h.traces.ConsumeTraces(context.Background(), warm)
	start := time.Now()
	if err := h.logs.ConsumeLogs(context.Background(), fileLogs(lineFor("never", "x"))); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("returned after %v, before the wait of 300ms", d)
	}
	if n := len(h.allRecords()); n != 1 {
		t.Fatalf("%d records forwarded", n)
	}
	if v := testutil.ToFloat64(h.m.LogCorrelated.WithLabelValues("none")); v != 1 {
		t.Errorf("correlated{none} = %v", v)
	}
}

func TestIndexExpiry(t *testing.T) {
	cfg := joinCfg(0)
	cfg.Correlation.IndexTTL = 50 * time.Millisecond
	h := newHarness(t, cfg, nil)
	td, _ := keyedSpans("r-old")
	_ = h.traces.ConsumeTraces(context.Background(), td)
	time.Sleep(120 * time.Millisecond)
	_ = h.logs.ConsumeLogs(context.Background(), fileLogs(lineFor("r-old", "x")))
	if got := attr(h.allRecords()[0].Attributes(), conventions.LogCorrelation); got != "<absent>" {
		t.Errorf("joined to an expired span (correlation %q)", got)
	}
	if n := h.sharedState().index.len(); n != 0 {
		t.Errorf("expired entry still indexed (%d)", n)
	}
}

func TestShutdownReleasesHeld(t *testing.T) {
	h := newHarness(t, joinCfg(30*time.Second), nil)
	warm, _ := keyedSpans("warm-up")
	_ = h.traces.ConsumeTraces(context.Background(), warm)
	done := consumeAsync(h, fileLogs(lineFor("r-x", "a"), lineFor("r-y", "b")))
	waitHeld(t, h, 2)
	start := time.Now()
	if err := h.logs.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("ConsumeLogs still blocked after Shutdown")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	if n := len(h.allRecords()); n != 2 {
		t.Fatalf("%d of 2 held lines forwarded on shutdown", n)
	}
}

func TestMaxHeldForwardsAtOnce(t *testing.T) {
	cfg := joinCfg(30 * time.Second)
	cfg.Correlation.MaxHeld = 2
	h := newHarness(t, cfg, nil)
	warm, _ := keyedSpans("warm-up")
	_ = h.traces.ConsumeTraces(context.Background(), warm)
	done := consumeAsync(h, fileLogs(lineFor("a", "1"), lineFor("b", "2"), lineFor("c", "3")))
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a batch beyond max_held was held")
	}
	if n := len(h.allRecords()); n != 3 {
		t.Fatalf("%d records", n)
	}
}

// Many reconciles logging and tracing concurrently: every line gets its
// own reconcile's trace, whichever arrives first.
func TestConcurrentReconciles(t *testing.T) {
	h := newHarness(t, joinCfg(5*time.Second), nil)
	warm, _ := keyedSpans("warm-up")
	_ = h.traces.ConsumeTraces(context.Background(), warm)
	const n = 64
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(2)
		key := fmt.Sprintf("rec-%d", i)
		var tr pcommon.TraceID
		copy(tr[:], fmt.Sprintf("tr-%013d", i))
		go func() {
			defer wg.Done()
			lines := []string{lineFor(key, "start"), lineFor(key, "middle"), lineFor(key, "end")}
			if err := h.logs.ConsumeLogs(context.Background(), fileLogs(lines...)); err != nil {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				time.Sleep(time.Duration(i%7) * 10 * time.Millisecond) // spans after their logs
			}
			td := ptrace.NewTraces()
			sp := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
			sp.SetTraceID(tr)
			sp.SetSpanID(pcommon.SpanID{byte(i), 1})
			sp.Attributes().PutStr("reconcile.id", key)
			if err := h.traces.ConsumeTraces(context.Background(), td); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	out := h.allRecords()
	if len(out) != 3*n {
		t.Fatalf("%d of %d lines forwarded", len(out), 3*n)
	}
	for _, r := range out {
		key := attr(r.Attributes(), conventions.LogReconcileID)
		var i int
		fmt.Sscanf(key, "rec-%d", &i)
		var want pcommon.TraceID
		copy(want[:], fmt.Sprintf("tr-%013d", i))
		if r.TraceID() != want || attr(r.Attributes(), conventions.LogCorrelation) != "join" {
			t.Errorf("%s: trace %x correlation %q", key, r.TraceID(), attr(r.Attributes(), conventions.LogCorrelation))
		}
	}
	if v := testutil.ToFloat64(h.m.LogCorrelated.WithLabelValues("join")); v != 3*n {
		t.Errorf("correlated{join} = %v", v)
	}
}

// Logs and traces processors of one component ID share one index; another
// ID has its own; the state goes with the last Shutdown.
func TestSharedIndexPerComponentID(t *testing.T) {
	m := selftelemetry.New()
	e := newEnrichFactory(withMetrics(m))
	f := e.processorFactory()
	cfg := joinCfg(0)
	setA := processortest.NewNopSettings(componentType)
	setB := processortest.NewNopSettings(componentType)
	setB.ID = component.MustNewIDWithName("operatorenrich", "b")
	sink := new(consumertest.LogsSink)
	la, _ := f.CreateLogs(context.Background(), setA, cfg, sink)
	ta, _ := f.CreateTraces(context.Background(), setA, cfg, consumertest.NewNop())
	lb, _ := f.CreateLogs(context.Background(), setB, cfg, sink)
	for _, c := range []component.Component{la, ta, lb} {
		_ = c.Start(context.Background(), componenttest.NewNopHost())
	}
	td, _ := keyedSpans("shared-key")
	_ = ta.ConsumeTraces(context.Background(), td)
	_ = la.ConsumeLogs(context.Background(), fileLogs(lineFor("shared-key", "a")))
	_ = lb.ConsumeLogs(context.Background(), fileLogs(lineFor("shared-key", "b")))
	out := sink.AllLogs()
	if attr(records(out[0])[0].Attributes(), conventions.LogCorrelation) != "join" {
		t.Error("logs processor of the same ID did not see the traces processor's index")
	}
	if attr(records(out[1])[0].Attributes(), conventions.LogCorrelation) != "<absent>" {
		t.Error("another component ID shares the index")
	}
	_ = la.Shutdown(context.Background())
	e.mu.Lock()
	_, stillA := e.shared[setA.ID]
	e.mu.Unlock()
	if !stillA {
		t.Error("shared state dropped while the traces processor still runs")
	}
	_ = ta.Shutdown(context.Background())
	_ = lb.Shutdown(context.Background())
	e.mu.Lock()
	n := len(e.shared)
	e.mu.Unlock()
	if n != 0 {
		t.Errorf("%d shared states left after every Shutdown", n)
	}
}

// A flood of keyed spans and unjoinable lines keeps the index at its bound
// and holds nothing once max_held is reached.
func TestBoundedUnderFlood(t *testing.T) {
	cfg := joinCfg(50 * time.Millisecond)
	cfg.Correlation.IndexSize = 1000
	cfg.Correlation.MaxHeld = 500
	h := newHarness(t, cfg, nil)
	sh := h.sharedState()
	for b := 0; b < 50; b++ {
		keys := make([]string, 200)
		for i := range keys {
			keys[i] = fmt.Sprintf("span-%d-%d", b, i)
		}
		td, _ := keyedSpans(keys...)
		_ = h.traces.ConsumeTraces(context.Background(), td)
	}
	if n := sh.index.len(); n > 1000 {
		t.Errorf("index holds %d keys, bound 1000", n)
	}
	if c := sh.index.ringCap(); c > 1000 {
		t.Errorf("ring capacity %d beyond index_size 1000", c)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := 0; b < 10; b++ {
				lines := make([]string, 300)
				for i := range lines {
					lines[i] = lineFor(fmt.Sprintf("nope-%d-%d-%d", g, b, i), "x")
				}
				_ = h.logs.ConsumeLogs(context.Background(), fileLogs(lines...))
				if held := sh.held.Load(); held > 500+300*8 {
					t.Errorf("held %d", held)
				}
			}
		}()
	}
	wg.Wait()
	if n := len(h.allRecords()); n != 8*10*300 {
		t.Fatalf("%d of %d lines forwarded", n, 8*10*300)
	}
	if held := sh.held.Load(); held != 0 {
		t.Errorf("held %d after all returned", held)
	}
}

// When keyed spans name their controller, lines of a controller that is not
// traced never hold a batch; a traced controller's lines do.
func TestNoHoldForUntracedController(t *testing.T) {
	h := newHarness(t, joinCfg(20*time.Second), nil)
	warm, _ := keyedSpans("warm-up")
	warm.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Attributes().PutStr(conventions.AttrControllerSpan, "traced")
	if err := h.traces.ConsumeTraces(context.Background(), warm); err != nil {
		t.Fatal(err)
	}
	untraced := `{"msg":"x","controller":"untraced","reconcileID":"u-1"}`
	select {
	case <-consumeAsync(h, fileLogs(untraced)):
	case <-time.After(5 * time.Second):
		t.Fatal("a line of an untraced controller held its batch")
	}
	traced := `{"msg":"x","controller":"traced","reconcileID":"t-1"}`
	done := consumeAsync(h, fileLogs(traced))
	waitHeld(t, h, 1)
	td, _ := keyedSpans("t-1")
	if err := h.traces.ConsumeTraces(context.Background(), td); err != nil {
		t.Fatal(err)
	}
	<-done
	out := h.allRecords()
	if len(out) != 2 || attr(out[1].Attributes(), conventions.LogCorrelation) != "join" {
		t.Fatalf("traced controller's line not joined: %d records", len(out))
	}
}

// Heap stays bounded under a flood: many more keyed spans than index_size
// and many unjoinable keyed lines (forwarded to a sink that keeps nothing).
func TestMemoryBoundedUnderFlood(t *testing.T) {
	cfg := joinCfg(time.Millisecond)
	cfg.Correlation.IndexSize = 1000
	m := selftelemetry.New()
	ef := newEnrichFactory(withMetrics(m))
	f := ef.processorFactory()
	set := processortest.NewNopSettings(componentType)
	lp, err := f.CreateLogs(context.Background(), set, cfg, consumertest.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	tp, err := f.CreateTraces(context.Background(), set, cfg, consumertest.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []component.Component{lp, tp} {
		_ = c.Start(context.Background(), componenttest.NewNopHost())
		defer func() { _ = c.Shutdown(context.Background()) }()
	}
	heap := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	round := func(r int) {
		keys := make([]string, 500)
		lines := make([]string, 500)
		for i := range keys {
			keys[i] = fmt.Sprintf("flood-span-%d-%d-%s", r, i, strings.Repeat("x", 40))
			lines[i] = lineFor(fmt.Sprintf("flood-line-%d-%d", r, i), "nothing to join")
		}
		td, _ := keyedSpans(keys...)
		_ = tp.ConsumeTraces(context.Background(), td)
		_ = lp.ConsumeLogs(context.Background(), fileLogs(lines...))
	}
	for r := 0; r < 20; r++ { // warm up: the index reaches its bound
		round(r)
	}
	before := heap()
	for r := 20; r < 220; r++ { // 100,000 more spans and lines
		round(r)
	}
	after := heap()
	t.Logf("heap before %d after %d", before, after)
	// Unbounded, 100,000 index entries would take well over 10 MB.
	if grew := int64(after) - int64(before); grew > 2<<20 {
		t.Errorf("heap grew %d bytes over a flood of 100,000 spans and lines (index_size 1000)", grew)
	}
	ef.mu.Lock()
	n := ef.shared[set.ID].index.len()
	ef.mu.Unlock()
	if n > 1000 {
		t.Errorf("index holds %d keys, bound 1000", n)
	}
}

// When held lines mostly time out unjoined (sampled traces), holding stops
// blocking the receiver: the next batch goes on at once.
func TestHoldYieldStopsFutileHolds(t *testing.T) {
	const wait = 800 * time.Millisecond
	h := newHarness(t, joinCfg(wait), nil)
	td, _ := keyedSpans("r-traced")
	if err := h.traces.ConsumeTraces(context.Background(), td); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := h.logs.ConsumeLogs(context.Background(), fileLogs(lineFor("r-unsampled-1", "x"))); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < wait/2 {
		t.Fatalf("first unjoinable batch took %v: it should have been held (up to %v)", took, wait)
	}
	start = time.Now()
	if err := h.logs.ConsumeLogs(context.Background(), fileLogs(lineFor("r-unsampled-2", "x"))); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took >= wait/2 {
		t.Errorf("second unjoinable batch held %v although the last hold joined nothing", took)
	}
	if n := len(h.allRecords()); n != 2 {
		t.Errorf("%d records forwarded, want 2", n)
	}
}

func TestHoldYieldProbes(t *testing.T) {
	var y holdYield
	t0 := time.Unix(1000, 0)
	if !y.worth(t0) {
		t.Fatal("no history: holding must be tried")
	}
	y.record(0, 10, t0)
	if y.worth(t0.Add(time.Second)) {
		t.Error("held again right after a hold that joined nothing")
	}
	if !y.worth(t0.Add(probeEvery + time.Second)) {
		t.Error("no probe after probeEvery")
	}
	if y.worth(t0.Add(probeEvery + 2*time.Second)) {
		t.Error("a second probe within probeEvery")
	}
	for i := 0; i < 10; i++ {
		y.record(10, 10, t0)
	}
	if !y.worth(t0.Add(probeEvery + 3*time.Second)) {
		t.Error("holds that join everything must be allowed again")
	}
}
