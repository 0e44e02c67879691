package adaptivesamplingprocessor

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/opsight/opsight/internal/selftelemetry"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

type harness struct {
	proc  processor.Traces
	sink  *consumertest.TracesSink
	clock *clock
	m     *selftelemetry.Metrics
}

func newHarness(t *testing.T, mutate func(*Config)) *harness {
	t.Helper()
	h := &harness{sink: new(consumertest.TracesSink), clock: &clock{time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}, m: selftelemetry.New()}
	f := newFactory(h.m, h.clock.now)
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.P99Threshold = time.Second
	cfg.ErrorRatioThreshold = 0.2
	cfg.MinSamples = 10
	if mutate != nil {
		mutate(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config invalid: %v", err)
	}
	p, err := f.CreateTraces(context.Background(), processortest.NewNopSettings(f.Type()), cfg, h.sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	h.proc = p
	return h
}

// span describes one span; key goes on the resource unless onSpan.
type span struct {
	key      string
	onSpan   bool
	trace    uint64
	child    bool
	duration time.Duration
	err      bool
}

func traceID(n uint64) pcommon.TraceID {
	// Random-looking but reproducible ids, as an SDK would make.
	r := rand.New(rand.NewPCG(n, 0x5eed))
	var id pcommon.TraceID
	for i := range id {
		id[i] = byte(r.Uint32())
	}
	return id
}

func build(spans ...span) ptrace.Traces {
	td := ptrace.NewTraces()
	for i, s := range spans {
		rs := td.ResourceSpans().AppendEmpty()
		if !s.onSpan {
			rs.Resource().Attributes().PutStr("service.name", s.key)
		}
		sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
		if s.onSpan {
			sp.Attributes().PutStr("service.name", s.key)
		}
		sp.SetTraceID(traceID(s.trace))
		sp.SetSpanID(pcommon.SpanID{byte(i), 1, 2, 3, 4, 5, 6, 7})
		sp.SetName("Reconcile")
		if s.child {
			sp.SetParentSpanID(pcommon.SpanID{9, 9, 9, 9, 9, 9, 9, 9})
			sp.SetKind(ptrace.SpanKindClient)
		} else {
			sp.SetKind(ptrace.SpanKindServer)
		}
		start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(s.duration)))
		if s.err {
			sp.Status().SetCode(ptrace.StatusCodeError)
		}
	}
	return td
}

// kept sends td and returns the trace ids (as the test's numbers) that came out.
func (h *harness) kept(t *testing.T, td ptrace.Traces, ids map[pcommon.TraceID]uint64) map[uint64]int {
	t.Helper()
	h.sink.Reset()
	if err := h.proc.ConsumeTraces(context.Background(), td); err != nil {
		t.Fatal(err)
	}
	out := map[uint64]int{}
	for _, got := range h.sink.AllTraces() {
		rss := got.ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			sss := rss.At(i).ScopeSpans()
			for j := 0; j < sss.Len(); j++ {
				sps := sss.At(j).Spans()
				for k := 0; k < sps.Len(); k++ {
					out[ids[sps.At(k).TraceID()]]++
				}
			}
		}
	}
	return out
}

func idIndex(spans []span) map[pcommon.TraceID]uint64 {
	m := map[pcommon.TraceID]uint64{}
	for _, s := range spans {
		m[traceID(s.trace)] = s.trace
	}
	return m
}

// healthy returns n fast, successful root spans of key, trace ids from first.
func healthy(key string, first uint64, n int) []span {
	var out []span
	for i := 0; i < n; i++ {
		out = append(out, span{key: key, trace: first + uint64(i), duration: 10 * time.Millisecond})
	}
	return out
}

func TestConsistentByTraceID(t *testing.T) {
	h := newHarness(t, nil)
	const traces, perTrace = 4000, 3
	var spans []span
	for tr := uint64(0); tr < traces; tr++ {
		spans = append(spans, span{key: "svc", trace: tr, duration: time.Millisecond})
		for c := 0; c < perTrace-1; c++ {
			spans = append(spans, span{key: "svc", trace: tr, child: true, duration: time.Millisecond})
		}
	}
	// Split across batches and shuffle, as spans of one trace arrive apart.
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(spans), func(i, j int) { spans[i], spans[j] = spans[j], spans[i] })
	ids := idIndex(spans)
	got := map[uint64]int{}
	for i := 0; i < len(spans); i += 500 {
		for tr, n := range h.kept(t, build(spans[i:min(i+500, len(spans))]...), ids) {
			got[tr] += n
		}
	}
	for tr, n := range got {
		if n != perTrace {
			t.Fatalf("trace %d: %d of %d spans kept: decision not shared by the trace", tr, n, perTrace)
		}
	}
	if ratio := float64(len(got)) / traces; ratio < 0.08 || ratio > 0.12 {
		t.Fatalf("kept %.3f of traces, want about baseline 0.1", ratio)
	}
	// The same trace ids under another instance decide the same way.
	h2 := newHarness(t, nil)
	got2 := map[uint64]int{}
	for i := 0; i < len(spans); i += 500 {
		for tr, n := range h2.kept(t, build(spans[i:min(i+500, len(spans))]...), ids) {
			got2[tr] += n
		}
	}
	if len(got2) != len(got) {
		t.Fatalf("second instance kept %d traces, first %d", len(got2), len(got))
	}
	for tr := range got {
		if got2[tr] != perTrace {
			t.Fatalf("trace %d kept by one instance, not the other", tr)
		}
	}
}

