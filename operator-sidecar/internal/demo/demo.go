// Package demo runs a simulated controller-runtime operator (two revisions,
// the candidate slower at the tail) next to an in-process sidecar on the
// embedded default outputs, then prints what happened. No external service.
package demo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/collector/otelcol"
	"go.yaml.in/yaml/v3"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/selftelemetry"
	"github.com/opsight/opsight/internal/simoperator"
)

// Options of a demo run.
type Options struct {
	Duration            time.Duration
	Dir                 string
	MetricsAddr         string // sidecar /metrics
	OperatorMetricsAddr string // simulated operator's /metrics ("" = off)
	Rate                float64
	Quiet               bool // no collector logs on stderr
}

// Command is `operator-sidecar demo`.
func Command(settings func() otelcol.CollectorSettings) *cobra.Command {
	o := Options{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a simulated operator (two revisions) with the sidecar on local outputs and print a summary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := Run(cmd.Context(), settings(), o, cmd.OutOrStdout())
			return err
		},
	}
	cmd.Flags().DurationVar(&o.Duration, "duration", 20*time.Second, "how long the simulated operator runs")
	cmd.Flags().StringVar(&o.Dir, "dir", "", "working directory for logs, state and output (default: a new temporary directory)")
	cmd.Flags().StringVar(&o.MetricsAddr, "metrics-addr", "127.0.0.1:9464", "where the sidecar serves /metrics (OpenMetrics)")
	cmd.Flags().StringVar(&o.OperatorMetricsAddr, "operator-metrics-addr", "127.0.0.1:8080", "where the simulated operator serves its controller-runtime /metrics (empty: off)")
	cmd.Flags().Float64Var(&o.Rate, "rate", 100, "reconciles per second per revision")
	cmd.Flags().BoolVar(&o.Quiet, "quiet", true, "hide the collector's own log output")
	return cmd
}

// Summary is what a demo run produced.
type Summary struct {
	Dir            string
	LinesWritten   int64 // by the simulated operators
	KeyedLines     int64
	RecordsRead    float64 // opsight_log_records_total
	RecordsOut     int64   // NDJSON records in the output
	WithTraceID    int64
	Correlation    map[string]float64
	Risk           map[string]float64
	ParseErrors    map[string]float64
	SpansSent      int64
	SpansOut       int64
	Dropped        float64
	LogsOutGlob    string
	TracesOutGlob  string
	ReleasegateCmd string
}

type pod struct {
	name, revision string
	slowShare      float64
	otlpAddr       string
}

