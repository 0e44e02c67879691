package drilldown

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.yaml.in/yaml/v3"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/opsight/opsight/collector"
	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/simoperator"
	"github.com/opsight/opsight/operator-sidecar/webhook"
)

// The pod as the API server would create it, and what the kubelet fills in.
const (
	podName = "etcd-operator-controller-manager-7d9f8c6b5d-x2k9p"
	podUID  = "6a1e2f3c-0000-4000-8000-00000000d1d1"
	node    = "node-a"
)

// TestDrilldownOnSidecarOutput runs the whole chain in-process: the
// webhook injects a kubebuilder operator's pod (testdata/pod.json); the
// simulated operator runs with the operator container's resulting
// OTEL_SERVICE_NAME; the sidecar's collector components run with the
// sidecar container's environment, sending logs to a fake Loki (the exact
// push body Loki would store) and spans to OTLP files (what Tempo would
// store). Then, for every trace, the trace → logs query of
// deploy/grafana/datasources.yaml is built as Grafana builds it — with the
// trace id as Grafana prints it (16 leading zeros trimmed) and as Tempo's
// search prints it (all leading zeros trimmed) — and evaluated on the Loki
// entries: it must return every line the operator wrote in that reconcile
// (same reconcileID), whether the line carried the trace id itself
// (correlation=field) or got it from the late join (correlation=join), and
// nothing else. The older Grafana default (a line filter) is evaluated too,
// to show what it misses: every joined line, and field lines that spell the
// id otherwise (a Datadog logger's decimal dd.trace_id).
func TestDrilldownOnSidecarOutput(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a simulated operator and the sidecar's collector for ~10 s")
	}
	dir := t.TempDir()
	loki := newFakeLoki(t)

	// 1. Injection.
	sidecarEnv, otelServiceName := inject(t, loki.URL+"/loki/api/v1/push")
	service := sidecarEnv[conventions.EnvServiceName]
	if service == "" || service != otelServiceName || service == "manager" {
		t.Fatalf("injection: sidecar %s=%q, operator OTEL_SERVICE_NAME=%q: want one name, not the container's", conventions.EnvServiceName, service, otelServiceName)
	}
	for k, v := range sidecarEnv {
		t.Setenv(k, v) // the sidecar's components read their settings from it
	}

	// 2. The sidecar's pipeline (the shape envconfig builds from this env).
	logRoot := filepath.Join(dir, "pods")
	podLogDir := simoperator.PodLogDir(logRoot, sidecarEnv[conventions.EnvPodNamespace], podName, podUID, sidecarEnv[conventions.EnvContainer])
	outDir := filepath.Join(dir, "out")
	otlpAddr := freeAddr(t)
	col := startCollector(t, map[string]any{
		"receivers": map[string]any{
			"operatorlogs": map[string]any{"include": []string{filepath.Join(podLogDir, "*.log")}, "start_at": "beginning"},
			"otlp":         map[string]any{"protocols": map[string]any{"http": map[string]any{"endpoint": otlpAddr}}},
		},
		"processors": map[string]any{"operatorenrich": map[string]any{}}, // everything from the environment
		"exporters": map[string]any{
			"loki":             map[string]any{"endpoint": sidecarEnv[conventions.EnvLokiURL], "encoding": "json"},
			"localfile/traces": map[string]any{"directory": outDir},
		},
		"service": map[string]any{
			"telemetry": map[string]any{"metrics": map[string]any{"level": "none"}, "logs": map[string]any{"level": "error"}},
			"pipelines": map[string]any{
				"logs":   map[string]any{"receivers": []string{"operatorlogs"}, "processors": []string{"operatorenrich"}, "exporters": []string{"loki"}},
				"traces": map[string]any{"receivers": []string{"otlp"}, "processors": []string{"operatorenrich"}, "exporters": []string{"localfile/traces"}},
			},
		},
	})

	// 3. The operator, naming its spans as the webhook told its SDK.
	op, err := simoperator.New(simoperator.Config{
		LogRoot: logRoot, Namespace: sidecarEnv[conventions.EnvPodNamespace], Pod: podName, PodUID: podUID,
		Container: sidecarEnv[conventions.EnvContainer], Service: otelServiceName, Revision: sidecarEnv[conventions.EnvRevision],
		ReconcilesPerSecond: 150, OTLPEndpoint: "http://" + otlpAddr, Seed: 7,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	stats, err := op.Run(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if stats.SpanErrors > 0 {
		t.Fatalf("the sidecar refused %d span batches", stats.SpanErrors)
	}
	// Every line reaches Loki (after the join's hold), then stop.
	deadline := time.Now().Add(30 * time.Second)
	for loki.count() < int(stats.Lines) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	col.Shutdown()
	entries := loki.all()
	if len(entries) != int(stats.Lines) {
		t.Fatalf("Loki got %d entries, the operator wrote %d lines", len(entries), stats.Lines)
	}
	traces := readTraces(t, outDir)

	// 4. One identity everywhere.
	for _, e := range entries {
		if e.Labels[conventions.LabelServiceName] != service {
			t.Fatalf("Loki entry with service_name %q, want %q: %v", e.Labels[conventions.LabelServiceName], service, e.Labels)
		}
	}
	for _, tr := range traces {
		if got := tr.attr(conventions.AttrServiceName); got != service {
			t.Fatalf("span service.name %q, want %q", got, service)
		}
		if got := tr.attr("opsight.original_service_name"); got != "" {
			t.Fatalf("span renamed from %q: the operator's SDK and the sidecar disagreed", got)
		}
	}

	// 5. The drill-down, trace by trace.
	cfg, err := LoadTracesToLogs(datasources)
	if err != nil {
		t.Fatal(err)
	}
	linesOf := map[string][]Entry{} // by reconcileID written in the line: the truth
	for _, e := range entries {
		if id := reconcileIDOf(e.Line); id != "" {
			linesOf[id] = append(linesOf[id], e)
		}
	}
	var n struct {
		traces, field, joined, zeros64, leadingZeroJoined, incomplete int
		fieldLines, lineFilterField, lineFilterJoined                 int
	}
	for _, tr := range traces {
		want := linesOf[tr.reconcileID]
		if len(want) == 0 {
			continue // a reconcile cut short at the end of the run wrote no line
		}
		correlations := map[string]int{}
		for _, e := range want {
			correlations[e.Metadata[conventions.LogCorrelation]]++
		}
		if correlations[conventions.CorrelationField]+correlations[conventions.CorrelationJoin] != len(want) {
			n.incomplete++ // some line was not joined (its span came after the hold): not a query question
			continue
		}
		n.traces++
		joined := correlations[conventions.CorrelationJoin] > 0
		full := hex.EncodeToString(tr.traceID[:])
		switch {
		case joined && full[0] == '0':
			n.leadingZeroJoined++
			n.joined++
		case joined:
			n.joined++
		case strings.HasPrefix(full, strings.Repeat("0", 16)):
			n.zeros64++
			n.field++
		default:
			n.field++
		}
		from, to, err := cfg.Window(tr.start, tr.end)
		if err != nil {
			t.Fatal(err)
		}
		for _, printed := range []string{strings.TrimPrefix(full, strings.Repeat("0", 16)), strings.TrimLeft(full, "0")} {
			q, err := cfg.Build(tr.grafanaSpan(printed), FormCustom)
			if err != nil {
				t.Fatalf("trace %s: %v", full, err)
			}
			got, err := Select(entries, q, from, to)
			if err != nil {
				t.Fatal(err)
			}
			if !sameLines(got, want) {
				t.Fatalf("trace %s (printed %s, %v): the query\n  %s\nreturned %d lines, the reconcile wrote %d:\n got %v\nwant %v",
					full, printed, correlations, q, len(got), len(want), lines(got), lines(want))
			}
		}
		// What the older default query returns: the line filter is blind
		// to joined lines, whose text never holds the id.
		q, err := cfg.Build(tr.grafanaSpan(strings.TrimPrefix(full, strings.Repeat("0", 16))), FormLineFilter)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Select(entries, q, from, to)
		if err != nil {
			t.Fatal(err)
		}
		if joined {
			n.lineFilterJoined += len(got)
		} else {
			n.fieldLines += len(want)
			n.lineFilterField += len(got)
		}
	}
	t.Logf("%d Loki entries, %d traces; checked %d: %d field (%d with 64-bit ids), %d joined (%d with a leading zero); %d skipped (a line not joined). "+
		"The older line filter found %d of %d lines of field traces (Datadog-style loggers write the id in decimal) and %d lines of joined traces",
		len(entries), len(traces), n.traces, n.field, n.zeros64, n.joined, n.leadingZeroJoined, n.incomplete,
		n.lineFilterField, n.fieldLines, n.lineFilterJoined)
	// The run must have exercised every kind of trace, or the test proves little.
	if n.field == 0 || n.joined == 0 || n.zeros64 == 0 || n.leadingZeroJoined == 0 {
		t.Errorf("want field, joined, 64-bit-id and leading-zero joined traces; got %+v", n)
	}
	if n.incomplete*20 > n.traces {
		t.Errorf("%d traces had unjoined lines, %d complete: the late join is not doing its job", n.incomplete, n.traces)
	}
	if n.lineFilterJoined != 0 {
		t.Errorf("the line filter found %d joined lines; their text has no trace id, so it cannot", n.lineFilterJoined)
	}
	if n.lineFilterField == 0 || n.lineFilterField >= n.fieldLines {
		t.Errorf("the line filter found %d of %d field lines: want some (hex ids in the text) but not all (decimal Datadog ids)", n.lineFilterField, n.fieldLines)
	}
}

// inject runs the webhook on testdata/pod.json with the chart's injection
// settings and returns the sidecar's environment (downward-API fields
// resolved as the kubelet would) and the operator container's
// OTEL_SERVICE_NAME.
func inject(t *testing.T, lokiURL string) (map[string]string, string) {
	t.Helper()
	cfg, err := webhook.ParseConfig([]byte("image: ghcr.io/opsight/operator-sidecar:0.1.0\nnativeSidecar: true\nnamespace: opsight-system\n" +
		"env:\n  - {name: " + conventions.EnvLokiURL + ", value: \"" + lokiURL + "\"}\n  - {name: " + conventions.EnvCluster + ", value: prod-eu-1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join("testdata", "pod.json"))
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := json.Unmarshal(raw, &pod); err != nil {
		t.Fatal(err)
	}
	resp := webhook.Mutate(&cfg, &admissionv1.AdmissionRequest{UID: "u", Operation: admissionv1.Create, Namespace: pod.Namespace,
		Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Object: runtime.RawExtension{Raw: raw}})
	if resp.Patch == nil || len(resp.Warnings) > 0 {
		t.Fatalf("injection: no patch or warnings %q", resp.Warnings)
	}
	patch, err := jsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		t.Fatal(err)
	}
	out, err := patch.Apply(raw)
	if err != nil {
		t.Fatal(err)
	}
	var injected corev1.Pod
	if err := json.Unmarshal(out, &injected); err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{"metadata.name": podName, "metadata.namespace": pod.Namespace, "metadata.uid": podUID, "spec.nodeName": node}
	env := map[string]string{}
	otel := ""
	for _, c := range append(injected.Spec.InitContainers, injected.Spec.Containers...) {
		for _, e := range c.Env {
			switch {
			case c.Name == webhook.DefaultContainerName && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
				env[e.Name] = fields[e.ValueFrom.FieldRef.FieldPath]
			case c.Name == webhook.DefaultContainerName:
				env[e.Name] = e.Value
			case c.Name == "manager" && e.Name == webhook.EnvOTelServiceName:
				otel = e.Value
			}
		}
	}
	return env, otel
}

func startCollector(t *testing.T, cfg map[string]any) *otelcol.Collector {
	t.Helper()
	y, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	col, err := otelcol.NewCollector(otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{Command: "drilldown-test", Version: "test"},
		Factories: collector.Components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{ResolverSettings: confmap.ResolverSettings{
			URIs: []string{"yaml:" + string(y)}, ProviderFactories: []confmap.ProviderFactory{yamlprovider.NewFactory()},
		}},
		DisableGracefulShutdown: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- col.Run(context.Background()) }()
	t.Cleanup(func() {
		col.Shutdown()
		select {
		case <-errc:
		case <-time.After(30 * time.Second):
			t.Error("collector did not stop")
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for col.GetState() != otelcol.StateRunning {
		select {
		case err := <-errc:
			t.Fatalf("collector stopped before running: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("collector not running after 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return col
}

// fakeLoki stores what the sidecar pushes (JSON encoding).
type fakeLoki struct {
	*httptest.Server
	mu      sync.Mutex
	entries []Entry
}

func newFakeLoki(t *testing.T) *fakeLoki {
	l := &fakeLoki{}
	l.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/loki/api/v1/push" || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want POST /loki/api/v1/push, application/json", http.StatusBadRequest)
			return
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		var err error
		if l.entries, err = DecodePush(r.Body, l.entries); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(l.Close)
	return l
}

func (l *fakeLoki) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

func (l *fakeLoki) all() []Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.entries)
}

// trace is a Reconcile root span as Tempo stores it.
type trace struct {
	traceID     pcommon.TraceID
	spanID      pcommon.SpanID
	reconcileID string
	start, end  time.Time
	resource    []KV
	attrs       []KV
}

func (tr trace) attr(k string) string {
	for _, kv := range tr.resource {
		if kv.Key == k {
			return kv.Value
		}
	}
	return ""
}

// grafanaSpan is the span as Grafana's trace view has it, with the trace id
// printed as given.
func (tr trace) grafanaSpan(traceID string) Span {
	return Span{TraceID: traceID, SpanID: hex.EncodeToString(tr.spanID[:]), Name: "Reconcile", Process: tr.resource, Attrs: tr.attrs}
}

func readTraces(t *testing.T, dir string) []trace {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "traces-*.jsonl"))
	if len(files) == 0 {
		t.Fatalf("no traces-*.jsonl in %s", dir)
	}
	var out []trace
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			td, err := (&ptrace.JSONUnmarshaler{}).UnmarshalTraces(sc.Bytes())
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			for i := 0; i < td.ResourceSpans().Len(); i++ {
				rs := td.ResourceSpans().At(i)
				res := kvs(rs.Resource().Attributes())
				for j := 0; j < rs.ScopeSpans().Len(); j++ {
					spans := rs.ScopeSpans().At(j).Spans()
					for k := 0; k < spans.Len(); k++ {
						sp := spans.At(k)
						id, ok := sp.Attributes().Get(conventions.DefaultSpanCorrelationKey)
						if sp.Name() != "Reconcile" || !ok {
							continue
						}
						out = append(out, trace{traceID: sp.TraceID(), spanID: sp.SpanID(), reconcileID: id.AsString(),
							start: sp.StartTimestamp().AsTime(), end: sp.EndTimestamp().AsTime(), resource: res, attrs: kvs(sp.Attributes())})
					}
				}
			}
		}
		fh.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if len(out) == 0 {
		t.Fatal("no Reconcile spans written")
	}
	return out
}

func kvs(m pcommon.Map) []KV {
	var out []KV
	for k, v := range m.All() {
		out = append(out, KV{k, v.AsString()})
	}
	return out
}

// reconcileIDOf is the reconcileID the operator wrote in a JSON line.
func reconcileIDOf(line string) string {
	var f struct {
		ReconcileID string `json:"reconcileID"`
	}
	if json.Unmarshal([]byte(line), &f) != nil {
		return ""
	}
	return f.ReconcileID
}

func sameLines(a, b []Entry) bool {
	x, y := lines(a), lines(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

func lines(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = fmt.Sprintf("%s %s", e.Time.Format(time.RFC3339Nano), e.Line)
	}
	return out
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
