package dashboards

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	c "github.com/opsight/opsight/internal/conventions"
)

func releaseComparison() *dashboardBuilder {
	base := sel(scope, re(c.LabelRevision, VarBaseline))
	cand := sel(scope, re(c.LabelRevision, VarCandidate))
	zero := 0.0
	gate := []step{{GateThreshold, "red"}}

	b := newDashboard("Operator release comparison", c.DashboardReleaseComparison, "Baseline against candidate revision of the operator, per span name: the same comparisons the release gate makes, with its +15 % threshold drawn.", []string{"opsight", "operator", "release"}, "1m", "now-6h").
		Variables(append(append([]cog.Builder[dashboard.VariableModel]{
			dsVar(VarPrometheus, "Prometheus", "prometheus"),
		}, scopeVars(c.MetricSpanCalls)...),
			revisionVar(VarBaseline, "baseline", "The revision running before the release (service.version of the spans)."),
			revisionVar(VarCandidate, "candidate", "The revision being rolled out."),
		))

	for _, q := range []struct{ q, name string }{{"0.5", "p50"}, {"0.99", "p99"}} {
		b = b.WithRow(dashboard.NewRowBuilder("Latency " + q.name)).
			WithPanel(timeSeries(panel{
				title: "Span latency " + q.name + ": baseline vs candidate",
				desc:  fmt.Sprintf("%s of span durations per span name for both revisions (traces_span_metrics_duration_seconds). Exemplar points open the trace.", q.name),
				unit:  "s", base: "green", min: &zero,
				queries: []query{
					{quantile(q.q, c.MetricSpanDuration, base, "span_name"), "{{span_name}} baseline", true},
					{quantile(q.q, c.MetricSpanDuration, cand, "span_name"), "{{span_name}} candidate", true},
				},
			})).
			WithPanel(timeSeries(panel{
				title: "Span latency " + q.name + ": candidate change",
				desc:  fmt.Sprintf("Candidate %s divided by baseline %s, minus one, per span name. Above the dashed +15 %% line the release gate fails the comparison (when its confidence interval agrees).", q.name, q.name),
				unit:  "percentunit", base: "green", steps: gate, thresholdLine: true,
				queries: []query{{fmt.Sprintf("(%s) / (%s) - 1",
					quantile(q.q, c.MetricSpanDuration, cand, "span_name"),
					quantile(q.q, c.MetricSpanDuration, base, "span_name")), "{{span_name}}", false}},
			}))
	}

	errRatio := func(s string) string {
		return fmt.Sprintf("%s / %s", rate(c.MetricSpanCalls, sel(s, SpanErrorMatcher), "span_name"), rate(c.MetricSpanCalls, s, "span_name"))
	}
	b = b.WithRow(dashboard.NewRowBuilder("Errors and traffic")).
		WithPanel(timeSeries(panel{
			title: "Span error ratio: baseline vs candidate",
			desc:  "Share of spans with an error status per span name and revision (traces_span_metrics_calls_total).",
			unit:  "percentunit", base: "green", steps: []step{{0.01, "orange"}, {0.05, "red"}}, min: &zero, w: 8,
			queries: []query{{errRatio(base), "{{span_name}} baseline", false}, {errRatio(cand), "{{span_name}} candidate", false}},
		})).
		WithPanel(timeSeries(panel{
			title: "Span error ratio: candidate minus baseline",
			desc:  "Difference of error ratios per span name, in percentage points; the gate flags a candidate that adds errors.",
			unit:  "percentunit", base: "green", steps: []step{{0.01, "red"}}, thresholdLine: true, w: 8,
			queries: []query{{fmt.Sprintf("(%s) - (%s)", errRatio(cand), errRatio(base)), "{{span_name}}", false}},
		})).
		WithPanel(timeSeries(panel{
			title: "Traffic: spans per second",
			desc:  "Span rate per span name and revision. Comparisons with little traffic on either side are inconclusive.",
			unit:  "ops", base: "green", min: &zero, w: 8,
			queries: []query{
				{rate(c.MetricSpanCalls, base, "span_name"), "{{span_name}} baseline", false},
				{rate(c.MetricSpanCalls, cand, "span_name"), "{{span_name}} candidate", false},
			},
		}))
	return b
}
