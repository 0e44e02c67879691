// Package report writes a gate.Report as text (benchstat-like, for CI
// logs), JSON (for machines; field names per CONVENTIONS.md), Markdown (a
// PR comment), JUnit XML (one testcase per comparison) and SVG (the two
// distributions overlaid).
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/releasegate/gate"
)

// Formats lists the values --format accepts.
var Formats = []string{"text", "json", "markdown", "junit"}

// Write renders r in format.
func Write(w io.Writer, format string, r *gate.Report) error {
	switch format {
	case "text":
		return Text(w, r)
	case "json":
		return JSON(w, r)
	case "markdown", "md":
		return Markdown(w, r)
	case "junit":
		return JUnit(w, r)
	}
	return fmt.Errorf("--format %q: expected one of %s", format, strings.Join(Formats, ", "))
}

// Dur prints seconds with a unit and three significant digits.
func Dur(s float64) string {
	switch {
	case math.IsNaN(s):
		return "-"
	case math.IsInf(s, 1):
		return "inf"
	case s == 0:
		return "0"
	case s < 1e-6:
		return sig(s*1e9) + "ns"
	case s < 1e-3:
		return sig(s*1e6) + "µs"
	case s < 1:
		return sig(s*1e3) + "ms"
	}
	return sig(s) + "s"
}

func sig(x float64) string {
	switch {
	case x >= 100:
		return fmt.Sprintf("%.0f", x)
	case x >= 10:
		return fmt.Sprintf("%.1f", x)
	}
	return fmt.Sprintf("%.2f", x)
}

// pct prints a ratio as a signed percent change.
func pct(ratio float64) string {
	switch {
	case math.IsNaN(ratio):
		return "?"
	case math.IsInf(ratio, 1):
		return "+inf"
	}
	d := 100 * (ratio - 1)
	if math.Abs(d) >= 10 {
		return fmt.Sprintf("%+.0f%%", d)
	}
	return fmt.Sprintf("%+.1f%%", d)
}

func spread(s float64) string {
	if math.IsNaN(s) || math.IsInf(s, 0) {
		return "± ?"
	}
	return fmt.Sprintf("± %.0f%%", 100*s)
}

// delta is the benchstat-like change column: "~" when the data cannot tell.
func delta(c gate.Comparison) string {
	if math.IsNaN(c.Ratio) {
		return "~"
	}
	iv := fmt.Sprintf("%s [%s, %s]", pct(c.Ratio), pct(c.CILow), pct(c.CIHigh))
	if c.Verdict == conventions.VerdictInconclusive || (!c.Gating && c.CILow <= 1 && c.CIHigh >= 1) {
		return "~ " + iv
	}
	return iv
}

func verdictCell(c gate.Comparison) string {
	if !c.Gating {
		return "(context)"
	}
	if c.Need != "" {
		return c.Verdict + " " + c.Need
	}
	return c.Verdict
}

func name(svc, op string) string {
	if svc == "" {
		return op
	}
	return svc + " " + op
}

// Text is the CI log view.
func Text(w io.Writer, r *gate.Report) error {
	fmt.Fprintf(w, "releasegate (%s): baseline %s [%s] vs candidate %s [%s]\n\n", r.Source, r.Baseline, r.BaseWindow, r.Candidate, r.CandWindow)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "operation\tquantile\t%s\t%s\tdelta [interval]\tn\tverdict\n", r.Baseline, r.Candidate)
	for _, c := range r.Comparisons {
		fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s %s\t%s\t%d/%d\t%s\n", name(c.Service, c.Operation), gate.QuantileName(c.Quantile),
			Dur(c.Baseline), spread(c.BaseSpread), Dur(c.Candidate), spread(c.CandSpread), delta(c), c.NBaseline, c.NCandidate, verdictCell(c))
	}
	tw.Flush()
	if len(r.Operations) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "operation\tspans/s\ttraffic share\terror share\terrors\n")
		for _, s := range r.Operations {
			errs := "n/a"
			if s.ErrorsKnown {
				errs = fmt.Sprintf("%.2f%% -> %.2f%% (p=%.2g)", 100*s.ErrorRatioBaseline, 100*s.ErrorRatioCand, s.ErrorPValue)
			}
			v := s.ErrorVerdict
			if !s.ErrorGating {
				v = "(context)"
			}
			fmt.Fprintf(tw, "%s\t%.3g -> %.3g\t%.1f%% -> %.1f%%\t%s\t%s\n", name(s.Service, s.Operation), s.RateBaseline, s.RateCandidate,
				100*s.ShareBaseline, 100*s.ShareCandidate, errs, v)
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
	for _, c := range r.Comparisons {
		if c.Gating && c.Verdict != conventions.VerdictPass {
			fmt.Fprintf(w, "%s: %s %s: %s\n", c.Verdict, name(c.Service, c.Operation), gate.QuantileName(c.Quantile), c.Reason)
		}
	}
	for _, s := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", s)
	}
	for _, s := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", s)
	}
	fmt.Fprintf(w, "verdict: %s (exit %d)\n", r.Verdict, r.ExitCode)
	return nil
}

