package dashboards

import (
	"fmt"
	"strings"

	"github.com/opsight/opsight/internal/conventions"
)

// Label values the span-metrics producer writes. They are matched
// case-insensitively and loosely because the OTel spanmetrics connector
// writes STATUS_CODE_ERROR / SPAN_KIND_CLIENT while other producers write
// Error / client.
const (
	SpanErrorMatcher  = `status_code=~"(?i).*error.*"`
	SpanClientMatcher = `span_kind=~"(?i).*client.*"`
	// ReconcileSpanMatcher selects the spans that stand for one reconcile.
	// controller-runtime tracing and opsight's instrument helper name them
	// "Reconcile" / "reconcile <controller>".
	ReconcileSpanMatcher = `span_name=~"` + conventions.ReconcileSpanNameRegex + `"`
)

// Template variable names. Every query refers to them, never to a literal
// cluster, namespace or data source.
const (
	VarPrometheus = "prometheus"
	VarLoki       = "loki"
	VarTempo      = "tempo"
	VarCluster    = "cluster"
	VarNamespace  = "namespace"
	VarController = "controller"
	VarRevision   = "revision"
	VarPod        = "pod"
	VarRisk       = "risk"
	VarBaseline   = "baseline"
	VarCandidate  = "candidate"
)

// GateThreshold is the release gate's tolerated regression (+15 %), drawn on
// the release comparison panels.
const GateThreshold = 0.15

// sel joins label matchers into a selector body.
func sel(matchers ...string) string { return strings.Join(matchers, ", ") }

// re is a regex matcher on a template variable; "All" is ".*" (allValue), so
// series without the label still match.
func re(label, variable string) string { return fmt.Sprintf(`%s=~"$%s"`, label, variable) }

// Selector bodies shared by panels.
var (
	scope     = sel(re(conventions.LabelCluster, VarCluster), re(conventions.LabelNamespace, VarNamespace))
	opSel     = sel(scope, re(conventions.LogController, VarController))
	queueSel  = opSel // controller-runtime >= 0.19 labels workqueue metrics with controller (and name)
	spanSel   = sel(scope, re(conventions.LabelRevision, VarRevision))
	recSpan   = sel(spanSel, ReconcileSpanMatcher)
	sidecar   = sel(scope, re(conventions.LabelPod, VarPod), re(conventions.LabelRevision, VarRevision))
	sidecarNR = sel(scope, re(conventions.LabelPod, VarPod)) // metrics without a revision label
)

// quantile returns histogram_quantile over a classic histogram, falling back
// to the native histogram of the same name (the sidecar serves both; which
// one Prometheus keeps depends on its scrape settings).
func quantile(q string, metric, selector, by string) string {
	byLe := "le"
	if by != "" {
		byLe = by + ", le"
	}
	native := fmt.Sprintf(`histogram_quantile(%s, sum(rate(%s{%s}[$__rate_interval])))`, q, metric, selector)
	if by != "" {
		native = fmt.Sprintf(`histogram_quantile(%s, sum by (%s) (rate(%s{%s}[$__rate_interval])))`, q, by, metric, selector)
	}
	return fmt.Sprintf(`histogram_quantile(%s, sum by (%s) (rate(%s_bucket{%s}[$__rate_interval]))) or %s`, q, byLe, metric, selector, native)
}

func rate(metric, selector, by string) string {
	if by == "" {
		return fmt.Sprintf(`sum(rate(%s{%s}[$__rate_interval]))`, metric, selector)
	}
	return fmt.Sprintf(`sum by (%s) (rate(%s{%s}[$__rate_interval]))`, by, metric, selector)
}

func increase(metric, selector, by, window string) string {
	return fmt.Sprintf(`sum by (%s) (increase(%s{%s}[%s]))`, by, metric, selector, window)
}
