package render

import (
	"io"
	"strings"

	"github.com/opsight/opsight/releasegate/gate"
	"github.com/opsight/opsight/triage/internal/analysis"
)

func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// MarkdownReport writes the report for a ticket or a PR comment.
func MarkdownReport(w io.Writer, r *analysis.Report) error {
	p := &printer{w: w}
	p.f("### Triage: %s\n\n", mdEscape(scope(r)))
	side := sidesLine(r)
	p.f("%s. %s: **%s**.\n", mdEscape(comparing(r)), strings.ToUpper(side[:1])+side[1:], findingsLine(r))
	for _, f := range r.Findings {
		p.f("\n#### %d. `%s` (%s)\n\n", f.Rank, mdEscape(f.Span), analysis.ShortKind(f.Kind))
		p.f("%s\n\n", mdEscape(f.Headline))
		p.f("| moved | estimate |\n|---|---|\n")
		for _, m := range f.Moves {
			p.f("| %s | %s |\n", m.Measure, mdEscape(analysis.Describe(m)))
		}
		for _, e := range f.Explains {
			p.f("| with `%s` (%s) | %s |\n", mdEscape(e.Span), analysis.ShortKind(e.Kind), mdEscape(analysis.Describe(e.Measure)))
		}
		p.f("\n**Where:** %s\n\n", mdEscape(f.WhereText))
		p.f("| dimension | value | n | estimate | against | |\n|---|---|---|---|---|---|\n")
		for _, s := range f.Where {
			for _, v := range s.Values {
				mark, est := splitMark(v, "**moved**"), splitEstimates(v)
				p.f("| %s | %s | %d | %s | %s baseline | %s |\n", s.Dimension, mdEscape(v.Value), v.N, mdEscape(est), v.Against, mark)
			}
		}
		if t := f.Time; t != nil {
			p.f("\n**Where the time went** (%s band: %s vs %s, %d slow spans vs %d baseline; self time on the critical path):\n\n", t.Measure, analysis.Seconds(t.CandidateMean), analysis.Seconds(t.BaselineMean), t.NCandidate, t.NBaseline)
			p.f("| span | added | share |\n|---|---|---|\n")
			for i, c := range t.Parts {
				if i == 6 {
					break
				}
				p.f("| `%s` | %+.3gms | %.0f%% |\n", mdEscape(partLabel(c)), 1e3*c.Added, 100*c.Share)
			}
		}
		p.f("\n**Traces** (%d of %d): %s\n\n", len(f.Traces), f.TraceCount, "`"+strings.Join(f.Traces, "` `")+"`")
		p.f("**Logs:** %d lines in these traces (baseline's: %d); %s\n", f.Logs.Lines, f.Logs.BaselineLines, mdEscape(patternsLine(f.Logs.Patterns, "of traces")))
		if len(f.Logs.Sample) > 0 {
			p.f("\n```\n%s\n```\n", strings.Join(f.Logs.Sample, "\n"))
		}
		p.f("\n**Continue in Grafana:**\n\n")
		for _, l := range f.Links {
			p.f("- [%s](%s): `%s`\n", mdEscape(l.Title), l.URL, mdEscape(l.Query))
		}
	}
	p.f("\n**Logs:** baseline %d lines (%.2f per trace), candidate %d (%.2f per trace); %s\n", r.Logs.BaselineLines, r.Logs.BaselinePerTrace, r.Logs.CandidateLines, r.Logs.CandidatePerTrace, mdEscape(patternsLine(r.Logs.Patterns, "of lines")))
	p.f("\n<details><summary>Every span compared</summary>\n\n| span | kind | n base | n cand |")
	for _, q := range r.Quantiles {
		p.f(" %s |", gate.QuantileName(q))
	}
	p.f(" errors |\n|---|---|---|---|")
	for range r.Quantiles {
		p.f("---|")
	}
	p.f("---|\n")
	for _, o := range r.Operations {
		p.f("| `%s` | %s | %d | %d |", mdEscape(o.Span), analysis.ShortKind(o.Kind), o.NBaseline, o.NCand)
		for _, e := range o.Latency {
			p.f(" %s |", cell(e))
		}
		p.f(" %s |\n", cell(o.Errors))
	}
	p.f("\n</details>\n")
	if len(r.Queries) > 0 {
		p.f("\n<details><summary>Queries run</summary>\n\n| backend | API | query | answer |\n|---|---|---|---|\n")
		for _, q := range r.Queries {
			p.f("| %s | `%s` | `%s` | %s |\n", q.Backend, q.API, mdEscape(q.Query), mdEscape(q.Answer))
		}
		p.f("\n</details>\n")
	}
	for _, s := range r.Warnings {
		p.f("\n> **Warning:** %s\n", mdEscape(s))
	}
	if len(r.Notes) > 0 {
		p.f("\n")
		for _, s := range r.Notes {
			p.f("_%s_\n", mdEscape(s))
		}
	}
	return p.err
}
