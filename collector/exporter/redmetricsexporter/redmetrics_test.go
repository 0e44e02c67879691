package redmetricsexporter

import (
	"context"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/selftelemetry"
)

type testSpan struct {
	name     string
	kind     ptrace.SpanKind
	code     ptrace.StatusCode
	duration time.Duration
	traceID  [16]byte
	spanID   [8]byte
}

var testResource = map[string]string{
	conventions.AttrServiceName:    "my-operator",
	conventions.AttrServiceVersion: "v1.2.3",
	conventions.AttrNamespace:      "operators",
	conventions.AttrCluster:        "prod-eu",
}

func makeTraces(res map[string]string, spans ...testSpan) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	for k, v := range res {
		rs.Resource().Attributes().PutStr(k, v)
	}
	ss := rs.ScopeSpans().AppendEmpty()
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, s := range spans {
		sp := ss.Spans().AppendEmpty()
		sp.SetName(s.name)
		sp.SetKind(s.kind)
		sp.Status().SetCode(s.code)
		sp.SetTraceID(s.traceID)
		sp.SetSpanID(s.spanID)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(s.duration)))
	}
	return td
}

func ids(n int) ([16]byte, [8]byte) {
	var t [16]byte
	var s [8]byte
	t[0], t[15] = 0xab, byte(n)
	s[0], s[7] = 0xcd, byte(n)
	return t, s
}

func newTestExporter(t *testing.T, m *selftelemetry.Metrics, mutate func(*Config)) exporter.Traces {
	t.Helper()
	f := newFactory(m)
	cfg := f.CreateDefaultConfig().(*Config)
	if mutate != nil {
		mutate(cfg)
	}
	exp, err := f.CreateTraces(context.Background(), exportertest.NewNopSettings(f.Type()), cfg)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := exp.Start(context.Background(), nil); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { _ = exp.Shutdown(context.Background()) })
	return exp
}