// Run runs the demo and writes a summary to w.
func Run(ctx context.Context, set otelcol.CollectorSettings, o Options, w io.Writer) (*Summary, error) {
	if o.Dir == "" {
		d, err := os.MkdirTemp("", "opsight-demo-")
		if err != nil {
			return nil, err
		}
		o.Dir = d
	}
	logRoot := filepath.Join(o.Dir, "pods")
	stateDir := filepath.Join(o.Dir, "state")
	outDir := filepath.Join(stateDir, "out")
	for _, d := range []string{logRoot, stateDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	const ns, cluster = "etcd-system", "demo"
	pods := []*pod{
		{name: "etcd-operator-7c9f-baseline", revision: "v1.4.0"},
		{name: "etcd-operator-8d2a-candidate", revision: "v1.5.0", slowShare: 0.06},
	}
	for _, p := range pods {
		a, err := freeAddr()
		if err != nil {
			return nil, err
		}
		p.otlpAddr = a
	}
	cfg := collectorConfig(pods, logRoot, stateDir, outDir, ns, cluster, o.MetricsAddr)
	y, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	set.ConfigProviderSettings.ResolverSettings.URIs = []string{"yaml:" + string(y)}
	set.DisableGracefulShutdown = true
	if o.Quiet {
		set.LoggingOptions = append(set.LoggingOptions, quietLogger())
	}
	col, err := otelcol.NewCollector(set)
	if err != nil {
		return nil, err
	}
	colErr := make(chan error, 1)
	go func() { colErr <- col.Run(context.Background()) }()
	if err := waitRunning(col, colErr, 30*time.Second); err != nil {
		return nil, fmt.Errorf("starting the sidecar: %w", err)
	}
	fmt.Fprintf(w, "opsight demo: sidecar running (metrics http://%s/metrics), simulated operator for %s in %s\n", o.MetricsAddr, o.Duration, o.Dir)

	om := simoperator.NewOperatorMetrics()
	var srv *http.Server
	if o.OperatorMetricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", om.Handler())
		srv = &http.Server{Addr: o.OperatorMetricsAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		ln, err := net.Listen("tcp", o.OperatorMetricsAddr)
		if err != nil {
			col.Shutdown()
			return nil, fmt.Errorf("operator metrics address %s: %w (choose another with --operator-metrics-addr)", o.OperatorMetricsAddr, err)
		}
		go srv.Serve(ln)
		defer srv.Close()
	}

	runCtx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	cfgs := make([]simoperator.Config, len(pods))
	for i, p := range pods {
		cfgs[i] = simoperator.Config{
			LogRoot: logRoot, Namespace: ns, Pod: p.name, Revision: p.revision, Cluster: cluster,
			ReconcilesPerSecond: o.Rate, SlowTailShare: p.slowShare, SlowTailFactor: 3,
			OTLPEndpoint: "http://" + p.otlpAddr, Metrics: om, Seed: uint64(i + 1),
		}
	}
	stats, err := simoperator.RunAll(runCtx, cfgs)
	if err != nil {
		col.Shutdown()
		return nil, err
	}
	s := &Summary{Dir: o.Dir, LogsOutGlob: filepath.Join(outDir, "logs-*.ndjson"), TracesOutGlob: filepath.Join(outDir, "traces-*.jsonl")}
	for _, st := range stats {
		s.LinesWritten += st.Lines
		s.KeyedLines += st.KeyedLines
		s.SpansSent += st.Spans
	}
	// Let the sidecar catch up: every written line read, past the join wait
	// and written out. (Shutting down earlier would release held lines unjoined.)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if n, _ := countNDJSON(s.LogsOutGlob); n >= s.LinesWritten {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	col.Shutdown()
	if err := <-colErr; err != nil {
		return nil, fmt.Errorf("sidecar: %w", err)
	}
	g := gather()
	s.RecordsRead = g.sum(conventions.MetricLogRecords)
	s.Correlation = g.byLabel(conventions.MetricLogCorrelated, "correlation")
	s.Risk = g.byLabel(conventions.MetricLogRisk, "pattern")
	s.ParseErrors = g.byLabel(conventions.MetricLogParseErrors, "reason")
	s.Dropped = g.sum(conventions.MetricExportDropped)
	s.RecordsOut, s.WithTraceID = countNDJSON(s.LogsOutGlob)
	s.SpansOut = countSpans(s.TracesOutGlob)
	s.ReleasegateCmd = fmt.Sprintf("go run ./releasegate --source otlp-file --otlp-file '%s' --service etcd-operator --baseline v1.4.0 --candidate v1.5.0", s.TracesOutGlob)
	s.print(w)
	return s, nil
}

func collectorConfig(pods []*pod, logRoot, stateDir, outDir, ns, cluster, metricsAddr string) map[string]any {
	receivers := map[string]any{}
	processors := map[string]any{"memory_limiter": map[string]any{"check_interval": "1s", "limit_percentage": 80, "spike_limit_percentage": 20}}
	pipelines := map[string]any{}
	for _, p := range pods {
		id := p.revision
		receivers["operatorlogs/"+id] = map[string]any{
			"include":  []string{filepath.Join(logRoot, ns+"_"+p.name+"_*", "*", "*.log")},
			"start_at": "beginning",
			"storage":  "file_storage",
		}
		receivers["otlp/"+id] = map[string]any{"protocols": map[string]any{"http": map[string]any{"endpoint": p.otlpAddr}}}
		processors["operatorenrich/"+id] = map[string]any{
			"revision":     p.revision,
			"service_name": "etcd-operator",
			"cluster":      cluster, "namespace": ns, "pod": p.name, "container": "manager", "node": "node-a", "zone": "zone-1",
		}
		procs := []string{"memory_limiter", "operatorenrich/" + id}
		pipelines["logs/"+id] = map[string]any{"receivers": []string{"operatorlogs/" + id}, "processors": procs, "exporters": []string{"localfile/logs"}}
		pipelines["traces/"+id] = map[string]any{"receivers": []string{"otlp/" + id}, "processors": procs, "exporters": []string{"localfile/traces", "redmetrics"}}
	}
	return map[string]any{
		"extensions": map[string]any{
			"file_storage":   map[string]any{"directory": filepath.Join(stateDir, "storage"), "create_directory": true},
			"opsightmetrics": map[string]any{"endpoint": metricsAddr},
		},
		"receivers":  receivers,
		"processors": processors,
		"exporters": map[string]any{
			"localfile/logs":   map[string]any{"directory": outDir},
			"localfile/traces": map[string]any{"directory": outDir},
			"redmetrics":       map[string]any{},
		},
		"service": map[string]any{
			"extensions": []string{"file_storage", "opsightmetrics"},
			"telemetry":  map[string]any{"metrics": map[string]any{"level": "none"}, "logs": map[string]any{"level": "warn"}},
			"pipelines":  pipelines,
		},
	}
}

func waitRunning(col *otelcol.Collector, colErr chan error, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-colErr:
			if err == nil {
				err = errors.New("stopped before it started")
			}
			return err
		default:
		}
		if col.GetState() == otelcol.StateRunning {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not running after %s", timeout)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// families are the registry's samples by family name, gathered once.
type families map[string][]labelledValue

func gather() families {
	out := families{}
	mfs, err := selftelemetry.Default().Registry.Gather()
	if err != nil && len(mfs) == 0 {
		return out
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			lv := labelledValue{labels: map[string]string{}}
			for _, l := range m.GetLabel() {
				lv.labels[l.GetName()] = l.GetValue()
			}
			switch {
			case m.Counter != nil:
				lv.v = m.GetCounter().GetValue()
			case m.Gauge != nil:
				lv.v = m.GetGauge().GetValue()
			}
			out[mf.GetName()] = append(out[mf.GetName()], lv)
		}
	}
	return out
}

type labelledValue struct {
	labels map[string]string
	v      float64
}

// promName strips the _total suffix client_golang keeps out of family names.
func promName(n string) []string { return []string{n, strings.TrimSuffix(n, "_total")} }

func (g families) sum(name string) float64 {
	var v float64
	for _, n := range promName(name) {
		for _, lv := range g[n] {
			v += lv.v
		}
	}
	return v
}

func (g families) byLabel(name, label string) map[string]float64 {
	out := map[string]float64{}
	for _, n := range promName(name) {
		for _, lv := range g[n] {
			out[lv.labels[label]] += lv.v
		}
	}
	return out
}

func countNDJSON(glob string) (records, withTrace int64) {
	files, _ := filepath.Glob(glob)
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			records++
			if strings.Contains(sc.Text(), `"trace_id":"`) {
				withTrace++
			}
		}
		fh.Close()
	}
	return records, withTrace
}

