package alerts

import (
	"fmt"
	"strconv"

	c "github.com/opsight/opsight/internal/conventions"
)

// SLO objectives. The error budget is 1 - objective.
const (
	ErrorObjective   = 0.99 // 99 % of reconciles succeed
	LatencyObjective = 0.99 // 99 % of reconciles finish within LatencyThreshold
	// LatencyThreshold is a classic bucket bound of the span-duration histogram
	// (selftelemetry.SpanDurationBuckets), in seconds, as written in "le".
	LatencyThreshold = c.ReconcileLatencySLOSeconds
)

// BurnWindow is one multi-window multi-burn-rate condition (Google SRE
// workbook, chapter 5): the long window proves the burn is significant, the
// short window that it is still happening.
type BurnWindow struct {
	Factor      float64
	Long, Short string
	For         string
	Severity    string
}

// BurnWindows: 2 % of a 30-day budget in 1 h, 5 % in 6 h (page); 10 % in 1 d,
// 10 % in 3 d (ticket).
var BurnWindows = []BurnWindow{
	{14.4, "1h", "5m", "2m", "critical"},
	{6, "6h", "30m", "15m", "critical"},
	{3, "1d", "2h", "1h", "warning"},
	{1, "3d", "6h", "3h", "warning"},
}

// RatioWindows are the windows a ratio is recorded over.
func RatioWindows() []string {
	seen := map[string]bool{}
	var out []string
	for _, w := range BurnWindows {
		for _, x := range []string{w.Short, w.Long} {
			if !seen[x] {
				seen[x] = true
				out = append(out, x)
			}
		}
	}
	return out
}

// Recorded series names.
func ErrorRatioRecord(window string) string {
	return "opsight:controller_runtime_reconcile_errors:ratio_rate" + window
}

func LatencyRatioRecord(window string) string {
	return "opsight:reconcile_latency_slow:ratio_rate" + window
}

const (
	errBy = "cluster, namespace, controller"
	latBy = "cluster, namespace, service_name"
)

func errorRatioExpr(w string) string {
	return fmt.Sprintf("sum by (%s) (rate(%s[%s]))\n/\nsum by (%s) (rate(%s[%s]))",
		errBy, c.MetricReconcileErrors, w, errBy, c.MetricReconcileTotal, w)
}

// latencyRatioExpr is the share of reconcile spans slower than the threshold:
// from classic buckets, or from the native histogram when only that is kept.
func latencyRatioExpr(w string) string {
	s := `span_name=~"` + c.ReconcileSpanNameRegex + `"`
	return fmt.Sprintf(`1 - (
  sum by (%[1]s) (rate(%[2]s_bucket{%[3]s, le="%[4]s"}[%[5]s]))
  /
  sum by (%[1]s) (rate(%[2]s_count{%[3]s}[%[5]s]))
)
or
histogram_fraction(%[4]s, +Inf, sum by (%[1]s) (rate(%[2]s{%[3]s}[%[5]s])))`,
		latBy, c.MetricSpanDuration, s, LatencyThreshold, w)
}

func burnAlert(name, record string, budget float64, w BurnWindow, what, runbook string, dashLabels []string) Rule {
	th := strconv.FormatFloat(w.Factor*budget, 'g', 6, 64)
	return Rule{
		Alert: name,
		Expr: fmt.Sprintf("%s > %s\nand\n%s > %s",
			record+w.Long, th, record+w.Short, th),
		For: w.For,
		Labels: map[string]string{
			"severity":     w.Severity,
			"long_window":  w.Long,
			"short_window": w.Short,
			"burn_rate":    strconv.FormatFloat(w.Factor, 'g', -1, 64),
		},
		Annotations: annotations(
			fmt.Sprintf("%s burns its error budget %sx too fast ({{ $labels.namespace }})", what, strconv.FormatFloat(w.Factor, 'g', -1, 64)),
			fmt.Sprintf("Over the last %s and %s, %s. At this rate the 30-day budget of %.0f %% is gone in %s.",
				w.Long, w.Short, whatDetail(what), budget*100, budgetLeft(w.Factor)),
			runbookURL(RunbookSLO, alertAnchor(name)),
			dashboardURL(c.DashboardGoldenSignals, dashLabels...),
		),
	}
}

func whatDetail(what string) string {
	if what == "Reconcile errors" {
		return "{{ $value | humanizePercentage }} of reconciles of controller {{ $labels.controller }} failed"
	}
	return "{{ $value | humanizePercentage }} of reconciles of {{ $labels.service_name }} were slower than " + LatencyThreshold + "s"
}

func budgetLeft(factor float64) string {
	days := 30 / factor
	if days < 3 {
		return strconv.FormatFloat(days*24, 'f', 0, 64) + " hours"
	}
	return strconv.FormatFloat(days, 'f', 0, 64) + " days"
}

func sloGroups() []Group {
	var rec []Rule
	for _, w := range RatioWindows() {
		rec = append(rec,
			Rule{Record: ErrorRatioRecord(w), Expr: errorRatioExpr(w)},
			Rule{Record: LatencyRatioRecord(w), Expr: latencyRatioExpr(w)},
		)
	}
	var alerts []Rule
	for _, w := range BurnWindows {
		alerts = append(alerts, burnAlert("OperatorReconcileErrorBudgetBurn", ErrorRatioRecord(""), 1-ErrorObjective, w,
			"Reconcile errors", RunbookSLO, []string{"cluster", "namespace", "controller"}))
	}
	for _, w := range BurnWindows {
		alerts = append(alerts, burnAlert("OperatorReconcileLatencyBudgetBurn", LatencyRatioRecord(""), 1-LatencyObjective, w,
			"Reconcile latency", RunbookSLO, []string{"cluster", "namespace"}))
	}
	return []Group{
		{Name: "opsight-operator-slo.rules", Rules: rec},
		{Name: "opsight-operator-slo.alerts", Rules: alerts},
	}
}