func TestHigherRatioKeepsSuperset(t *testing.T) {
	lo, hi := thresholdFor(0.1), thresholdFor(0.5)
	for n := uint64(0); n < 5000; n++ {
		h := traceHash(traceID(n))
		if h < lo && h >= hi {
			t.Fatalf("trace %d kept at 0.1 but not at 0.5", n)
		}
	}
}

func TestRaisesOnBreach(t *testing.T) {
	slow := func(key string, first uint64, n, nSlow int) []span {
		s := healthy(key, first, n)
		for i := 0; i < nSlow; i++ {
			s[i].duration = 3 * time.Second
		}
		return s
	}
	errs := func(key string, first uint64, n, nErr int) []span {
		s := healthy(key, first, n)
		for i := 0; i < nErr; i++ {
			s[i].err = true
		}
		return s
	}
	tests := []struct {
		name   string
		warmup []span // sent first, for key "hot"
		raised bool
	}{
		{"p99 over threshold (2 slow of 100)", slow("hot", 1_000_000, 100, 2), true},
		{"p99 at threshold (1 slow of 100 is the 100th value only)", slow("hot", 1_000_000, 100, 1), false},
		{"error ratio over threshold", errs("hot", 1_000_000, 20, 5), true},
		{"error ratio under threshold", errs("hot", 1_000_000, 20, 4), false},
		{"too few samples", errs("hot", 1_000_000, 5, 5), false},
		{"child spans do not count", func() []span {
			s := slow("hot", 1_000_000, 100, 100)
			for i := range s {
				s[i].child = true
			}
			return s
		}(), false},
		{"key on the span attribute", func() []span {
			s := errs("hot", 1_000_000, 20, 20)
			for i := range s {
				s[i].onSpan = true
			}
			return s
		}(), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			h.kept(t, build(tt.warmup...), idIndex(tt.warmup))
			probe := append(healthy("hot", 0, 1000), healthy("cold", 5000, 1000)...)
			if tt.warmup[0].onSpan {
				for i := range probe {
					probe[i].onSpan = true
				}
			}
			got := h.kept(t, build(probe...), idIndex(probe))
			var hot, cold int
			for tr := range got {
				if tr < 5000 {
					hot++
				} else {
					cold++
				}
			}
			if tt.raised && hot != 1000 {
				t.Errorf("hot key kept %d of 1000 traces, want all (raised)", hot)
			}
			if !tt.raised && (hot < 60 || hot > 140) {
				t.Errorf("hot key kept %d of 1000 traces, want about 100 (baseline)", hot)
			}
			if cold < 60 || cold > 140 {
				t.Errorf("cold key kept %d of 1000 traces, want about 100: a breach elsewhere must not raise it", cold)
			}
			want := 0.1
			if tt.raised {
				want = 1
			}
			if r := gaugeValue(t, h.m, MetricRate, map[string]string{"key": "hot"}); r != want {
				t.Errorf("%s{key=hot} = %v, want %v", MetricRate, r, want)
			}
		})
	}
}

func TestBreachingBatchIsKeptWhole(t *testing.T) {
	h := newHarness(t, nil)
	spans := healthy("hot", 0, 50)
	for i := range spans {
		spans[i].err = true
	}
	if got := h.kept(t, build(spans...), idIndex(spans)); len(got) != 50 {
		t.Fatalf("kept %d of the 50 traces of the breaching batch, want all", len(got))
	}
}