// gather returns the metric families of m by name.
func gather(t *testing.T, m *selftelemetry.Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, lp := range m.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

func key(l map[string]string) string {
	return fmt.Sprintf("%s|%s|%s|%s|%s|%s|%s", l["service_name"], l["span_name"], l["span_kind"], l["status_code"], l["revision"], l["namespace"], l["cluster"])
}

func TestRecordsLabelsCountsAndDurations(t *testing.T) {
	m := selftelemetry.New()
	exp := newTestExporter(t, m, func(c *Config) { c.ExcludeSpanKinds = []SpanKindName{"SPAN_KIND_INTERNAL"} })
	t1, s1 := ids(1)
	t2, s2 := ids(2)
	t3, s3 := ids(3)
	t4, s4 := ids(4)
	td := makeTraces(testResource,
		testSpan{"Reconcile", ptrace.SpanKindServer, ptrace.StatusCodeUnset, 20 * time.Millisecond, t1, s1},
		testSpan{"Reconcile", ptrace.SpanKindServer, ptrace.StatusCodeError, 300 * time.Millisecond, t2, s2},
		testSpan{"GET", ptrace.SpanKindClient, ptrace.StatusCodeOk, 2 * time.Millisecond, t3, s3},
		testSpan{"helper", ptrace.SpanKindInternal, ptrace.StatusCodeUnset, time.Millisecond, t4, s4}, // excluded
		testSpan{"Reconcile", ptrace.SpanKindServer, ptrace.StatusCodeUnset, 40 * time.Millisecond, t1, s1},
	)
	if err := exp.ConsumeTraces(context.Background(), td); err != nil {
		t.Fatalf("consume: %v", err)
	}

	want := map[string]struct {
		count uint64
		sum   float64
	}{
		"my-operator|Reconcile|SPAN_KIND_SERVER|STATUS_CODE_UNSET|v1.2.3|operators|prod-eu": {2, 0.060},
		"my-operator|Reconcile|SPAN_KIND_SERVER|STATUS_CODE_ERROR|v1.2.3|operators|prod-eu": {1, 0.300},
		"my-operator|GET|SPAN_KIND_CLIENT|STATUS_CODE_OK|v1.2.3|operators|prod-eu":          {1, 0.002},
	}
	mfs := gather(t, m)
	calls := mfs[conventions.MetricSpanCalls]
	dur := mfs[conventions.MetricSpanDuration]
	if calls == nil || dur == nil {
		t.Fatalf("missing families: calls=%v duration=%v", calls != nil, dur != nil)
	}
	if len(calls.GetMetric()) != len(want) || len(dur.GetMetric()) != len(want) {
		t.Fatalf("series: calls %d, duration %d, want %d each", len(calls.GetMetric()), len(dur.GetMetric()), len(want))
	}
	for _, mt := range calls.GetMetric() {
		k := key(labelsOf(mt))
		w, ok := want[k]
		if !ok {
			t.Errorf("unexpected calls series %s", k)
			continue
		}
		if got := mt.GetCounter().GetValue(); got != float64(w.count) {
			t.Errorf("calls %s = %v, want %d", k, got, w.count)
		}
	}
	for _, mt := range dur.GetMetric() {
		k := key(labelsOf(mt))
		w := want[k]
		h := mt.GetHistogram()
		if h.GetSampleCount() != w.count || abs(h.GetSampleSum()-w.sum) > 1e-9 {
			t.Errorf("duration %s = count %d sum %v, want %d %v", k, h.GetSampleCount(), h.GetSampleSum(), w.count, w.sum)
		}
	}
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

func TestExemplarsCarryIDs(t *testing.T) {
	m := selftelemetry.New()
	exp := newTestExporter(t, m, nil)
	tid, sid := ids(7)
	if err := exp.ConsumeTraces(context.Background(), makeTraces(testResource,
		testSpan{"Reconcile", ptrace.SpanKindServer, ptrace.StatusCodeOk, 30 * time.Millisecond, tid, sid})); err != nil {
		t.Fatal(err)
	}
	wantT, wantS := hex.EncodeToString(tid[:]), hex.EncodeToString(sid[:])
	mfs := gather(t, m)
	ex := mfs[conventions.MetricSpanCalls].GetMetric()[0].GetCounter().GetExemplar()
	if l := exemplarLabels(ex); l["trace_id"] != wantT || l["span_id"] != wantS {
		t.Errorf("counter exemplar labels = %v, want trace_id=%s span_id=%s", l, wantT, wantS)
	}
	h := mfs[conventions.MetricSpanDuration].GetMetric()[0].GetHistogram()
	var found bool
	for _, b := range h.GetBucket() {
		if e := b.GetExemplar(); e != nil {
			l := exemplarLabels(e)
			found = found || l["trace_id"] == wantT && l["span_id"] == wantS && abs(e.GetValue()-0.030) < 1e-9
		}
	}
	if !found {
		t.Errorf("no classic-bucket exemplar with trace_id=%s span_id=%s value 0.03", wantT, wantS)
	}
}

func exemplarLabels(e *dto.Exemplar) map[string]string {
	out := map[string]string{}
	for _, lp := range e.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

func TestZeroIDsRecordWithoutExemplar(t *testing.T) {
	m := selftelemetry.New()
	exp := newTestExporter(t, m, nil)
	if err := exp.ConsumeTraces(context.Background(), makeTraces(testResource,
		testSpan{"Reconcile", ptrace.SpanKindServer, ptrace.StatusCodeOk, time.Millisecond, [16]byte{}, [8]byte{}})); err != nil {
		t.Fatal(err)
	}
	c := gather(t, m)[conventions.MetricSpanCalls].GetMetric()[0].GetCounter()
	if c.GetValue() != 1 || c.GetExemplar() != nil {
		t.Fatalf("value %v exemplar %v, want 1 and none", c.GetValue(), c.GetExemplar())
	}
}

func TestOverflowGoesToOther(t *testing.T) {
	const limit = 5
	m := selftelemetry.New()
	exp := newTestExporter(t, m, func(c *Config) { c.DimensionsCacheSize = limit })
	var spans []testSpan
	for i := 0; i < 50; i++ {
		tid, sid := ids(i)
		spans = append(spans, testSpan{fmt.Sprintf("op-%02d", i), ptrace.SpanKindServer, ptrace.StatusCodeUnset, time.Millisecond, tid, sid})
	}
	// Twice, so the second pass must reuse the first pass's series.
	for pass := 0; pass < 2; pass++ {
		if err := exp.ConsumeTraces(context.Background(), makeTraces(testResource, spans...)); err != nil {
			t.Fatal(err)
		}
	}
	calls := gather(t, m)[conventions.MetricSpanCalls].GetMetric()
	if len(calls) != limit+1 {
		t.Fatalf("%d series, want %d named + 1 other", len(calls), limit)
	}
	var total float64
	for _, c := range calls {
		l := labelsOf(c)
		v := c.GetCounter().GetValue()
		total += v
		switch {
		case l["span_name"] == OverflowSpanName:
			if v != 2*(50-limit) {
				t.Errorf("other = %v, want %d", v, 2*(50-limit))
			}
		case v != 2:
			t.Errorf("%s = %v, want 2", l["span_name"], v)
		}
		if l["revision"] != "v1.2.3" {
			t.Errorf("series %v lost its revision", l)
		}
	}
	if total != 100 {
		t.Errorf("total calls %v, want 100 (nothing lost to the bound)", total)
	}
}

func TestInvalidUTF8NamesDoNotPanic(t *testing.T) {
	m := selftelemetry.New()
	exp := newTestExporter(t, m, nil)
	tid, sid := ids(1)
	res := map[string]string{conventions.AttrServiceName: "svc\xff", conventions.AttrServiceVersion: "v1"}
	if err := exp.ConsumeTraces(context.Background(), makeTraces(res,
		testSpan{"bad\xfe\xffname", ptrace.SpanKindServer, ptrace.StatusCodeOk, time.Millisecond, tid, sid})); err != nil {
		t.Fatal(err)
	}
	l := labelsOf(gather(t, m)[conventions.MetricSpanCalls].GetMetric()[0])
	if l["span_name"] != "bad\uFFFDname" || l["service_name"] != "svc\uFFFD" {
		t.Fatalf("labels %v, want invalid bytes replaced by U+FFFD", l)
	}
}

// BenchmarkRecordSpans measures the per-span cost on a warm cache (the
// steady state: a bounded set of span names seen over and over).
func BenchmarkRecordSpans(b *testing.B) {
	m := selftelemetry.New()
	r := newRecorder(&Config{DimensionsCacheSize: DefaultDimensionsCacheSize}, m, nil)
	var spans []testSpan
	kinds := []ptrace.SpanKind{ptrace.SpanKindServer, ptrace.SpanKindClient}
	for i := 0; i < 100; i++ {
		tid, sid := ids(i)
		spans = append(spans, testSpan{fmt.Sprintf("op-%d", i%20), kinds[i%2], ptrace.StatusCode(i % 3), time.Duration(i) * time.Millisecond, tid, sid})
	}
	td := makeTraces(testResource, spans...)
	ctx := context.Background()
	_ = r.consumeTraces(ctx, td)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = r.consumeTraces(ctx, td)
	}
	b.StopTimer()
	n := float64(b.N * td.SpanCount())
	b.ReportMetric(n/b.Elapsed().Seconds(), "spans/s")
	b.ReportMetric(float64(testing.AllocsPerRun(10, func() { _ = r.consumeTraces(ctx, td) }))/float64(td.SpanCount()), "allocs/span")
}

func TestConcurrentConsumers(t *testing.T) {
	m := selftelemetry.New()
	exp := newTestExporter(t, m, func(c *Config) { c.DimensionsCacheSize = 8 })
	const workers, batches = 4, 50
	done := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func(w int) {
			for b := 0; b < batches; b++ {
				tid, sid := ids(b)
				if err := exp.ConsumeTraces(context.Background(), makeTraces(testResource,
					testSpan{fmt.Sprintf("op-%d", (w*batches+b)%16), ptrace.SpanKindServer, ptrace.StatusCodeOk, time.Millisecond, tid, sid})); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}(w)
	}
	for w := 0; w < workers; w++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	var total float64
	calls := gather(t, m)[conventions.MetricSpanCalls].GetMetric()
	for _, c := range calls {
		total += c.GetCounter().GetValue()
	}
	if total != workers*batches || len(calls) > 8+1 {
		t.Fatalf("total %v over %d series, want %d over at most 9", total, len(calls), workers*batches)
	}
}
