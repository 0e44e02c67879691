// Package cli is the release gate's command line: flags to a source query
// and a gate.Config, then the report and the exit code (CONVENTIONS.md:
// 0 pass, 1 fail, 2 inconclusive, 3 error).
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/cputime"
	"github.com/opsight/opsight/releasegate/demo"
	"github.com/opsight/opsight/releasegate/gate"
	"github.com/opsight/opsight/releasegate/report"
	"github.com/opsight/opsight/releasegate/source"
)

const usage = `releasegate compares the span latency of a candidate revision against a
baseline revision and blocks the release when a quantile rose past a threshold.

Usage:
  releasegate [flags] --baseline REV --candidate REV
  releasegate bench [--spans N]
  releasegate demo-data --out DIR [--spans N]   (example traces-*.jsonl to try the gate on)

Sources (pick one; --source is implied by the flag given):
  --otlp-file GLOB         OTLP JSON trace files, one export request per line (repeatable)
  --prometheus-url URL     spanmetrics histograms (traces_span_metrics_duration_seconds)
  --tempo-url URL          Tempo: raw durations by TraceQL search, or TraceQL metrics
                           histograms when they resolve the threshold (--tempo-mode)

Exit codes: 0 pass, 1 fail, 2 inconclusive, 3 error.

Flags:
`

