package analysis

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/opsight/opsight/triage/internal/links"
)

// Seconds spells a duration in seconds at a useful precision.
func Seconds(s float64) string {
	if math.IsNaN(s) {
		return "?"
	}
	d := time.Duration(s * 1e9)
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.3gs", s)
	case d >= time.Millisecond:
		return fmt.Sprintf("%.3gms", s*1e3)
	}
	return fmt.Sprintf("%.3gµs", s*1e6)
}

// Describe spells an estimate: "p99 20.1ms → 41.3ms ×2.05 [1.82, 2.31]" or
// "errors 3.1% → 29.8% (+26.7 pp [+24.0, +29.4])".
func Describe(e Estimate) string {
	if e.Measure == "errors" {
		return fmt.Sprintf("errors %.2f%% → %.2f%% (%+.1f pp, 90%% interval [%+.1f, %+.1f])", 100*e.Baseline, 100*e.Candidate, 100*e.Value, 100*e.Low, 100*e.High)
	}
	if !e.Tested {
		return fmt.Sprintf("%s %s → %s (%s)", e.Measure, Seconds(e.Baseline), Seconds(e.Candidate), e.Reason)
	}
	hi := "inf"
	if !math.IsInf(e.High, 1) {
		hi = fmt.Sprintf("%.2f", e.High)
	}
	return fmt.Sprintf("%s %s → %s ×%.2f [%.2f, %s]", e.Measure, Seconds(e.Baseline), Seconds(e.Candidate), e.Value, e.Low, hi)
}

func headline(f *Finding) string {
	var b strings.Builder
	// The move whose band was attributed, so the figures agree.
	m, ok := latencyMove(f.Moves)
	if !ok {
		m = f.Moves[0]
	}
	fmt.Fprintf(&b, "%s (%s) %s", f.Span, ShortKind(f.Kind), Describe(m))
	if t := f.Time; t != nil && len(t.Parts) > 0 && t.Added != 0 {
		fmt.Fprintf(&b, "; %.0f%% of the added %s time is %s", 100*t.Parts[0].Share, t.Measure, partName(t.Parts[0]))
	}
	if len(f.Logs.Patterns) > 0 && f.Logs.Patterns[0].Rose {
		p := f.Logs.Patterns[0]
		fmt.Fprintf(&b, "; logs: %s in %.0f%% of these traces (baseline %.0f%%)", p.Pattern, 100*p.CandShare, 100*p.BaseShare)
	}
	if f.WhereText != "" {
		b.WriteString("; " + f.WhereText)
	}
	return b.String()
}

// links are the queries behind a finding, as Grafana Explore links.
func (a *analyzer) links(f *Finding) []Link {
	sel := links.Selector{Service: a.o.Service, Namespace: a.o.Namespace, Cluster: a.o.Cluster}
	cfg := a.o.Links
	from, to := a.r.Candidate.From, a.r.Candidate.To
	if a.r.Baseline.From.Before(from) && !a.r.Baseline.From.IsZero() {
		from = a.r.Baseline.From
	}
	if a.r.Baseline.To.After(to) {
		to = a.r.Baseline.To
	}
	// Some room either side, as Grafana's trace → logs shift does.
	from, to = from.Add(-5*time.Minute), to.Add(5*time.Minute)
	var out []Link
	add := func(kind, title, ds, q string) {
		out = append(out, Link{Kind: kind, Title: title, Datasource: ds, Query: q, URL: cfg.Explore(ds, q, from, to)})
	}
	rev := f.singleRev
	if !a.c.windowMode && rev == "" {
		rev = a.o.CandidateRevision
	}
	if m, ok := latencyMove(f.Moves); ok {
		add("metrics", m.Measure+" by revision", "prometheus", sel.LatencyPromQL(f.Span, f.Kind, m.Quantile))
		slower := time.Duration(0)
		if !math.IsNaN(f.slowerThan) {
			slower = time.Duration(f.slowerThan * 1e9).Truncate(time.Microsecond)
		}
		add("traces", "slow spans", "tempo", sel.SlowSpansTraceQL(f.Span, f.Kind, slower, rev, f.singleZone, false))
	}
	for _, m := range f.Moves {
		if m.Measure == "errors" {
			add("metrics", "error share by revision", "prometheus", sel.ErrorPromQL(f.Span, f.Kind))
			add("traces", "failed spans", "tempo", sel.SlowSpansTraceQL(f.Span, f.Kind, 0, rev, f.singleZone, true))
		}
	}
	if len(f.Traces) > 0 {
		add("trace", "trace "+f.Traces[0], "tempo", f.Traces[0])
		add("logs", "lines of trace "+f.Traces[0], "loki", sel.TraceLogQL(f.Traces[0]))
	}
	for _, p := range f.Logs.Patterns {
		if p.Rose {
			add("logs", "risk pattern "+p.Pattern+" by revision", "loki", sel.RiskLogQL(p.Pattern))
			break
		}
	}
	return out
}
