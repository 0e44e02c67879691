// Package cli is the triage command: flags, reading, running the analysis
// and writing the report. main stays a one-liner over Main.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/opsight/opsight/triage/internal/alert"
	"github.com/opsight/opsight/triage/internal/analysis"
	"github.com/opsight/opsight/triage/internal/data"
	"github.com/opsight/opsight/triage/internal/links"
	"github.com/opsight/opsight/triage/internal/online"
	"github.com/opsight/opsight/triage/internal/render"
)

const usage = `triage: from "it got slower" to the span, the zone and the log lines, with intervals.

Offline, on the sidecar's embedded-default output (make demo):
  triage --dir DIR --baseline-revision v1.4.0            # DIR as printed by the demo
  triage --traces 'out/traces-*.jsonl' --logs 'out/logs-*.ndjson' --service etcd-operator --window 10m

Online, from Prometheus (span metrics, exemplars), Tempo and Loki:
  triage --prometheus http://prometheus:9090 --tempo http://tempo:3200 --loki http://loki:3100 \
         --service etcd-operator --namespace etcd-system --window 30m --baseline-revision v1.4.0
  triage --alert payload.json --prometheus … --tempo … --loki …   # an Alertmanager webhook body (- = stdin)

Baseline: --baseline-revision (against --candidate-revision, or every other
revision, in the same window), or else (--baseline previous-window) the
window just before --from..--to.

Exit codes: 0 nothing moved, 1 findings, 3 an error.

Flags:
`

type multi []string

func (m *multi) String() string { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error {
	*m = append(*m, s)
	return nil
}

// Main runs the command and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	return MainWith(args, os.Stdin, stdout, stderr, time.Now)
}