// Run is the whole program; main only calls it.
func Run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "bench" {
		return runBench(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "demo-data" {
		return runDemo(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("releasegate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	var (
		otlpFiles, spanNames, thresholds, headers multi
	)
	src := fs.String("source", "", "otlp-file, prometheus or tempo (default: the one whose flag is given)")
	fs.Var(&otlpFiles, "otlp-file", "OTLP JSON lines file or glob (repeatable; e.g. 'out/traces-*.jsonl')")
	promURL := fs.String("prometheus-url", "", "Prometheus base URL, e.g. http://prometheus:9090")
	promMatchers := fs.String("prometheus-matchers", "", `extra PromQL label matchers for every selector, e.g. 'cluster="prod",job="opsight"'`)
	tempoURL := fs.String("tempo-url", "", "Tempo base URL, e.g. http://tempo:3200")
	tempoMode := fs.String("tempo-mode", source.TempoAuto, "auto: raw span durations by TraceQL search when Tempo's power-of-two buckets cannot resolve the threshold (below +100%), else TraceQL metrics; metrics; search")
	tempoPage := fs.Int("tempo-page-limit", source.DefaultTempoPageLimit, "traces per Tempo search request (at most Tempo's query_frontend.search.max_result_limit); full pages are split by time")
	tempoSpss := fs.Int("tempo-spss", source.DefaultTempoSpss, "matching spans per trace Tempo search returns (spss; at most Tempo's max_spans_per_span_set)")
	tempoMaxSpans := fs.Int("tempo-max-spans", source.DefaultTempoMaxSpans, "most spans per revision to fetch by Tempo search; more is an error (exit 3) that says what to narrow")
	tempoMaxReqs := fs.Int("tempo-max-requests", source.DefaultTempoMaxRequests, "most Tempo search requests for both revisions; more is an error (exit 3)")
	fs.Var(&headers, "header", "extra HTTP header for the source, 'Name: value' (repeatable; e.g. 'X-Scope-OrgID: ops')")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long the source may take")
	service := fs.String("service", "", "service.name to compare (default: every service)")
	fs.Var(&spanNames, "span-name", "span name to compare (repeatable; default: every name, one comparison each)")
	spanKind := fs.String("span-kind", "", "span kind: server, client, internal, producer, consumer (default: any)")
	baseline := fs.String("baseline", "", "baseline revision (service.version / revision label) (required)")
	candidate := fs.String("candidate", "", "candidate revision (required)")
	baseWin := fs.String("baseline-window", "", "baseline load window start,end (RFC 3339, unix seconds or now-30m,now); required for prometheus and tempo")
	candWin := fs.String("candidate-window", "", "candidate load window start,end")
	quantiles := fs.String("quantiles", "0.5,0.9,0.99", "quantiles to compare")
	fs.Var(&thresholds, "threshold", "allowed increase per quantile, p99:+15% or +15% for all (repeatable) (default p99:+15%)")
	alpha := fs.Float64("alpha", 0.05, "familywise false-fail rate over all gating comparisons (Holm)")
	gateErrors := fs.Bool("gate-errors", false, "fail when the error share (status ERROR) rose significantly")
	errThreshold := fs.String("error-threshold", "0%", "rise of the error share, in percentage points, tolerated before it counts (e.g. 1%)")
	incPass := fs.Bool("inconclusive-as-pass", false, "exit 0 instead of 2 when the data cannot tell")
	format := fs.String("format", "text", "output format: text, json, markdown, junit")
	output := fs.String("output", "", "write the report to this file instead of stdout")
	plot := fs.String("plot", "", "also write an SVG of both distributions to this file")

	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "releasegate: "+format+"\n", a...)
		return conventions.ExitError
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return conventions.ExitPass
		}
		return conventions.ExitError // flag already printed what was wrong
	}
	otlpFiles = append(otlpFiles, fs.Args()...)

	// Validate every flag before touching a source.
	if *baseline == "" {
		return fail("--baseline is required: the baseline revision (service.version of its spans, e.g. v1.4.0)")
	}
	if *candidate == "" {
		return fail("--candidate is required: the candidate revision (e.g. v1.5.0)")
	}
	if *baseline == *candidate {
		return fail("--baseline and --candidate are both %q: expected two different revisions", *baseline)
	}
	qs, err := ParseQuantiles(*quantiles)
	if err != nil {
		return fail("%v", err)
	}
	if len(thresholds) == 0 {
		thresholds = multi{"p99:+15%"}
	}
	th, err := ParseThresholds(thresholds, qs)
	if err != nil {
		return fail("%v", err)
	}
	et, err := parsePercent(*errThreshold)
	if err != nil || et >= 1 {
		return fail("--error-threshold %q: expected percentage points such as 1%% (below 100%%)", *errThreshold)
	}
	if !(*alpha > 0 && *alpha < 0.5) {
		return fail("--alpha %g: expected a probability in (0, 0.5), such as 0.05", *alpha)
	}
	switch *format {
	case "text", "json", "markdown", "md", "junit":
	default:
		return fail("--format %q: expected one of text, json, markdown, junit", *format)
	}
	switch *tempoMode {
	case source.TempoAuto, source.TempoMetrics, source.TempoSearch:
	default:
		return fail("--tempo-mode %q: expected auto, metrics or search", *tempoMode)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"--tempo-page-limit", *tempoPage}, {"--tempo-spss", *tempoSpss}, {"--tempo-max-spans", *tempoMaxSpans}, {"--tempo-max-requests", *tempoMaxReqs}} {
		if f.v < 1 {
			return fail("%s %d: expected a positive number", f.name, f.v)
		}
	}
	kind, err := source.NormalizeKind(*spanKind)
	if err != nil {
		return fail("--span-kind: %v", err)
	}
	now := time.Now()
	bw, err := ParseWindow("--baseline-window", *baseWin, now)
	if err != nil {
		return fail("%v", err)
	}
	cw, err := ParseWindow("--candidate-window", *candWin, now)
	if err != nil {
		return fail("%v", err)
	}
	hdr := http.Header{}
	for _, h := range headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return fail("--header %q: expected 'Name: value'", h)
		}
		hdr.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	if *src == "" {
		n := 0
		if len(otlpFiles) > 0 {
			*src, n = "otlp-file", n+1
		}
		if *promURL != "" {
			*src, n = "prometheus", n+1
		}
		if *tempoURL != "" {
			*src, n = "tempo", n+1
		}
		if n == 0 {
			return fail("no source: give --otlp-file GLOB, --prometheus-url URL or --tempo-url URL")
		}
		if n > 1 {
			return fail("several sources given: pick one with --source otlp-file|prometheus|tempo")
		}
	}
	client := &http.Client{Timeout: *timeout}
	var s source.Source
	switch *src {
	case "otlp-file":
		s = &source.OTLPFile{Patterns: otlpFiles}
	case "prometheus":
		if *promURL == "" {
			return fail("--source prometheus needs --prometheus-url (e.g. http://prometheus:9090)")
		}
		if bw.IsZero() || cw.IsZero() {
			return fail("--source prometheus needs --baseline-window and --candidate-window: the time each revision's load ran (start,end)")
		}
		s = &source.Prometheus{URL: *promURL, Client: client, Header: hdr, Matchers: *promMatchers}
	case "tempo":
		if *tempoURL == "" {
			return fail("--source tempo needs --tempo-url (e.g. http://tempo:3200)")
		}
		if bw.IsZero() || cw.IsZero() {
			return fail("--source tempo needs --baseline-window and --candidate-window: the time each revision's load ran (start,end)")
		}
		// auto compares the finest gating threshold with the bucket factor.
		finest := math.Inf(1)
		for _, v := range th {
			finest = math.Min(finest, v)
		}
		s = &source.Tempo{URL: *tempoURL, Client: client, Header: hdr, Mode: *tempoMode, Threshold: finest,
			PageLimit: *tempoPage, SpansPerSet: *tempoSpss, MaxSpans: *tempoMaxSpans, MaxRequests: *tempoMaxReqs}
	default:
		return fail("--source %q: expected otlp-file, prometheus or tempo", *src)
	}

	q := source.Query{Service: *service, SpanNames: spanNames, SpanKind: kind,
		Baseline: source.Revision{Name: *baseline, Window: bw}, Candidate: source.Revision{Name: *candidate, Window: cw},
		Quantiles: qs}
	for p := range th {
		if !slices.Contains(q.Quantiles, p) {
			q.Quantiles = append(q.Quantiles, p)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	res, err := s.Fetch(ctx, q)
	if err != nil {
		return fail("%v", err)
	}
	rep := gate.Evaluate(res, *baseline, *candidate, gate.Config{Quantiles: qs, Thresholds: th, Alpha: *alpha,
		GateErrors: *gateErrors, ErrorThreshold: et, InconclusiveAsPass: *incPass})

	out := stdout
	if *output != "" {
		f, err := os.Create(*output)
		if err != nil {
			return fail("--output: %v", err)
		}
		defer f.Close()
		out = f
	}
	if err := report.Write(out, *format, rep); err != nil {
		return fail("writing report: %v", err)
	}
	if *plot != "" {
		f, err := os.Create(*plot)
		if err != nil {
			return fail("--plot: %v", err)
		}
		err = report.SVG(f, rep)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fail("--plot: %v", err)
		}
	}
	if *output != "" || *format != "text" {
		// Keep a one-line verdict in the CI log whatever the format.
		fmt.Fprintf(stderr, "releasegate: %s (exit %d)\n", rep.Verdict, rep.ExitCode)
	}
	return rep.ExitCode
}

