package dashboards

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	c "github.com/opsight/opsight/internal/conventions"
)

func sidecarHealth() *dashboardBuilder {
	zero := 0.0
	b := newDashboard("opsight sidecar health", c.DashboardSidecarHealth, "The opsight sidecar's own metrics: what it read, what it could not parse, how far behind the files it is, what it exported and whether it lost anything.", []string{"opsight", "sidecar"}, "30s", "now-1h").
		Variables(append(append([]cog.Builder[dashboard.VariableModel]{
			dsVar(VarPrometheus, "Prometheus", "prometheus"),
		}, scopeVars(c.MetricTailRotations)...),
			labelVar(VarPod, "pod", c.MetricTailRotations+"{"+scope+"}", "Pod whose sidecar to show.", true),
			labelVar(VarRevision, "revision", c.MetricLogRecords+"{"+scope+"}", "Operator revision the sidecar is configured with.", true),
		))

	b = b.WithRow(dashboard.NewRowBuilder("Log path")).
		WithPanel(timeSeries(panel{
			title: "Lines in by level", desc: "Log records read from the operator's files per level (opsight_log_records_total).",
			unit: "ops", stacked: true, base: "green", min: &zero, w: 8,
			queries: []query{{rate(c.MetricLogRecords, sidecar, "level"), "{{level}}", false}},
		})).
		WithPanel(timeSeries(panel{
			title: "Parse errors by reason", desc: "Lines shipped raw because they were not a JSON object (opsight_log_parse_errors_total): not_json, truncated_json, invalid_utf8, binary, too_long, empty. Not data loss; the line is kept.",
			unit: "ops", stacked: true, base: "green", steps: []step{{1, "orange"}}, min: &zero, w: 8,
			queries: []query{{rate(c.MetricLogParseErrors, sidecarNR, "reason"), "{{reason}}", false}},
		})).
		WithPanel(timeSeries(panel{
			title: "Correlation of log lines", desc: "Share of log lines by how their trace context was found (opsight_log_correlated_total): field (in the line), join (from a span with the same reconcile id) or none.",
			unit: "percentunit", stacked: true, base: "green", min: &zero, w: 8,
			queries: []query{{fmt.Sprintf("%s / ignoring (correlation) group_left %s",
				rate(c.MetricLogCorrelated, sidecarNR, "correlation"), rate(c.MetricLogCorrelated, sidecarNR, "")), "{{correlation}}", false}},
		})).
		WithPanel(timeSeries(panel{
			title: "Tail lag", desc: "Bytes written to a tailed file but not read yet (opsight_tail_lag_bytes). Sustained growth means the sidecar falls behind (CPU limit too low, backend too slow).",
			unit: "bytes", base: "green", steps: []step{{1 << 20, "orange"}, {5 << 20, "red"}}, thresholdLine: true, min: &zero,
			queries: []query{{fmt.Sprintf("max by (pod, file) (%s{%s})", c.MetricTailLagBytes, sidecarNR), "{{pod}} {{file}}", false}},
		})).
		WithPanel(timeSeries(panel{
			title: "File rotations", desc: "Rotations detected (rename, copytruncate, truncation) per pod (opsight_tail_rotations_total). Many per minute mean a small kubelet containerLogMaxSize.",
			unit: "short", bars: true, base: "green", steps: []step{{10, "orange"}}, min: &zero,
			queries: []query{{increase(c.MetricTailRotations, sidecarNR, "pod", "$__rate_interval"), "{{pod}}", false}},
		}))

	b = b.WithRow(dashboard.NewRowBuilder("Export path")).
		WithPanel(statPanel(panel{
			title: "Dropped (must be zero)", desc: "Records, spans or metrics the exporters gave up on over the selected range (opsight_export_dropped_total). Anything above zero is data loss: see the runbook OpsightSidecarDroppingData.",
			unit: "short", base: "green", steps: []step{{0.5, "red"}}, noValue: "0", w: 6, h: 8,
			queries: []query{{fmt.Sprintf("sum(increase(%s{%s}[$__range]))", c.MetricExportDropped, sidecarNR), "dropped", false}},
		})).
		WithPanel(timeSeries(panel{
			title: "Dropped by exporter and reason", desc: "opsight_export_dropped_total by exporter and reason; must stay at zero (red above zero).",
			unit: "short", bars: true, base: "green", steps: []step{{0.5, "red"}}, thresholdLine: true, min: &zero, w: 18,
			queries: []query{{increase(c.MetricExportDropped, sidecarNR, "exporter, reason", "$__rate_interval"), "{{exporter}} {{reason}}", false}},
		})).
		WithPanel(timeSeries(panel{
			title: "Sent per second", desc: "Items sent successfully per exporter (opsight_export_sent_total).",
			unit: "ops", base: "green", min: &zero, w: 8,
			queries: []query{{rate(c.MetricExportSent, sidecarNR, "exporter"), "{{exporter}}", false}},
		})).
		WithPanel(timeSeries(panel{
			title: "Failed sends per second", desc: "Failed send attempts by exporter and reason (opsight_export_failed_total); retried from the persistent queue unless the reason is permanent. A healthy sidecar has no failure series yet, so each exporter then shows 0.",
			unit: "ops", base: "green", steps: []step{{0.1, "orange"}, {1, "red"}}, min: &zero, w: 8,
			queries: []query{{fmt.Sprintf("%s or %s * 0", rate(c.MetricExportFailed, sidecarNR, "exporter, reason"), rate(c.MetricExportSent, sidecarNR, "exporter")), "{{exporter}} {{reason}}", false}},
		})).
		WithPanel(timeSeries(panel{
			title: "Export queue size", desc: "Items waiting in each exporter's sending queue (opsight_export_queue_size). A queue that keeps growing means the backend is down or slower than the operator writes.",
			unit: "short", base: "green", steps: []step{{500, "orange"}, {1000, "red"}}, thresholdLine: true, min: &zero, w: 8,
			queries: []query{{fmt.Sprintf("max by (pod, exporter) (%s{%s})", c.MetricExportQueue, sidecarNR), "{{pod}} {{exporter}}", false}},
		}))

	// The sampler runs in the chart's gateway (another namespace and pods
	// than the operators'), so these panels select by cluster only. Without
	// any sampler every span is kept: "or on()" shows that (rate 1, all spans
	// sampled) only when no sampler series exists at all.
	gw := re(c.LabelCluster, VarCluster)
	noSampler := func(expr string, labels ...string) string {
		for i := 0; i < len(labels); i += 2 {
			expr = fmt.Sprintf(`label_replace(%s, "%s", "%s", "", "")`, expr, labels[i], labels[i+1])
		}
		return expr
	}
	b = b.WithRow(dashboard.NewRowBuilder("Trace sampling")).
		WithPanel(timeSeries(panel{
			title: "Sampling rate by key", desc: "Fraction of traces the adaptivesampling processor keeps per key (opsight_sampling_rate, e.g. key = availability zone in the chart's gateway): baseline_ratio while healthy, 1 while the key's p99 or error ratio breaches and during the cool-down. The highest rate across gateway replicas. Shows 1 under \"no sampler\" when none runs: every span is then kept.",
			unit: "percentunit", base: "green", steps: []step{{0.999, "orange"}}, thresholdLine: true, min: &zero,
			queries: []query{{fmt.Sprintf("max by (key) (%s{%s}) or on() %s", c.MetricSamplingRate, gw,
				noSampler(fmt.Sprintf("count(%s{%s}) * 0 + 1", c.MetricSpanCalls, scope), "key", "no sampler")), "{{key}}", false}},
		})).
		WithPanel(timeSeries(panel{
			title: "Spans sampled and dropped by key", desc: "Sampling decisions per second by key and decision (opsight_sampling_decisions_total): sampled spans go on to Tempo, dropped ones do not (RED metrics still count them). Without a sampler, every span as sampled.",
			unit: "ops", stacked: true, base: "green", min: &zero,
			queries: []query{{fmt.Sprintf("sum by (key, decision) (rate(%s{%s}[$__rate_interval])) or on() %s", c.MetricSamplingDecisions, gw,
				noSampler(rate(c.MetricSpanCalls, scope, ""), "key", "no sampler", "decision", "sampled")), "{{key}} {{decision}}", false}},
		}))
	return b
}