func TestCooldownFallback(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Window = time.Minute; c.Cooldown = 5 * time.Minute })
	breach := healthy("hot", 1_000_000, 20)
	for i := range breach {
		breach[i].err = true
	}
	h.kept(t, build(breach...), idIndex(breach))
	probe := healthy("hot", 0, 1000)
	steps := []struct {
		after  time.Duration // since the breach
		raised bool
	}{
		{30 * time.Second, true},             // breach still in the window
		{2 * time.Minute, true},              // out of the window, cooling down
		{5*time.Minute - time.Second, true},  // last second of cooldown
		{5*time.Minute + time.Second, false}, // back to baseline
		{10 * time.Minute, false},            // stays there
	}
	var elapsed time.Duration
	for _, st := range steps {
		h.clock.advance(st.after - elapsed)
		elapsed = st.after
		n := len(h.kept(t, build(probe...), idIndex(probe)))
		if st.raised && n != 1000 {
			t.Errorf("at +%v kept %d of 1000, want all (cooling down)", st.after, n)
		}
		if !st.raised && (n < 60 || n > 140) {
			t.Errorf("at +%v kept %d of 1000, want about 100 (baseline)", st.after, n)
		}
	}
	if r := gaugeValue(t, h.m, MetricRate, map[string]string{"key": "hot"}); r != 0.1 {
		t.Errorf("rate after cooldown = %v, want 0.1", r)
	}
}

func TestBoundedKeys(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxKeys = 3; c.Window = time.Minute; c.Cooldown = time.Minute })
	var spans []span
	for k := 0; k < 10; k++ {
		spans = append(spans, healthy(fmt.Sprintf("svc-%d", k), uint64(k*100), 100)...)
	}
	h.kept(t, build(spans...), idIndex(spans))
	keys := seriesKeys(t, h.m, MetricRate)
	if len(keys) != 4 || !keys[OverflowKey] {
		t.Fatalf("rate series for keys %v, want 3 keys + %q", keys, OverflowKey)
	}
	var total float64
	for k := range keys {
		total += counterValue(t, h.m, MetricDecisions, map[string]string{"key": k, "decision": DecisionSampled})
		total += counterValue(t, h.m, MetricDecisions, map[string]string{"key": k, "decision": DecisionDropped})
	}
	if total != 1000 {
		t.Fatalf("decisions counted %v spans, want 1000", total)
	}

	// Keys idle for window+cooldown are forgotten, making room for new ones.
	h.clock.advance(3 * time.Minute)
	fresh := healthy("new-key", 50_000, 10)
	h.kept(t, build(fresh...), idIndex(fresh))
	keys = seriesKeys(t, h.m, MetricRate)
	if !keys["new-key"] || len(keys) > 3 {
		t.Fatalf("after idle keys expired, series %v, want new-key tracked and at most 3", keys)
	}
}

func gather(t *testing.T, m *selftelemetry.Metrics, name string) []*dto.Metric {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()
		}
	}
	return nil
}

func matches(m *dto.Metric, labels map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := labels[lp.GetName()]; ok && v == lp.GetValue() {
			n++
		}
	}
	return n == len(labels)
}

func gaugeValue(t *testing.T, m *selftelemetry.Metrics, name string, labels map[string]string) float64 {
	t.Helper()
	for _, mt := range gather(t, m, name) {
		if matches(mt, labels) {
			return mt.GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s%v", name, labels)
	return 0
}

func counterValue(t *testing.T, m *selftelemetry.Metrics, name string, labels map[string]string) float64 {
	t.Helper()
	for _, mt := range gather(t, m, name) {
		if matches(mt, labels) {
			return mt.GetCounter().GetValue()
		}
	}
	return 0
}

func seriesKeys(t *testing.T, m *selftelemetry.Metrics, name string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, mt := range gather(t, m, name) {
		for _, lp := range mt.GetLabel() {
			if lp.GetName() == "key" {
				out[lp.GetValue()] = true
			}
		}
	}
	return out
}

func TestTwoInstancesShareRegistry(t *testing.T) {
	m := selftelemetry.New()
	for i := 0; i < 2; i++ {
		f := newFactory(m, nil)
		cfg := f.CreateDefaultConfig().(*Config)
		cfg.P99Threshold = time.Second
		if _, err := f.CreateTraces(context.Background(), processortest.NewNopSettings(f.Type()), cfg, consumertest.NewNop()); err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
	}
}

func BenchmarkSample(b *testing.B) {
	m := selftelemetry.New()
	s, err := newSampler(&Config{BaselineRatio: 0.1, KeyAttribute: "service.name", Window: time.Minute,
		P99Threshold: time.Second, MinSamples: 20, Cooldown: time.Minute, MaxKeys: 100}, m, nil)
	if err != nil {
		b.Fatal(err)
	}
	spans := append(healthy("a", 0, 50), healthy("b", 100, 50)...)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		td := build(spans...)
		b.StartTimer()
		_, _ = s.processTraces(context.Background(), td)
	}
	b.ReportMetric(float64(b.N*len(spans))/b.Elapsed().Seconds(), "spans/s")
}