func countSpans(glob string) int64 {
	files, _ := filepath.Glob(glob)
	var n int64
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		n += int64(strings.Count(string(b), `"spanId":"`))
	}
	return n
}

func (s *Summary) print(w io.Writer) {
	pct := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return 100 * a / b
	}
	fmt.Fprintf(w, "\nlines written by the operator   %d (%d carry a reconcileID)\n", s.LinesWritten, s.KeyedLines)
	fmt.Fprintf(w, "records read by the sidecar     %.0f\n", s.RecordsRead)
	fmt.Fprintf(w, "records written (NDJSON)        %d, %d with trace_id (%.1f%%)\n", s.RecordsOut, s.WithTraceID, pct(float64(s.WithTraceID), float64(s.RecordsOut)))
	total := s.Correlation[conventions.CorrelationField] + s.Correlation[conventions.CorrelationJoin] + s.Correlation[conventions.CorrelationNone]
	fmt.Fprintf(w, "trace context by correlation    field %.1f%%  join %.1f%%  none %.1f%%\n",
		pct(s.Correlation[conventions.CorrelationField], total), pct(s.Correlation[conventions.CorrelationJoin], total), pct(s.Correlation[conventions.CorrelationNone], total))
	fmt.Fprintf(w, "spans sent / written            %d / %d\n", s.SpansSent, s.SpansOut)
	fmt.Fprintf(w, "export dropped                  %.0f\n", s.Dropped)
	if len(s.ParseErrors) > 0 {
		fmt.Fprintf(w, "shipped raw (parse errors)      %s\n", formatMap(s.ParseErrors))
	}
	fmt.Fprintf(w, "risk patterns                   %s\n", formatMap(s.Risk))
	fmt.Fprintf(w, "\noutput\n  logs    %s\n  traces  %s\n", s.LogsOutGlob, s.TracesOutGlob)
	fmt.Fprintf(w, "\ncompare the two revisions with the release gate:\n  %s\n", s.ReleasegateCmd)
}

func formatMap(m map[string]float64) string {
	type kv struct {
		k string
		v float64
	}
	var l []kv
	for k, v := range m {
		if v > 0 {
			l = append(l, kv{k, v})
		}
	}
	sort.Slice(l, func(i, j int) bool { return l[i].v > l[j].v || (l[i].v == l[j].v && l[i].k < l[j].k) })
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteString("  ")
		}
		fmt.Fprintf(&b, "%s=%.0f", e.k, e.v)
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}
