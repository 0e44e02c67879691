package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"sigs.k8s.io/yaml"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/testservers"
)

// Sampling scenario settings. The chart's defaults are used except window
// and cool-down, shortened through the chart's values (not by editing the
// rendered config) so the whole rise-and-fall fits in about a minute.
const (
	samplingWindow   = 10 * time.Second
	samplingCooldown = 15 * time.Second
	samplingBaseline = 0.01            // chart default gateway.sampling.baseline_ratio
	samplingP99      = 2 * time.Second // chart default gateway.sampling.p99_threshold
	samplingTick     = 100 * time.Millisecond
	samplingPerBatch = 20 // traces per zone per request (two spans each)
	samplingBreach   = 20 * time.Second
	samplingCooled   = 20 * time.Second
	samplingZoneA    = "zone-a"
	samplingZoneB    = "zone-b"
)

// TestSamplingGatewayZones runs the real operator-sidecar with the chart's
// gateway configuration (helm template, gateway on; only listen and export
// addresses replaced by loopback ones), sends reconcile traces from two
// zones over OTLP/HTTP and counts what reaches an OTLP/HTTP sink:
//   - while zone-b's p99 is over the threshold, every zone-b trace is kept
//     and zone-a stays at the 1% baseline (binomial tolerance);
//   - after zone-b recovers, it stays at 100% for the window plus the
//     cool-down, then falls back to 1%;
//   - the RED metrics on the binary's /metrics count every span of both
//     zones (computed before sampling), the sink receives exactly the spans
//     the sampler counted as sampled, and every kept trace is complete.
func TestSamplingGatewayZones(t *testing.T) {
	sink := newSamplingSink(t)
	otlpAddr, metricsAddr := testservers.FreeAddr(t), testservers.FreeAddr(t)
	cfg := gatewayConfigFromChart(t, "gateway.redMetrics.enabled=true",
		"gateway.sampling.window="+samplingWindow.String(), "gateway.sampling.cooldown="+samplingCooldown.String())
	for _, r := range []struct {
		path []string
		to   string
	}{
		{[]string{"receivers", "otlp", "protocols", "grpc", "endpoint"}, testservers.FreeAddr(t)},
		{[]string{"receivers", "otlp", "protocols", "http", "endpoint"}, otlpAddr},
		{[]string{"extensions", "opsightmetrics", "endpoint"}, metricsAddr},
		{[]string{"exporters", "otlp_http/traces", "endpoint"}, sink.url},
		{[]string{"exporters", "otlp_http/logs", "endpoint"}, sink.url},
	} {
		setExisting(t, cfg, r.to, r.path...)
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	sc := newSidecar(t, map[string]string{
		"OPSIGHT_METRICS_ADDR": metricsAddr, // the harness waits on it; the config serves it
		"OPSIGHT_STATE_DIR":    filepath.Join(dir, "state"),
	})
	wrapper := filepath.Join(dir, "operator-sidecar")
	script := fmt.Sprintf("#!/bin/sh\nexec %s --config %s\n", strconv.Quote(sc.bin), strconv.Quote(cfgPath))
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	sc.bin = wrapper
	sc.start()
	waitOTLP(t, sc, otlpAddr)

	gen := &samplingGen{t: t, url: "http://" + otlpAddr + "/v1/traces", rng: rand.New(rand.NewPCG(7, 11)),
		start: time.Now(), traces: map[string]*sentTrace{}, sent: map[string]int{}, client: http.Client{Timeout: 10 * time.Second}}
	rate := func(zone string) float64 {
		v, err := sc.metricValue(conventions.MetricSamplingRate, `key="`+zone+`"`)
		if err != nil {
			t.Fatalf("scraping %s: %v", conventions.MetricSamplingRate, err)
		}
		return v
	}
	var rateLog []string
	var zoneAOff []string
	poll := func(phase string) float64 {
		a, bz := rate(samplingZoneA), rate(samplingZoneB)
		rateLog = append(rateLog, fmt.Sprintf("%5.1fs %-8s zone-a %.2f zone-b %.2f", time.Since(gen.start).Seconds(), phase, a, bz))
		if a != samplingBaseline {
			zoneAOff = append(zoneAOff, rateLog[len(rateLog)-1])
		}
		return bz
	}

	// Phase 1: zone-b breaches (one reconcile in ten takes 2.5 s), zone-a is healthy.
	var raisedB []float64
	for i := 0; time.Since(gen.start) < samplingBreach; i++ {
		gen.send("breach", samplingZoneA, false)
		gen.send("breach", samplingZoneB, true)
		if i%10 == 9 {
			raisedB = append(raisedB, poll("breach"))
		}
		time.Sleep(samplingTick)
	}
	breachEnd := time.Now()

	// Phase 2: both healthy; zone-b stays raised until the breaching spans
	// leave the window and the cool-down has passed. Bounded wait.
	var fellAfter time.Duration
	limit := samplingWindow + samplingCooldown + 30*time.Second
	for i := 0; fellAfter == 0 && time.Since(breachEnd) < limit; i++ {
		gen.send("recover", samplingZoneA, false)
		gen.send("recover", samplingZoneB, false)
		if i%5 == 4 && poll("recover") == samplingBaseline {
			fellAfter = time.Since(breachEnd)
		}
		time.Sleep(samplingTick)
	}
	if fellAfter == 0 {
		t.Fatalf("zone-b still raised %s after its breach ended (window %s + cool-down %s)\n%s\n%s",
			limit, samplingWindow, samplingCooldown, strings.Join(rateLog, "\n"), sc.logs())
	}

	// Phase 3: cooled down; both zones back at baseline.
	cooledStart := time.Now()
	for i := 0; time.Since(cooledStart) < samplingCooled; i++ {
		gen.send("cooled", samplingZoneA, false)
		gen.send("cooled", samplingZoneB, false)
		if i%10 == 9 {
			poll("cooled")
		}
		time.Sleep(samplingTick)
	}

	// Everything the sampler kept reaches the sink (bounded wait).
	var sampled, dropped float64
	waitFor(30*time.Second, func() bool {
		sampled, _ = sc.metricValue(conventions.MetricSamplingDecisions, `decision="sampled"`)
		return float64(sink.spanCount()) == sampled
	})
	dropped, _ = sc.metricValue(conventions.MetricSamplingDecisions, `decision="dropped"`)
	red := map[string]float64{}
	for _, z := range []string{samplingZoneA, samplingZoneB} {
		if red[z], err = sc.metricValue(conventions.MetricSpanCalls, `service_name="`+samplingService(z)+`"`); err != nil {
			t.Fatal(err)
		}
	}
	exportDropped, _ := sc.metricValue("opsight_export_dropped_total", "")
	sc.stop(syscall.SIGTERM)

	// Tally per phase and zone, and per 5 s interval for the timeline.
	kept := sink.kept()
	type cell struct{ sent, kept int }
	byPhase := map[string]*cell{}
	timeline := map[int]map[string]*cell{}
	incomplete := 0
	for id, tr := range gen.traces {
		k := tr.phase + "/" + tr.zone
		if byPhase[k] == nil {
			byPhase[k] = &cell{}
		}
		slot := int(tr.at / (5 * time.Second))
		if timeline[slot] == nil {
			timeline[slot] = map[string]*cell{samplingZoneA: {}, samplingZoneB: {}}
		}
		byPhase[k].sent++
		timeline[slot][tr.zone].sent++
		if n, ok := kept[id]; ok {
			byPhase[k].kept++
			timeline[slot][tr.zone].kept++
			if n != 2 {
				incomplete++
			}
		}
	}
	for id := range kept {
		if gen.traces[id] == nil {
			t.Errorf("the sink received trace %s that was never sent", id)
		}
	}
	var tl []string
	for s := 0; s < len(timeline); s++ {
		c := timeline[s]
		if c == nil {
			continue
		}
		tl = append(tl, fmt.Sprintf("%3d-%3ds  zone-a %4d/%5d (%5.1f%%)  zone-b %4d/%5d (%5.1f%%)", s*5, s*5+5,
			c[samplingZoneA].kept, c[samplingZoneA].sent, pct(c[samplingZoneA].kept, c[samplingZoneA].sent),
			c[samplingZoneB].kept, c[samplingZoneB].sent, pct(c[samplingZoneB].kept, c[samplingZoneB].sent)))
	}
	t.Logf("kept/sent traces per 5 s (breach ends at %.1fs, zone-b back to baseline %.1fs later):\n%s",
		breachEnd.Sub(gen.start).Seconds(), fellAfter.Seconds(), strings.Join(tl, "\n"))
	t.Logf("sampling rate gauges:\n%s", strings.Join(rateLog, "\n"))
	for _, k := range []string{"breach/zone-a", "breach/zone-b", "recover/zone-a", "recover/zone-b", "cooled/zone-a", "cooled/zone-b"} {
		if c := byPhase[k]; c != nil {
			t.Logf("%-15s kept %5d of %5d traces (%.2f%%)", k, c.kept, c.sent, pct(c.kept, c.sent))
		}
	}
	t.Logf("spans sent %d (zone-a %d, zone-b %d); RED calls zone-a %.0f, zone-b %.0f; sampler sampled %.0f dropped %.0f; sink spans %d",
		gen.sent[samplingZoneA]+gen.sent[samplingZoneB], gen.sent[samplingZoneA], gen.sent[samplingZoneB], red[samplingZoneA], red[samplingZoneB],
		sampled, dropped, sink.spanCount())

	// zone-b raised to 100% while breaching: every trace but at most the
	// requests before min_samples entry spans were seen.
	if c := byPhase["breach/zone-b"]; c == nil || c.kept < c.sent-samplingPerBatch {
		t.Errorf("breach: zone-b kept %+v, want all but at most %d traces", c, samplingPerBatch)
	}
	if len(raisedB) == 0 || raisedB[len(raisedB)-1] != 1 {
		t.Errorf("breach: %s{key=zone-b} = %v, want 1", conventions.MetricSamplingRate, raisedB)
	}
	// Healthy zone at baseline throughout; zone-b at baseline once cooled.
	for _, k := range []string{"breach/zone-a", "recover/zone-a", "cooled/zone-a", "cooled/zone-b"} {
		c := byPhase[k]
		if c == nil || c.sent < 2000 {
			t.Errorf("%s: %+v traces, too few to judge a 1%% rate", k, c)
			continue
		}
		if lo, hi := binomialBounds(c.sent, samplingBaseline); c.kept < lo || c.kept > hi {
			t.Errorf("%s: kept %d of %d traces, want within [%d, %d] (baseline %.2f, 4.5 sigma)", k, c.kept, c.sent, lo, hi, samplingBaseline)
		}
	}
	if len(zoneAOff) > 0 {
		t.Errorf("zone-a left its baseline rate:\n%s", strings.Join(zoneAOff, "\n"))
	}
	// Fell back after the cool-down, not before, and not much after window + cool-down.
	if fellAfter < samplingCooldown || fellAfter > samplingWindow+samplingCooldown+10*time.Second {
		t.Errorf("zone-b back at baseline %s after the breach ended, want between the cool-down %s and window+cool-down %s (+10s)",
			fellAfter, samplingCooldown, samplingWindow+samplingCooldown)
	}
	// RED metrics before sampling: every span of both zones is counted.
	for _, z := range []string{samplingZoneA, samplingZoneB} {
		if red[z] != float64(gen.sent[z]) {
			t.Errorf("RED %s{service_name=%q} = %.0f, want every span sent: %d", conventions.MetricSpanCalls, samplingService(z), red[z], gen.sent[z])
		}
	}
	total := gen.sent[samplingZoneA] + gen.sent[samplingZoneB]
	if sampled+dropped != float64(total) {
		t.Errorf("sampler decided on %.0f spans (sampled %.0f + dropped %.0f), want every span sent: %d", sampled+dropped, sampled, dropped, total)
	}
	if float64(sink.spanCount()) != sampled {
		t.Errorf("the sink received %d spans, the sampler kept %.0f", sink.spanCount(), sampled)
	}
	if incomplete > 0 {
		t.Errorf("%d kept traces arrived without both of their spans (sampling must be consistent by trace id)", incomplete)
	}
	if exportDropped != 0 {
		t.Errorf("opsight_export_dropped_total = %.0f, want 0", exportDropped)
	}
}

func pct(k, n int) float64 {
	if n == 0 {
		return 0
	}
	return 100 * float64(k) / float64(n)
}

// binomialBounds is np ± (4.5σ + 1): a false failure about once in 150,000 runs.
func binomialBounds(n int, p float64) (int, int) {
	mean := float64(n) * p
	d := 4.5*math.Sqrt(mean*(1-p)) + 1
	return int(math.Max(0, math.Floor(mean-d))), int(math.Ceil(mean + d))
}

// samplingService: the RED metrics have no zone label, so each zone's pods
// run under their own service name and the counts can be told apart.
func samplingService(zone string) string { return "widget-operator-" + zone }

// gatewayConfigFromChart renders the chart with ci/gateway-on.yaml (plus
// --set values) and returns the gateway's collector configuration.
func gatewayConfigFromChart(t *testing.T, set ...string) map[string]any {
	t.Helper()
	root, err := testservers.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-f", filepath.Join(root, "deploy/helm/opsight", "ci", "gateway-on.yaml")}, setArgs(set)...)
	for _, cm := range chartConfigMaps(t, args...) {
		if cm.Labels["app.kubernetes.io/component"] != "gateway" {
			continue
		}
		cfg := map[string]any{}
		if err := yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &cfg); err != nil {
			t.Fatalf("gateway config.yaml is not YAML: %v", err)
		}
		return cfg
	}
	t.Fatal("the rendered chart has no gateway ConfigMap")
	return nil
}

