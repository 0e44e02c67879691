package alerts

import (
	"fmt"
	"strings"
)

// RunbookBaseURL is where docs/runbooks/ is browsable. Every runbook_url is
// RunbookBaseURL + "<file>.md#<anchor>"; a test checks the anchor exists.
const RunbookBaseURL = "https://github.com/opsight/opsight/blob/main/docs/runbooks/"

// GrafanaURL prefixes dashboard_url. Empty keeps the link relative
// ("/d/<uid>?..."), which Alertmanager templates or a Grafana-side contact
// point resolve against the Grafana they know.
var GrafanaURL = ""

// Runbook files, one per alert family.
const (
	RunbookSLO     = "operator-slo.md"
	RunbookHealth  = "operator-health.md"
	RunbookSidecar = "opsight-sidecar.md"
	RunbookRisk    = "risk-patterns.md"
	RunbookVolume  = "operator-log-volume.md"
)

func runbookURL(file, anchor string) string { return RunbookBaseURL + file + "#" + anchor }

// alertAnchor is GitHub's heading anchor for "## <AlertName>".
func alertAnchor(alert string) string { return strings.ToLower(alert) }

// dashboardURL links to a dashboard with its variables set from the alert's
// labels (those the alert has), keeping the default time range.
func dashboardURL(uid string, labels ...string) string {
	var q []string
	for _, l := range labels {
		q = append(q, fmt.Sprintf("var-%s={{ $labels.%s }}", l, l))
	}
	u := GrafanaURL + "/d/" + uid
	if len(q) > 0 {
		u += "?" + strings.Join(q, "&")
	}
	return u
}

func annotations(summary, description, runbook, dashboard string) map[string]string {
	return map[string]string{
		"summary":       summary,
		"description":   description,
		"runbook_url":   runbook,
		"dashboard_url": dashboard,
	}
}
