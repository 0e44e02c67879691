package alerts

import (
	"fmt"

	c "github.com/opsight/opsight/internal/conventions"
)

// Thresholds of the sidecar alerts.
const (
	TailLagMaxBytes  = 5 << 20 // 5 MiB unread, sustained 10 m
	ExportQueueMax   = 1000    // items waiting in a sending queue, sustained 10 m
	TelemetryQuiet   = "30m"   // no logs/spans for this long from a pod that sent some in TelemetryHistory
	TelemetryHistory = "6h"
)

const pBy = "cluster, namespace, pod"

// APIServerWebhookFailOpen is kube-apiserver's count of admission webhook
// calls that failed and were ignored (failurePolicy Ignore), by webhook
// name (k8s.io/apiserver/pkg/admission/metrics): the one trace of a pod
// created without its sidecar while the webhook was unreachable.
const APIServerWebhookFailOpen = "apiserver_admission_webhook_fail_open_count"

// ForeignMetrics are the metrics rules read from programs other than
// opsight's, with where a test checks them against the real program (the
// demo's scrape, which checks every other name, cannot serve them).
var ForeignMetrics = map[string]string{
	APIServerWebhookFailOpen: "kube-apiserver: test/cluster TestInjection/webhook-down",
}

func sidecarGroups() []Group {
	ann := func(name, summary, desc string, labels ...string) map[string]string {
		return annotations(summary, desc, runbookURL(RunbookSidecar, alertAnchor(name)), dashboardURL(c.DashboardSidecarHealth, labels...))
	}
	// quiet: pods that sent the metric within the history window but whose
	// counter did not move for the quiet window (rate 0 or the series gone).
	quiet := func(metric string) string {
		return fmt.Sprintf("count by (%[1]s) (last_over_time(%[2]s[%[3]s]))\nunless on (%[1]s)\nsum by (%[1]s) (rate(%[2]s[%[4]s])) > 0",
			pBy, metric, TelemetryHistory, TelemetryQuiet)
	}
	rules := []Rule{
		{
			Alert:  "OpsightSidecarDroppingData",
			Expr:   fmt.Sprintf("sum by (%s, exporter, reason) (increase(%s[5m])) > 0", pBy, c.MetricExportDropped),
			Labels: map[string]string{"severity": "critical"},
			Annotations: ann("OpsightSidecarDroppingData",
				"opsight sidecar in {{ $labels.pod }} dropped telemetry ({{ $labels.exporter }}: {{ $labels.reason }})",
				"opsight_export_dropped_total increased in the last 5 minutes: exporter {{ $labels.exporter }} gave up on data (reason {{ $labels.reason }}). This is data loss; it must stay at zero.",
				"cluster", "namespace", "pod"),
		},
		{
			// Not loss: the entries are kept in the dead-letter file. But they
			// are not in Loki, and only a person can replay them.
			Alert:  "OpsightSidecarDeadLettering",
			Expr:   fmt.Sprintf("sum by (%s, exporter, reason) (increase(%s[5m])) > 0", pBy, c.MetricExportDeadLetter),
			Labels: map[string]string{"severity": "warning"},
			Annotations: ann("OpsightSidecarDeadLettering",
				"opsight sidecar in {{ $labels.pod }} kept entries Loki refused in its dead-letter file ({{ $labels.reason }})",
				"Loki refused log entries that the sidecar could not make acceptable (reason {{ $labels.reason }}); they are in the dead-letter file under the state directory, not in Loki. Fix the cause, then replay the file.",
				"cluster", "namespace", "pod"),
		},
		{
			// Refused entries are fixed and sent again; a steady stream of
			// refusals still means the sidecar's limits and Loki's disagree.
			Alert:  "OpsightSidecarLokiRefusing",
			Expr:   fmt.Sprintf("sum by (%s, exporter, reason) (rate(%s[5m])) > 0", pBy, c.MetricExportRefused),
			For:    "15m",
			Labels: map[string]string{"severity": "warning"},
			Annotations: ann("OpsightSidecarLokiRefusing",
				"Loki keeps refusing entries from the opsight sidecar in {{ $labels.pod }} ({{ $labels.reason }})",
				"For 15 minutes Loki has refused entries pushed by exporter {{ $labels.exporter }} (reason {{ $labels.reason }}). The sidecar re-sends them fixed or dead-letters them, but its limits do not match this Loki's limits_config.",
				"cluster", "namespace", "pod"),
		},
		{
			Alert:  "OpsightSidecarExportFailing",
			Expr:   fmt.Sprintf("sum by (%s, exporter) (rate(%s[5m])) > 0", pBy, c.MetricExportFailed),
			For:    "15m",
			Labels: map[string]string{"severity": "warning"},
			Annotations: ann("OpsightSidecarExportFailing",
				"opsight sidecar in {{ $labels.pod }} fails to send to {{ $labels.exporter }}",
				"Send attempts of exporter {{ $labels.exporter }} have failed for 15 minutes; data waits in the persistent queue and is retried, until the queue fills.",
				"cluster", "namespace", "pod"),
		},
		{
			Alert:  "OpsightSidecarTailLagging",
			Expr:   fmt.Sprintf("max by (%s) (%s) > %d", pBy, c.MetricTailLagBytes, TailLagMaxBytes),
			For:    "10m",
			Labels: map[string]string{"severity": "warning"},
			Annotations: ann("OpsightSidecarTailLagging",
				"opsight sidecar in {{ $labels.pod }} is {{ $value | humanize1024 }}B behind the log files",
				"More than 5 MiB of the operator's log files have stayed unread for 10 minutes: the sidecar falls behind and may miss rotated files.",
				"cluster", "namespace", "pod"),
		},
		{
			Alert:  "OpsightSidecarExportQueueBacklog",
			Expr:   fmt.Sprintf("max by (%s, exporter) (%s) > %d", pBy, c.MetricExportQueue, ExportQueueMax),
			For:    "10m",
			Labels: map[string]string{"severity": "warning"},
			Annotations: ann("OpsightSidecarExportQueueBacklog",
				"opsight sidecar in {{ $labels.pod }} has {{ $value }} items queued for {{ $labels.exporter }}",
				"The sending queue of exporter {{ $labels.exporter }} has held more than 1000 items for 10 minutes: the backend is down or slower than the operator writes.",
				"cluster", "namespace", "pod"),
		},
		{
			Alert:  "OpsightNoLogsFromPod",
			Expr:   quiet(c.MetricLogRecords),
			For:    "5m",
			Labels: map[string]string{"severity": "warning"},
			Annotations: ann("OpsightNoLogsFromPod",
				"No operator log lines from {{ $labels.pod }} for "+TelemetryQuiet,
				"The sidecar in {{ $labels.pod }} read log lines in the last "+TelemetryHistory+" but none in the last "+TelemetryQuiet+" (opsight_log_records_total stopped or vanished).",
				"cluster", "namespace", "pod"),
		},
		{
			Alert:  "OpsightNoSpansFromPod",
			Expr:   quiet(c.MetricSpanCalls),
			For:    "5m",
			Labels: map[string]string{"severity": "warning"},
			Annotations: ann("OpsightNoSpansFromPod",
				"No spans from {{ $labels.pod }} for "+TelemetryQuiet,
				"The operator in {{ $labels.pod }} sent spans in the last "+TelemetryHistory+" but none in the last "+TelemetryQuiet+" (traces_span_metrics_calls_total stopped or vanished).",
				"cluster", "namespace", "pod"),
		},
		{
			Alert:  "OpsightSpanServiceMismatch",
			Expr:   fmt.Sprintf("sum by (%s, span_service) (increase(%s[15m])) > 0", pBy, c.MetricSpanServiceMismatch),
			Labels: map[string]string{"severity": "info"},
			Annotations: ann("OpsightSpanServiceMismatch",
				"The operator in {{ $labels.pod }} sends spans as service {{ $labels.span_service }}, not the pod's service name",
				"Spans arrived with service.name {{ $labels.span_service }}, which differs from the pod's service identity; the sidecar re-labels them (original kept in opsight.original_service_name) so logs, traces and metrics agree. Set OTEL_SERVICE_NAME or the opsight.dev/service annotation so both say the same.",
				"cluster", "namespace", "pod"),
		},
		{
			// Not visible in the sidecar's own metrics: a pod that missed
			// the webhook has no sidecar. The API server counts the miss.
			Alert:  "OpsightSidecarInjectionFailOpen",
			Expr:   fmt.Sprintf(`sum by (cluster, name) (increase(%s{name=~".+\\.opsight\\.dev"}[10m])) > 0`, APIServerWebhookFailOpen),
			Labels: map[string]string{"severity": "warning"},
			Annotations: ann("OpsightSidecarInjectionFailOpen",
				"Pods were created without the opsight sidecar: webhook {{ $labels.name }} was unreachable",
				"The API server could not call the sidecar-injection webhook {{ $labels.name }} and, with failurePolicy Ignore, admitted {{ $value }} pod creations in the last 10 minutes as they were: those pods run without the sidecar, so nothing of their logs or spans is collected. Check the webhook's pods and the endpoints of its Service in the chart's namespace; once it answers again, recreate the pods (kubectl rollout restart).",
			),
		},
		{
			Alert:  "OpsightSidecarMetricsAbsent",
			Expr:   fmt.Sprintf("absent_over_time(%s[15m])", c.MetricTailRotations),
			For:    "5m",
			Labels: map[string]string{"severity": "warning"},
			Annotations: ann("OpsightSidecarMetricsAbsent",
				"No opsight sidecar metrics at all",
				"Prometheus has scraped no opsight sidecar for 15 minutes although these rules are installed: the scrape configuration (PodMonitor) or the sidecar injection is broken.",
			),
		},
	}
	return []Group{{Name: "opsight-sidecar.alerts", Rules: rules}}
}
