// Package render writes a triage report as text (a terminal, a CI log),
// Markdown (a ticket, a PR comment) or JSON (machines).
package render

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/opsight/opsight/releasegate/gate"
	"github.com/opsight/opsight/triage/internal/analysis"
)

// Format is an output format name.
type Format string

const (
	Text     Format = "text"
	Markdown Format = "markdown"
	JSONFmt  Format = "json"
)

// Write renders r in format f.
func Write(w io.Writer, r *analysis.Report, f Format) error {
	switch f {
	case Text, "":
		return TextReport(w, r)
	case Markdown, "md":
		return MarkdownReport(w, r)
	case JSONFmt:
		return JSON(w, r)
	}
	return fmt.Errorf("unknown format %q: expected text, markdown or json", f)
}

func span(from, to time.Time) string {
	if from.IsZero() {
		return "no spans"
	}
	return from.UTC().Format("2006-01-02 15:04:05") + " – " + to.UTC().Format("15:04:05") + " UTC"
}

func scope(r *analysis.Report) string {
	s := r.Service
	var in []string
	if r.Namespace != "" {
		in = append(in, "namespace "+r.Namespace)
	}
	if r.Cluster != "" {
		in = append(in, "cluster "+r.Cluster)
	}
	if len(in) > 0 {
		s += " (" + strings.Join(in, ", ") + ")"
	}
	return s
}

func comparing(r *analysis.Report) string {
	if r.Mode == "window" {
		return fmt.Sprintf("window %s against the previous window %s", span(r.Candidate.From, r.Candidate.To), span(r.Baseline.From, r.Baseline.To))
	}
	return fmt.Sprintf("%s against baseline %s, %s", r.Candidate.Name, r.Baseline.Name, span(minTime(r.Baseline.From, r.Candidate.From), maxTime(r.Baseline.To, r.Candidate.To)))
}