// setExisting replaces a value the rendered config must already have: a
// renamed key in the chart fails here rather than adding a second one.
func setExisting(t *testing.T, m map[string]any, v string, path ...string) {
	t.Helper()
	for i, k := range path {
		if i == len(path)-1 {
			if old, ok := m[k].(string); !ok || old == "" {
				t.Fatalf("rendered gateway config has no %s", strings.Join(path, "."))
			}
			m[k] = v
			return
		}
		next, ok := m[k].(map[string]any)
		if !ok {
			t.Fatalf("rendered gateway config has no %s", strings.Join(path[:i+1], "."))
		}
		m = next
	}
}

type sentTrace struct {
	zone, phase string
	at          time.Duration // since the scenario started
}

// samplingGen sends reconcile traces: a root SERVER span with a CLIENT child.
type samplingGen struct {
	t      *testing.T
	url    string
	rng    *rand.Rand
	start  time.Time
	traces map[string]*sentTrace
	sent   map[string]int // spans per zone
	client http.Client
}

func (g *samplingGen) send(phase, zone string, breach bool) {
	g.t.Helper()
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	attrs := rs.Resource().Attributes()
	attrs.PutStr("service.name", samplingService(zone))
	attrs.PutStr(conventions.AttrZone, zone)
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	now := time.Now()
	for i := 0; i < samplingPerBatch; i++ {
		var tid pcommon.TraceID
		var root, child pcommon.SpanID
		for j := range tid {
			tid[j] = byte(g.rng.Uint32())
		}
		for j := range root {
			root[j], child[j] = byte(g.rng.Uint32()), byte(g.rng.Uint32())
		}
		dur := time.Duration(20+g.rng.IntN(60)) * time.Millisecond
		if breach && i%10 == 0 {
			dur = samplingP99 + 500*time.Millisecond
		}
		r := spans.AppendEmpty()
		r.SetTraceID(tid)
		r.SetSpanID(root)
		r.SetName("Reconcile")
		r.SetKind(ptrace.SpanKindServer)
		r.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-dur)))
		r.SetEndTimestamp(pcommon.NewTimestampFromTime(now))
		c := spans.AppendEmpty()
		c.SetTraceID(tid)
		c.SetSpanID(child)
		c.SetParentSpanID(root)
		c.SetName("GET")
		c.SetKind(ptrace.SpanKindClient)
		c.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-dur / 2)))
		c.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(-dur / 4)))
		g.traces[hex.EncodeToString(tid[:])] = &sentTrace{zone: zone, phase: phase, at: now.Sub(g.start)}
	}
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		g.t.Fatal(err)
	}
	resp, err := g.client.Post(g.url, "application/x-protobuf", bytes.NewReader(body))
	if err != nil {
		g.t.Fatalf("sending spans: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		g.t.Fatalf("gateway answered %d to a span batch", resp.StatusCode)
	}
	g.sent[zone] += 2 * samplingPerBatch
}

// samplingSink is an OTLP/HTTP receiver counting spans per trace id.
type samplingSink struct {
	url   string
	mu    sync.Mutex
	spans map[string]int
	total int
}

func newSamplingSink(t *testing.T) *samplingSink {
	t.Helper()
	s := &samplingSink{spans: map[string]int{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.url = "http://" + l.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

func (s *samplingSink) serve(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(io.LimitReader(body, 64<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if r.URL.Path == "/v1/traces" {
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(b); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		rss := req.Traces().ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			sss := rss.At(i).ScopeSpans()
			for j := 0; j < sss.Len(); j++ {
				sp := sss.At(j).Spans()
				for k := 0; k < sp.Len(); k++ {
					id := sp.At(k).TraceID()
					s.spans[hex.EncodeToString(id[:])]++
					s.total++
				}
			}
		}
		s.mu.Unlock()
		resp, _ := ptraceotlp.NewExportResponse().MarshalProto()
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(resp)
		return
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

func (s *samplingSink) spanCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

func (s *samplingSink) kept() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.spans))
	for k, v := range s.spans {
		out[k] = v
	}
	return out
}