// MainWith is Main with stdin (for --alert -) and the clock given.
func MainWith(args []string, stdin io.Reader, stdout, stderr io.Writer, now func() time.Time) int {
	fs := flag.NewFlagSet("triage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	var (
		traces, logs                        multi
		dir, service, namespace, cluster    string
		baseRev, candRev, from, to, format  string
		window                              time.Duration
		quantiles                           string
		minRatio, errorDelta, alpha         float64
		maxTraces                           int
		grafana, promUID, tempoUID, lokiUID string
		promURL, tempoURL, lokiURL          string
		alertFile, baselineMode             string
		lookback, timeout                   time.Duration
	)
	fs.Var(&traces, "traces", "OTLP JSON lines files (glob; repeatable), e.g. DIR/state/out/traces-*.jsonl")
	fs.Var(&logs, "logs", "the sidecar's NDJSON log files (glob; repeatable), e.g. DIR/state/out/logs-*.ndjson")
	fs.StringVar(&dir, "dir", "", "a demo directory (go run ./operator-sidecar demo --dir DIR): reads DIR/state/out/traces-*.jsonl and logs-*.ndjson")
	fs.StringVar(&service, "service", "", "service.name of the spans (service_name in Loki); default: the only one in the data")
	fs.StringVar(&namespace, "namespace", "", "only this namespace (k8s.namespace.name)")
	fs.StringVar(&cluster, "cluster", "", "only this cluster (k8s.cluster.name)")
	fs.StringVar(&baseRev, "baseline-revision", "", "compare against this revision (service.version); empty: against the previous window")
	fs.StringVar(&candRev, "candidate-revision", "", "with --baseline-revision: the revision to compare (default: every other revision)")
	fs.StringVar(&from, "from", "", "start of the window (RFC 3339); default: --to minus --window, else the middle of the data (window mode) or its start")
	fs.StringVar(&to, "to", "", "end of the window (RFC 3339); default: the end of the data")
	fs.DurationVar(&window, "window", 0, "length of the window ending at --to (the baseline window is as long, just before)")
	fs.StringVar(&quantiles, "quantiles", "0.5,0.9,0.99", "latency quantiles compared")
	fs.Float64Var(&minRatio, "min-ratio", 1.10, "smallest latency change reported, as a ratio (1.10 = 10% slower or faster)")
	fs.Float64Var(&errorDelta, "error-delta", 0.01, "smallest change of an error share reported, absolute (0.01 = 1 percentage point)")
	fs.Float64Var(&alpha, "alpha", 0.01, "chance of any false finding across all tests (Holm)")
	fs.IntVar(&maxTraces, "max-traces", 5, "trace ids listed per finding")
	fs.StringVar(&format, "format", "text", "text, markdown or json")
	fs.StringVar(&grafana, "grafana-url", "http://localhost:3000", "Grafana base URL for Explore links")
	fs.StringVar(&promUID, "prometheus-uid", links.PrometheusUID, "Prometheus data source UID (deploy/grafana/datasources.yaml)")
	fs.StringVar(&tempoUID, "tempo-uid", links.TempoUID, "Tempo data source UID")
	fs.StringVar(&lokiUID, "loki-uid", links.LokiUID, "Loki data source UID")
	fs.StringVar(&promURL, "prometheus", "", "online: Prometheus base URL (span metrics, exemplars, the sidecar's log counters), e.g. http://prometheus:9090")
	fs.StringVar(&tempoURL, "tempo", "", "online: Tempo base URL (traces by id, TraceQL search), e.g. http://tempo:3200")
	fs.StringVar(&lokiURL, "loki", "", "online: Loki base URL (the traces' lines by trace_id), e.g. http://loki:3100")
	fs.StringVar(&alertFile, "alert", "", "an Alertmanager webhook payload (file, or - for stdin): service, namespace, cluster, revision and the window from the alert")
	fs.DurationVar(&lookback, "alert-lookback", 15*time.Minute, "with --alert: the window starts this long before the alert's startsAt")
	fs.StringVar(&baselineMode, "baseline", "", "previous-window: compare with the window just before (the default without --baseline-revision)")
	fs.DurationVar(&timeout, "timeout", 2*time.Minute, "online: give up after this long")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return analysis.ExitNothingMoved
		}
		return analysis.ExitError
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "triage: %v\n", err)
		return analysis.ExitError
	}
	if fs.NArg() > 0 {
		return fail(fmt.Errorf("unexpected argument %q: every input is a flag (see -h)", fs.Arg(0)))
	}
	if dir != "" {
		out := filepath.Join(dir, "state", "out")
		traces = append(traces, filepath.Join(out, "traces-*.jsonl"))
		logs = append(logs, filepath.Join(out, "logs-*.ndjson"))
	}
	isOnline := promURL != ""
	switch {
	case isOnline && len(traces)+len(logs) > 0:
		return fail(errors.New("--prometheus (online) and --dir/--traces/--logs (offline) exclude each other"))
	case !isOnline && (tempoURL != "" || lokiURL != ""):
		return fail(errors.New("--tempo and --loki need --prometheus: the span metrics say what moved"))
	case !isOnline && len(traces) == 0:
		return fail(errors.New("no spans to read: pass --traces 'DIR/state/out/traces-*.jsonl' or --dir DIR (a demo directory), or --prometheus URL (online)"))
	}
	switch baselineMode {
	case "":
	case "previous-window":
		if baseRev != "" {
			return fail(errors.New("--baseline previous-window and --baseline-revision exclude each other"))
		}
	default:
		return fail(fmt.Errorf("--baseline %q: expected previous-window (or use --baseline-revision R)", baselineMode))
	}
	var tg *alert.Target
	if alertFile != "" {
		var b []byte
		var err error
		if alertFile == "-" {
			b, err = io.ReadAll(io.LimitReader(stdin, 16<<20))
		} else {
			b, err = os.ReadFile(alertFile)
		}
		if err != nil {
			return fail(fmt.Errorf("--alert: %v", err))
		}
		t, err := alert.Parse(b, now(), lookback)
		if err != nil {
			return fail(fmt.Errorf("--alert %s: %v", alertFile, err))
		}
		tg = &t
		// The alert's labels, unless a flag says otherwise.
		if service == "" {
			service = t.Service
		}
		if namespace == "" {
			namespace = t.Namespace
		}
		if cluster == "" {
			cluster = t.Cluster
		}
		if baseRev != "" && candRev == "" && t.Revision != "" && t.Revision != baseRev {
			candRev = t.Revision
		}
		if from == "" && to == "" && window == 0 {
			from, to = t.From.Format(time.RFC3339Nano), t.To.Format(time.RFC3339Nano)
		}
	}
	o := analysis.Options{Service: service, Namespace: namespace, Cluster: cluster, BaselineRevision: baseRev, CandidateRevision: candRev,
		MinRatio: minRatio, ErrorDelta: errorDelta, Alpha: alpha, MaxTraces: maxTraces,
		Links: links.Config{GrafanaURL: grafana, PrometheusUID: promUID, TempoUID: tempoUID, LokiUID: lokiUID}}
	var err error
	if o.Quantiles, err = parseQuantiles(quantiles); err != nil {
		return fail(err)
	}
	if candRev != "" && baseRev == "" {
		return fail(errors.New("--candidate-revision needs --baseline-revision"))
	}
	if minRatio <= 1 {
		return fail(fmt.Errorf("--min-ratio %g: must be above 1 (1.10 = a 10%% change)", minRatio))
	}
	if alpha <= 0 || alpha >= 1 {
		return fail(fmt.Errorf("--alpha %g: must be between 0 and 1 (0.01 is usual)", alpha))
	}
	if errorDelta < 0 || errorDelta >= 1 {
		return fail(fmt.Errorf("--error-delta %g: must be in [0, 1) (0.01 = one percentage point)", errorDelta))
	}
	if o.From, err = parseTime("--from", from); err != nil {
		return fail(err)
	}
	if o.To, err = parseTime("--to", to); err != nil {
		return fail(err)
	}
	f := render.Format(format)
	if f != render.Text && f != render.Markdown && f != render.JSONFmt && f != "md" {
		return fail(fmt.Errorf("--format %q: expected text, markdown or json", format))
	}

	// report prints the report of either mode; its exit code is the run's.
	report := func(r *analysis.Report, err error) int {
		if err != nil {
			return fail(err)
		}
		noteAlert(r, tg)
		if err := render.Write(stdout, r, f); err != nil {
			return fail(fmt.Errorf("writing the report: %v", err))
		}
		return r.ExitCode
	}

	if isOnline {
		if o.Service == "" {
			return fail(errors.New("online: pass --service (service_name of the span metrics) or --alert"))
		}
		if window > 0 {
			if o.To.IsZero() {
				o.To = now().UTC()
			}
			if o.From.IsZero() {
				o.From = o.To.Add(-window)
			}
		}
		if o.From.IsZero() || o.To.IsZero() {
			return fail(errors.New("online: pass --window (ending at --to, default now), --from and --to, or --alert"))
		}
		if !o.To.After(o.From) {
			return fail(fmt.Errorf("empty window %s..%s: --from must be before --to", o.From.Format(time.RFC3339), o.To.Format(time.RFC3339)))
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		r, err := onlineRun(ctx, onlineSources(promURL, tempoURL, lokiURL), o)
		return report(r, err)
	}
	files, err := data.Glob("--traces", traces)
	if err != nil {
		return fail(err)
	}
	spans, err := data.ReadSpans(files)
	if err != nil {
		return fail(err)
	}
	var in analysis.Input
	in.Spans = spans
	if len(logs) > 0 {
		lf, err := data.Glob("--logs", logs)
		if err != nil {
			return fail(err)
		}
		if in.Logs, err = data.ReadLogs(lf); err != nil {
			return fail(err)
		}
	}
	if o.Service == "" {
		if o.Service, err = onlyService(spans); err != nil {
			return fail(err)
		}
	}
	if window > 0 {
		if o.To.IsZero() {
			o.To = dataEnd(spans, o.Service)
		}
		if o.From.IsZero() {
			o.From = o.To.Add(-window)
		}
	}
	return report(analysis.Run(in, o))
}