func minTime(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func findingsLine(r *analysis.Report) string {
	switch len(r.Findings) {
	case 0:
		return "nothing moved"
	case 1:
		return "1 finding"
	}
	return fmt.Sprintf("%d findings", len(r.Findings))
}

// cell is one operation's estimate in a table: the ratio with its
// interval, or ~ when the data cannot tell a move (benchstat's mark).
func cell(e analysis.Estimate) string {
	if e.Measure == "errors" {
		if e.Baseline == 0 && e.Candidate == 0 {
			return "0"
		}
		s := fmt.Sprintf("%.1f%%→%.1f%%", 100*e.Baseline, 100*e.Candidate)
		if e.Direction == "" {
			return s + " ~"
		}
		return s + " " + arrow(e.Direction)
	}
	if !e.Tested {
		if math.IsNaN(e.Value) || e.Value == 0 {
			return "n/a"
		}
		return fmt.Sprintf("×%.2f (few)", e.Value)
	}
	hi := "inf"
	if !math.IsInf(e.High, 1) {
		hi = fmt.Sprintf("%.2f", e.High)
	}
	s := fmt.Sprintf("×%.2f [%.2f,%s]", e.Value, e.Low, hi)
	if e.Direction == "" {
		return s + " ~"
	}
	return s + " " + arrow(e.Direction)
}

// splitMark is a split value's verdict: moved (spelled as the format
// wants), too few spans, or ~ (the data cannot tell).
func splitMark(v analysis.SplitValue, moved string) string {
	switch {
	case v.Moved:
		return moved
	case v.TooFew:
		return "too few spans"
	}
	return "~"
}

// splitEstimates describes a split value's estimates, "n/a" without any.
func splitEstimates(v analysis.SplitValue) string {
	if len(v.Estimates) == 0 {
		return "n/a"
	}
	es := make([]string, 0, len(v.Estimates))
	for _, e := range v.Estimates {
		es = append(es, analysis.Describe(e))
	}
	return strings.Join(es, "; ")
}

func arrow(dir string) string {
	if dir == "up" {
		return "▲"
	}
	return "▼"
}

// TextReport writes the terse text form.
func TextReport(w io.Writer, r *analysis.Report) error {
	p := &printer{w: w}
	p.f("triage %s: %s\n", scope(r), comparing(r))
	p.f("%s: %s\n", sidesLine(r), findingsLine(r))
	for _, f := range r.Findings {
		p.f("\n#%d %s\n", f.Rank, f.Headline)
		for _, m := range f.Moves {
			p.f("   moved     %s\n", analysis.Describe(m))
		}
		for _, e := range f.Explains {
			p.f("   with      %s (%s) %s\n", e.Span, analysis.ShortKind(e.Kind), analysis.Describe(e.Measure))
		}
		p.f("   where     %s\n", f.WhereText)
		for _, s := range f.Where {
			if len(s.Values) < 2 {
				continue
			}
			for _, v := range s.Values {
				mark, est := splitMark(v, "moved"), splitEstimates(v)
				p.f("             %-8s %-28s n=%-6d %s (vs %s baseline)  %s\n", s.Dimension, v.Value, v.N, est, v.Against, mark)
			}
		}
		if t := f.Time; t != nil {
			p.f("   time      %s band: %s vs %s (%+.3gms; %d slow spans vs %d baseline)\n", t.Measure, analysis.Seconds(t.CandidateMean), analysis.Seconds(t.BaselineMean), 1e3*t.Added, t.NCandidate, t.NBaseline)
			for i, c := range t.Parts {
				if i == 6 {
					break
				}
				p.f("             %-32s %+9.3gms  %4.0f%%\n", partLabel(c), 1e3*c.Added, 100*c.Share)
			}
		}
		p.f("   traces    %s (of %d)\n", strings.Join(f.Traces, " "), f.TraceCount)
		p.f("   logs      %d lines in these traces (baseline's: %d); %s\n", f.Logs.Lines, f.Logs.BaselineLines, patternsLine(f.Logs.Patterns, "of traces"))
		for _, s := range f.Logs.Sample {
			p.f("             > %s\n", s)
		}
		for _, l := range f.Links {
			p.f("   %-9s %s\n", l.Kind, l.Query)
			p.f("             %s\n", l.URL)
		}
	}
	p.f("\nlogs      baseline %d lines (%.2f per trace), candidate %d (%.2f per trace); %s\n", r.Logs.BaselineLines, r.Logs.BaselinePerTrace, r.Logs.CandidateLines, r.Logs.CandidatePerTrace, patternsLine(r.Logs.Patterns, "of lines"))
	p.f("\n%-24s %-8s %7s %7s", "span", "kind", "n base", "n cand")
	for _, q := range r.Quantiles {
		p.f("  %-24s", gate.QuantileName(q))
	}
	p.f("  %s\n", "errors")
	for _, o := range r.Operations {
		p.f("%-24s %-8s %7d %7d", o.Span, analysis.ShortKind(o.Kind), o.NBaseline, o.NCand)
		for _, e := range o.Latency {
			p.f("  %-24s", cell(e))
		}
		p.f("  %s\n", cell(o.Errors))
	}
	if len(r.Queries) > 0 {
		p.f("\nqueries run\n")
		for _, q := range r.Queries {
			p.f("  %-10s %-26s %s\n  %-10s %-26s → %s\n", q.Backend, q.API, q.Query, "", "", q.Answer)
		}
	}
	for _, s := range r.Warnings {
		p.f("warning: %s\n", s)
	}
	for _, s := range r.Notes {
		p.f("note: %s\n", s)
	}
	return p.err
}

// sidesLine says how much each side holds: spans and traces read, or
// online, spans counted by the span metrics and traces fetched.
func sidesLine(r *analysis.Report) string {
	if r.Baseline.Fetched || r.Candidate.Fetched {
		return fmt.Sprintf("baseline %d spans (span metrics), %d traces fetched; candidate %d spans, %d traces fetched",
			r.Baseline.Spans, r.Baseline.Traces, r.Candidate.Spans, r.Candidate.Traces)
	}
	return fmt.Sprintf("baseline %d spans in %d traces, candidate %d spans in %d traces", r.Baseline.Spans, r.Baseline.Traces, r.Candidate.Spans, r.Candidate.Traces)
}

func partLabel(c analysis.Contribution) string {
	if c.Self {
		return c.Span + " (own time)"
	}
	return c.Span + " (" + analysis.ShortKind(c.Kind) + ")"
}

// patternsLine lists the risk patterns that rose, or says none did.
func patternsLine(ps []analysis.PatternShift, unit string) string {
	var rose []string
	for _, p := range ps {
		if p.Rose {
			rose = append(rose, fmt.Sprintf("%s %.1f%% → %.1f%% %s", p.Pattern, 100*p.BaseShare, 100*p.CandShare, unit))
		}
	}
	if len(rose) == 0 {
		return "no risk pattern rose"
	}
	return "risk patterns that rose: " + strings.Join(rose, ", ")
}

type printer struct {
	w   io.Writer
	err error
}

func (p *printer) f(format string, a ...any) {
	if p.err != nil {
		return
	}
	_, p.err = fmt.Fprintf(p.w, format, a...)
}