func runBench(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("releasegate bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("spans", 10_000_000, "spans to compare (split over two revisions and 4 operations)")
	if err := fs.Parse(args); err != nil {
		return conventions.ExitError
	}
	if *n < 8 {
		fmt.Fprintf(stderr, "releasegate bench: --spans %d: expected at least 8\n", *n)
		return conventions.ExitError
	}
	fmt.Fprintf(stdout, "generating %d spans...\n", *n)
	res := gate.BenchData(*n, 4, 1)
	start := time.Now()
	cpu0, cpuOK := cputime.Process()
	rep := gate.Compare(res, gate.Config{})
	el := time.Since(start)
	cpu1, _ := cputime.Process()
	cpu := "CPU time not available on this system"
	if cpuOK {
		cpu = (cpu1 - cpu0).Round(time.Millisecond).String() + " CPU"
	}
	fmt.Fprintf(stdout, "compared %d spans (%d comparisons, verdict %s) in %v wall, %s: %.3g spans/s\n",
		*n, len(rep.Comparisons), rep.Verdict, el.Round(time.Millisecond), cpu, float64(*n)/el.Seconds())
	return conventions.ExitPass
}

func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("releasegate demo-data", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "directory to write traces-v1.4.0.jsonl and traces-v1.5.0.jsonl into (required)")
	n := fs.Int("spans", 3000, "reconciles per revision")
	if err := fs.Parse(args); err != nil {
		return conventions.ExitError
	}
	if *out == "" || *n < 1 {
		fmt.Fprintf(stderr, "releasegate demo-data: --out DIR is required and --spans must be positive\n")
		return conventions.ExitError
	}
	t0 := time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)
	files, err := demo.Write(*out, *n, []demo.Revision{
		{Name: "v1.4.0", Start: t0},
		{Name: "v1.5.0", Start: t0.Add(time.Hour), SlowTail: 0.05},
	})
	if err != nil {
		fmt.Fprintf(stderr, "releasegate demo-data: %v\n", err)
		return conventions.ExitError
	}
	fmt.Fprintln(stdout, demo.Describe(files, *n))
	return conventions.ExitPass
}