// num is a float that encodes NaN and infinities as null (JSON has neither).
type num float64

func (f num) MarshalJSON() ([]byte, error) {
	x := float64(f)
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(x)
}

type jsonComparison struct {
	Service    string `json:"service"`
	Operation  string `json:"operation"`
	Quantile   num    `json:"quantile"`
	Baseline   num    `json:"baseline"`
	Candidate  num    `json:"candidate"`
	Ratio      num    `json:"ratio"`
	CILow      num    `json:"ci_low"`
	CIHigh     num    `json:"ci_high"`
	NBaseline  int    `json:"n_baseline"`
	NCandidate int    `json:"n_candidate"`
	Verdict    string `json:"verdict"`
	Reason     string `json:"reason"`

	Gating     bool `json:"gating"`
	Threshold  *num `json:"threshold"` // null when the quantile does not gate
	PValue     num  `json:"p_value"`
	CITail     num  `json:"ci_tail"`
	Histogram  bool `json:"histogram"`
	Resolution num  `json:"bucket_resolution,omitempty"`
	// Spans per side that would decide an inconclusive row (power analysis);
	// null when decided, not gating, or when no number of spans would do.
	NNeeded *int `json:"n_needed"`
}

type jsonOp struct {
	Service            string `json:"service"`
	Operation          string `json:"operation"`
	CountBaseline      num    `json:"count_baseline"`
	CountCandidate     num    `json:"count_candidate"`
	RateBaseline       num    `json:"spans_per_second_baseline"`
	RateCandidate      num    `json:"spans_per_second_candidate"`
	ShareBaseline      num    `json:"traffic_share_baseline"`
	ShareCandidate     num    `json:"traffic_share_candidate"`
	ErrorRatioBaseline *num   `json:"error_ratio_baseline"`
	ErrorRatioCand     *num   `json:"error_ratio_candidate"`
	ErrorPValue        *num   `json:"error_p_value"`
	ErrorVerdict       string `json:"error_verdict"`
	ErrorReason        string `json:"error_reason"`
	ErrorGating        bool   `json:"error_gating"`
}

type jsonReport struct {
	Verdict     string           `json:"verdict"`
	ExitCode    int              `json:"exit_code"`
	Source      string           `json:"source"`
	Baseline    string           `json:"baseline"`
	Candidate   string           `json:"candidate"`
	BaseWindow  string           `json:"baseline_window"`
	CandWindow  string           `json:"candidate_window"`
	Alpha       num              `json:"alpha"`
	Comparisons []jsonComparison `json:"comparisons"`
	Operations  []jsonOp         `json:"operations"`
	Warnings    []string         `json:"warnings"`
	Notes       []string         `json:"notes"`
}

func ptr(x float64) *num { n := num(x); return &n }