// onlineRun is online.Run (a variable for tests of the flags alone).
var onlineRun = online.Run

func onlineSources(prom, tempo, loki string) online.Sources {
	return online.Sources{Prometheus: prom, Tempo: tempo, Loki: loki}
}

// noteAlert says in the report which alert it answers.
func noteAlert(r *analysis.Report, t *alert.Target) {
	if t == nil {
		return
	}
	state := "firing"
	if t.Resolved {
		state = "resolved"
	}
	n := fmt.Sprintf("alert %s (%s, %d alert(s) of %s", t.Alert, state, t.Firing, t.Service)
	if t.Revision != "" {
		n += ", revision " + t.Revision
	}
	n += fmt.Sprintf("): window %s – %s", t.From.Format(time.RFC3339), t.To.Format(time.RFC3339))
	r.Notes = append([]string{n}, r.Notes...)
}

func parseQuantiles(s string) ([]float64, error) {
	var out []float64
	for _, p := range strings.Split(s, ",") {
		q, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || q <= 0 || q >= 1 {
			return nil, fmt.Errorf("--quantiles %q: expected numbers between 0 and 1, e.g. 0.5,0.9,0.99", s)
		}
		out = append(out, q)
	}
	sort.Float64s(out)
	return out, nil
}

func parseTime(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q: expected RFC 3339, e.g. 2026-12-01T14:30:00Z", flag, s)
	}
	return t, nil
}

func onlyService(spans []data.Span) (string, error) {
	seen := map[string]bool{}
	for i := range spans {
		seen[spans[i].Res.Service] = true
	}
	var names []string
	for s := range seen {
		names = append(names, s)
	}
	sort.Strings(names)
	switch len(names) {
	case 0:
		return "", errors.New("the trace files hold no spans")
	case 1:
		return names[0], nil
	}
	return "", fmt.Errorf("the spans are of %d services (%s): pass --service", len(names), strings.Join(names, ", "))
}

func dataEnd(spans []data.Span, service string) time.Time {
	var end int64
	for i := range spans {
		if spans[i].Res.Service == service && spans[i].End > end {
			end = spans[i].End
		}
	}
	return time.Unix(0, end).UTC()
}
