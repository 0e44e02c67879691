package alerts

import (
	"fmt"
	"strings"

	c "github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/riskpatterns"
)

// RiskThreshold is how many matching lines per pod within Window raise the
// alert: any critical line, a burst of warnings, a flood of info lines.
type RiskThreshold struct {
	Count  int
	Window string
	For    string
}

// RiskThresholds by pattern severity.
var RiskThresholds = map[riskpatterns.Severity]RiskThreshold{
	riskpatterns.Critical: {0, "5m", ""},
	riskpatterns.Warning:  {10, "10m", "5m"},
	riskpatterns.Info:     {100, "10m", "10m"},
}

// RiskAlertName is the Loki alert for a pattern: "OperatorLogRisk" + CamelCase id.
func RiskAlertName(id string) string {
	var b strings.Builder
	b.WriteString("OperatorLogRisk")
	for _, part := range strings.Split(id, "_") {
		if part == "" {
			continue
		}
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

// RiskMatcher is the structured-metadata filter for one pattern id. The
// sidecar writes risk as comma-separated ids, so the id must be a whole
// element of that list, not a substring of another id.
func RiskMatcher(id string) string {
	return fmt.Sprintf(`%s=~"(.*,)?%s(,.*)?"`, c.LogRisk, id)
}

// RiskExpr is the LogQL of a pattern's alert. service_name=~".+" selects every
// stream the sidecar writes (Loki needs a matcher that cannot match empty).
func RiskExpr(p riskpatterns.Pattern) string {
	t := RiskThresholds[p.Severity]
	return fmt.Sprintf(`sum by (%s, %s, %s) (count_over_time({%s=~".+"} | %s [%s])) > %d`,
		c.LabelCluster, c.LabelNamespace, c.LabelPod, c.LabelServiceName, RiskMatcher(p.ID), t.Window, t.Count)
}

func riskGroups() []Group {
	var rules []Rule
	for _, p := range riskpatterns.Default {
		t := RiskThresholds[p.Severity]
		what := "a line"
		if t.Count > 0 {
			what = fmt.Sprintf("more than %d lines", t.Count)
		}
		rules = append(rules, Rule{
			Alert:  RiskAlertName(p.ID),
			Expr:   RiskExpr(p),
			For:    t.For,
			Labels: map[string]string{"severity": string(p.Severity), "pattern": p.ID},
			Annotations: annotations(
				fmt.Sprintf("Operator log risk %s in {{ $labels.pod }} ({{ $labels.namespace }})", p.ID),
				fmt.Sprintf("%s {{ $value }} log lines of {{ $labels.pod }} matched risk pattern %s within %s (alert on %s). Read them on the dashboard's log panel with risk=%s.",
					p.Summary, p.ID, t.Window, what, p.ID),
				runbookURL(RunbookRisk, p.RunbookAnchor()),
				dashboardURL(c.DashboardGoldenSignals, "cluster", "namespace")+"&var-risk="+p.ID,
			),
		})
	}
	return []Group{{Name: "opsight-log-risk.alerts", Rules: rules}}
}