// JSON is the machine view.
func JSON(w io.Writer, r *gate.Report) error {
	out := jsonReport{Verdict: r.Verdict, ExitCode: r.ExitCode, Source: r.Source, Baseline: r.Baseline, Candidate: r.Candidate,
		BaseWindow: r.BaseWindow, CandWindow: r.CandWindow, Alpha: num(r.Alpha),
		Comparisons: []jsonComparison{}, Operations: []jsonOp{}, Warnings: append([]string{}, r.Warnings...), Notes: append([]string{}, r.Notes...)}
	for _, c := range r.Comparisons {
		jc := jsonComparison{Service: c.Service, Operation: c.Operation, Quantile: num(c.Quantile), Baseline: num(c.Baseline),
			Candidate: num(c.Candidate), Ratio: num(c.Ratio), CILow: num(c.CILow), CIHigh: num(c.CIHigh),
			NBaseline: c.NBaseline, NCandidate: c.NCandidate, Verdict: c.Verdict, Reason: c.Reason,
			Gating: c.Gating, PValue: num(c.PValue), CITail: num(c.Level), Histogram: c.Histogram}
		if c.Histogram {
			jc.Resolution = num(c.Resolution)
		}
		if c.Gating {
			jc.Threshold = ptr(c.Threshold)
		}
		if c.NNeeded > 0 {
			jc.NNeeded = &c.NNeeded
		}
		out.Comparisons = append(out.Comparisons, jc)
	}
	for _, s := range r.Operations {
		jo := jsonOp{Service: s.Service, Operation: s.Operation, CountBaseline: num(s.CountBaseline), CountCandidate: num(s.CountCandidate),
			RateBaseline: num(s.RateBaseline), RateCandidate: num(s.RateCandidate), ShareBaseline: num(s.ShareBaseline),
			ShareCandidate: num(s.ShareCandidate), ErrorVerdict: s.ErrorVerdict, ErrorReason: s.ErrorReason, ErrorGating: s.ErrorGating}
		if s.ErrorsKnown {
			jo.ErrorRatioBaseline, jo.ErrorRatioCand, jo.ErrorPValue = ptr(s.ErrorRatioBaseline), ptr(s.ErrorRatioCand), ptr(s.ErrorPValue)
		}
		out.Operations = append(out.Operations, jo)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // reasons read "0.21s -> 0.27s", not "\u003e"
	return enc.Encode(out)
}

// Markdown is a PR comment.
func Markdown(w io.Writer, r *gate.Report) error {
	fmt.Fprintf(w, "### Release gate: **%s**\n\n", strings.ToUpper(r.Verdict))
	fmt.Fprintf(w, "Baseline `%s` (%s) vs candidate `%s` (%s), source `%s`.\n\n", r.Baseline, r.BaseWindow, r.Candidate, r.CandWindow, r.Source)
	fmt.Fprintf(w, "| operation | quantile | %s | %s | delta [interval] | n | verdict |\n", mdEsc(r.Baseline), mdEsc(r.Candidate))
	fmt.Fprintf(w, "|---|---|---:|---:|---:|---:|---|\n")
	for _, c := range r.Comparisons {
		v := verdictCell(c)
		if c.Gating && c.Verdict == conventions.VerdictFail {
			v = "**fail**"
		}
		fmt.Fprintf(w, "| %s | %s | %s %s | %s %s | %s | %d / %d | %s |\n", mdEsc(name(c.Service, c.Operation)), gate.QuantileName(c.Quantile),
			Dur(c.Baseline), spread(c.BaseSpread), Dur(c.Candidate), spread(c.CandSpread), delta(c), c.NBaseline, c.NCandidate, v)
	}
	var why []string
	for _, c := range r.Comparisons {
		if c.Gating && c.Verdict != conventions.VerdictPass {
			why = append(why, fmt.Sprintf("- **%s** %s %s: %s", c.Verdict, mdEsc(name(c.Service, c.Operation)), gate.QuantileName(c.Quantile), mdEsc(c.Reason)))
		}
	}
	for _, s := range r.Operations {
		if s.ErrorVerdict == conventions.VerdictFail {
			why = append(why, fmt.Sprintf("- **fail** %s errors: %s", mdEsc(name(s.Service, s.Operation)), mdEsc(s.ErrorReason)))
		}
	}
	if len(why) > 0 {
		fmt.Fprintf(w, "\n%s\n", strings.Join(why, "\n"))
	}
	if len(r.Warnings) > 0 {
		fmt.Fprintf(w, "\n**Warnings**\n")
		for _, s := range r.Warnings {
			fmt.Fprintf(w, "- %s\n", mdEsc(s))
		}
	}
	if len(r.Operations) > 0 {
		fmt.Fprintf(w, "\n<details><summary>Throughput, traffic mix, errors</summary>\n\n| operation | spans/s | share | error share |\n|---|---:|---:|---:|\n")
		for _, s := range r.Operations {
			errs := "n/a"
			if s.ErrorsKnown {
				errs = fmt.Sprintf("%.2f%% → %.2f%% (p=%.2g)", 100*s.ErrorRatioBaseline, 100*s.ErrorRatioCand, s.ErrorPValue)
			}
			fmt.Fprintf(w, "| %s | %.3g → %.3g | %.1f%% → %.1f%% | %s |\n", mdEsc(name(s.Service, s.Operation)), s.RateBaseline, s.RateCandidate, 100*s.ShareBaseline, 100*s.ShareCandidate, errs)
		}
		fmt.Fprintf(w, "\n</details>\n")
	}
	for _, s := range r.Notes {
		fmt.Fprintf(w, "\n_%s_\n", mdEsc(s))
	}
	return nil
}

func mdEsc(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "<", "&lt;", ">", "&gt;").Replace(s)
}
