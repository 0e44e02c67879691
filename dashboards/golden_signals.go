package dashboards

import (
	"fmt"
	"strconv"
	"time"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	c "github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/riskpatterns"
)

var quantiles = []struct{ q, name string }{{"0.5", "p50"}, {"0.95", "p95"}, {"0.99", "p99"}}

var toDrilldown = []link{{"Release comparison", c.DashboardReleaseComparison}, {"Sidecar health", c.DashboardSidecarHealth}}

// riskID returns a catalogue id, failing the build (panic at generate time)
// when the catalogue no longer has it: a renamed id must be renamed here too.
func riskID(id string) string {
	if _, ok := riskpatterns.ByID(id); !ok {
		panic(fmt.Sprintf("risk pattern %q is not in riskpatterns.Default", id))
	}
	return id
}

// LogsQuery is the drill-down LogQL: the selected controller's lines, filtered
// on the risk structured metadata. service_name=~".+" is the one matcher that
// cannot match the empty string (Loki requires one); the others are "All"-able.
func LogsQuery() string {
	return fmt.Sprintf(`{%s=~".+", %s, %s, %s} | %s=~"$%s" | %s=~"(.*,)?($%s)(,.*)?"`,
		c.LabelServiceName, re(c.LabelCluster, VarCluster), re(c.LabelNamespace, VarNamespace), re(c.LabelRevision, VarRevision),
		c.LogController, VarController, c.LogRisk, VarRisk)
}

// TracesQuery is the TraceQL of the drill-down trace table.
func TracesQuery() string {
	secs, err := strconv.ParseFloat(c.ReconcileLatencySLOSeconds, 64)
	if err != nil {
		panic("conventions.ReconcileLatencySLOSeconds is not a number: " + c.ReconcileLatencySLOSeconds)
	}
	return fmt.Sprintf(`{ resource.k8s.namespace.name =~ "$%s" && resource.service.version =~ "$%s" && name =~ "%s" && (duration > %s || status = error) }`,
		VarNamespace, VarRevision, c.ReconcileSpanNameRegex, time.Duration(secs*float64(time.Second)))
}

func goldenSignals() *dashboardBuilder {
	var spanLat, crLat []query
	for _, q := range quantiles {
		spanLat = append(spanLat, query{quantile(q.q, c.MetricSpanDuration, recSpan, "span_name"), "{{span_name}} " + q.name, true})
		crLat = append(crLat, query{quantile(q.q, c.MetricReconcileTime, opSel, "controller"), "{{controller}} " + q.name, true})
	}
	zero := 0.0

	b := newDashboard("Operator golden signals", c.DashboardGoldenSignals, "Latency, traffic, errors and saturation of a Kubernetes operator, from controller-runtime metrics, span-derived metrics and the opsight sidecar; drill down to traces (exemplars) and logs.", []string{"opsight", "operator"}, "30s", "now-1h").
		Variables(append(append([]cog.Builder[dashboard.VariableModel]{
			dsVar(VarPrometheus, "Prometheus", "prometheus"),
			dsVar(VarLoki, "Loki", "loki"),
			dsVar(VarTempo, "Tempo", "tempo"),
		}, scopeVars(c.MetricReconcileTotal)...),
			labelVar(VarController, "controller", c.MetricReconcileTotal+"{"+scope+"}", "Controller (controller-runtime's controller label, also on its workqueue metrics).", true),
			labelVar(VarRevision, "revision", MetricSpanCallsSelector(), "Operator revision (image tag); filters span-derived, sidecar and log data.", true),
			riskVar(),
		))

	// Latency.
	b = b.WithRow(dashboard.NewRowBuilder("Latency")).
		WithPanel(timeSeries(panel{
			title: "Reconcile latency (spans) p50/p95/p99",
			desc:  "Quantiles of reconcile span durations per span name, from traces_span_metrics_duration_seconds. Points are exemplars: click one to open its trace in Tempo.",
			unit:  "s", queries: spanLat, base: "green", steps: []step{{1, "orange"}, {5, "red"}}, min: &zero, links: toDrilldown,
		})).
		WithPanel(timeSeries(panel{
			title: "Reconcile latency (controller-runtime) p50/p95/p99",
			desc:  "Quantiles of controller_runtime_reconcile_time_seconds per controller: time inside Reconcile(), without queue wait.",
			unit:  "s", queries: crLat, base: "green", steps: []step{{1, "orange"}, {5, "red"}}, min: &zero,
		})).
		WithPanel(timeSeries(panel{
			title: "Watch lag (workqueue wait) p50/p99",
			desc:  "How long an event waited in the workqueue before a worker picked it up (workqueue_queue_duration_seconds). Growing values mean workers cannot keep up with watch events.",
			unit:  "s", min: &zero, base: "green", steps: []step{{1, "orange"}, {10, "red"}}, thresholdLine: true,
			queries: []query{
				{quantile("0.5", c.MetricWorkqueueQueueDur, queueSel, "controller"), "{{controller}} p50", false},
				{quantile("0.99", c.MetricWorkqueueQueueDur, queueSel, "controller"), "{{controller}} p99", false},
			},
		})).
		WithPanel(timeSeries(panel{
			title: "API request latency p99",
			desc:  "p99 of client-go requests to the API server by verb. rest_client_request_duration_seconds is opt-in; when absent, the client spans' durations are shown instead.",
			unit:  "s", min: &zero, base: "green", steps: []step{{0.5, "orange"}, {2, "red"}},
			queries: []query{{
				fmt.Sprintf(`histogram_quantile(0.99, sum by (verb, le) (rate(%s_bucket{%s}[$__rate_interval]))) or histogram_quantile(0.99, sum by (span_name, le) (rate(%s_bucket{%s, %s}[$__rate_interval])))`,
					c.MetricRESTDuration, scope, c.MetricSpanDuration, spanSel, SpanClientMatcher),
				"{{verb}}{{span_name}} p99", true,
			}},
		}))

	// Traffic.
	b = b.WithRow(dashboard.NewRowBuilder("Traffic")).
		WithPanel(timeSeries(panel{
			title: "Reconciles per second", desc: "controller_runtime_reconcile_total rate by controller and result (success, error, requeue, requeue_after).",
			unit: "ops", stacked: true, base: "green", min: &zero, w: 8,
			queries: []query{{rate(c.MetricReconcileTotal, opSel, "controller, result"), "{{controller}} {{result}}", false}},
		})).
		WithPanel(timeSeries(panel{
			title: "API requests per second", desc: "client-go requests to the API server (rest_client_requests_total) by method and status code.",
			unit: "reqps", stacked: true, base: "green", min: &zero, w: 8,
			queries: []query{{rate(c.MetricRESTRequests, scope, "method, code"), "{{method}} {{code}}", false}},
		})).
		WithPanel(timeSeries(panel{
			title: "Spans and log lines per second", desc: "Spans received per span name (traces_span_metrics_calls_total) and log lines read per level (opsight_log_records_total): a drop to zero means telemetry stopped.",
			unit: "ops", base: "green", min: &zero, w: 8,
			queries: []query{
				{rate(c.MetricSpanCalls, spanSel, "span_name"), "spans {{span_name}}", false},
				{rate(c.MetricLogRecords, spanSel, "level"), "logs {{level}}", false},
			},
		}))

	// Errors.
	b = b.WithRow(dashboard.NewRowBuilder("Errors")).
		WithPanel(timeSeries(panel{
			title: "Reconcile error ratio", desc: "Share of reconciles that returned an error (controller_runtime_reconcile_errors_total / controller_runtime_reconcile_total). The dashed line is the 1 % error budget of the SLO alerts.",
			unit: "percentunit", base: "green", steps: []step{{0.01, "red"}}, thresholdLine: true, min: &zero, w: 8,
			queries: []query{{fmt.Sprintf("%s / %s", rate(c.MetricReconcileErrors, opSel, "controller"), rate(c.MetricReconcileTotal, opSel, "controller")), "{{controller}}", false}},
			links:   toDrilldown,
		})).
		WithPanel(timeSeries(panel{
			title: "Reconcile errors per second", desc: "Reconciles that returned an error, per controller (controller_runtime_reconcile_errors_total); each is retried with backoff.",
			unit: "ops", base: "green", steps: []step{{0.1, "orange"}, {1, "red"}}, min: &zero, w: 8,
			queries: []query{{rate(c.MetricReconcileErrors, opSel, "controller"), "{{controller}}", false}},
		})).
		WithPanel(timeSeries(panel{
			title: "API errors per second (4xx, 5xx, 429)", desc: "client-go requests answered with 4xx or 5xx, by code; 429 means the API server's priority and fairness rejected the operator.",
			unit: "reqps", base: "green", steps: []step{{0.1, "orange"}, {1, "red"}}, min: &zero, w: 8,
			queries: []query{{rate(c.MetricRESTRequests, sel(scope, `code=~"4..|5.."`), "code, method"), "{{code}} {{method}}", false}},
		})).
		WithPanel(timeSeries(panel{
			title: "Risk patterns in logs", desc: "Log lines per risk pattern (opsight_log_risk_total), counted by the sidecar. Each id has a runbook section in docs/runbooks/risk-patterns.md; use the logs panel below with the risk filter to read them.",
			unit: "short", bars: true, stacked: true, base: "green", steps: []step{{1, "orange"}, {10, "red"}}, min: &zero, w: 8,
			queries: []query{{increase(c.MetricLogRisk, spanSel, "pattern", "$__rate_interval"), "{{pattern}}", false}},
		})).
		WithPanel(timeSeries(panel{
			title: "Span error ratio", desc: "Share of spans with an error status, per span name (traces_span_metrics_calls_total).",
			unit: "percentunit", base: "green", steps: []step{{0.01, "orange"}, {0.05, "red"}}, min: &zero, w: 8,
			queries: []query{{fmt.Sprintf("%s / %s", rate(c.MetricSpanCalls, sel(spanSel, SpanErrorMatcher), "span_name"), rate(c.MetricSpanCalls, spanSel, "span_name")), "{{span_name}}", false}},
		})).
		WithPanel(timeSeries(panel{
			title: "Workqueue retries per second", desc: "Items re-queued with rate-limited backoff (workqueue_retries_total), usually after a reconcile error.",
			unit: "ops", base: "green", steps: []step{{1, "orange"}, {10, "red"}}, min: &zero, w: 8,
			queries: []query{{rate(c.MetricWorkqueueRetries, queueSel, "controller"), "{{controller}}", false}},
		}))

	b = logVolumeRow(b)

	// Saturation.
	b = b.WithRow(dashboard.NewRowBuilder("Saturation")).
		WithPanel(timeSeries(panel{
			title: "Workqueue depth", desc: "Items waiting in each controller's workqueue (workqueue_depth). A depth that only grows means reconciles are slower than events arrive.",
			unit: "short", base: "green", steps: []step{{50, "orange"}, {100, "red"}}, thresholdLine: true, min: &zero, w: 8,
			queries: []query{{fmt.Sprintf("sum by (controller) (%s{%s})", c.MetricWorkqueueDepth, queueSel), "{{controller}}", false}},
		})).
		WithPanel(timeSeries(panel{
			title: "Active vs max workers", desc: "Reconcile workers busy (controller_runtime_active_workers) against MaxConcurrentReconciles (controller_runtime_max_concurrent_reconciles). Active at max means the controller is saturated.",
			unit: "short", base: "green", min: &zero, w: 8,
			queries: []query{
				{fmt.Sprintf("sum by (controller) (%s{%s})", c.MetricActiveWorkers, opSel), "{{controller}} active", false},
				{fmt.Sprintf("sum by (controller) (%s{%s})", c.MetricMaxWorkers, opSel), "{{controller}} max", false},
			},
		})).
		WithPanel(timeSeries(panel{
			title: "Client-side throttling", desc: "Log lines saying client-go's rate limiter delayed a request (risk pattern client_throttling). Raise QPS/Burst or reduce API calls.",
			unit: "short", bars: true, base: "green", steps: []step{{1, "orange"}, {20, "red"}}, min: &zero, w: 8,
			queries: []query{{increase(c.MetricLogRisk, sel(spanSel, fmt.Sprintf(`pattern="%s"`, riskID("client_throttling"))), "revision", "$__rate_interval"), "{{revision}}", false}},
		})).
		WithPanel(timeSeries(panel{
			title: "CPU of the operator pods", desc: "CPU cores used per container (cAdvisor container_cpu_usage_seconds_total); outside Kubernetes, the processes' own process_cpu_seconds_total.",
			unit: "short", base: "green", steps: []step{{1, "orange"}, {2, "red"}}, min: &zero,
			queries: []query{{fmt.Sprintf(`sum by (pod, container) (rate(%s{%s, container!="", container!="POD"}[$__rate_interval])) or sum by (pod, job) (rate(%s{%s}[$__rate_interval]))`,
				c.MetricContainerCPU, scope, c.MetricProcessCPU, scope), "{{pod}} {{container}}{{job}}", false}},
		})).
		WithPanel(timeSeries(panel{
			title: "Memory of the operator pods", desc: "Working set per container (cAdvisor container_memory_working_set_bytes), what the OOM killer compares with the limit; outside Kubernetes, process_resident_memory_bytes.",
			unit: "bytes", base: "green", steps: []step{{512 << 20, "orange"}, {1 << 30, "red"}}, min: &zero,
			queries: []query{{fmt.Sprintf(`sum by (pod, container) (%s{%s, container!="", container!="POD"}) or sum by (pod, job) (%s{%s})`,
				c.MetricContainerMemory, scope, c.MetricProcessResident, scope), "{{pod}} {{container}}{{job}}", false}},
		}))

	// Drill-down: logs of the selected controller, filtered by risk.
	b = b.WithRow(dashboard.NewRowBuilder("Logs")).
		WithPanel(logsPanel("Operator logs (controller, risk)",
			"The operator's lines for the selected controller and revision, filtered on the risk structured metadata set by the sidecar. Open a line's trace_id in Tempo (derived field); from a trace, Tempo links back here (trace to logs).",
			LogsQuery(), 24, 12)).
		WithPanel(traceTable("Slow or failed reconcile traces",
			"Reconcile traces of the selected namespace and revision that took longer than the 0.5 s latency SLO or ended in error (TraceQL on Tempo); open one to see which call took the time, and its log lines (trace to logs).",
			TracesQuery(), 24, 8))
	return b
}

// Recorded series of alerts/rules/operator-log-volume.yaml the log volume
// panel reads (a test checks a rule records each).
const (
	recLogVolumeYesterday = "service:opsight_log_records:rate1h_offset1d"
	recLogVolumeMean      = "service:opsight_log_records:rate5m_avg1d"
)

// LogVolumeBaselineQuery shows the two baselines of the log-volume alerts per
// service; the label baseline tells them apart.
func LogVolumeBaselineQuery() string {
	return fmt.Sprintf(`label_replace(sum by (%[1]s) (%[2]s{%[4]s}), "baseline", "same hour yesterday", "", "") or label_replace(sum by (%[1]s) (%[3]s{%[4]s}), "baseline", "1d mean", "", "")`,
		c.LabelServiceName, recLogVolumeYesterday, recLogVolumeMean, scope)
}

// logVolumeRow: log lines per service against the baselines the
// OperatorLogVolumeSpike/Drop alerts compare with, and which risk patterns
// make up the volume.
func logVolumeRow(b *dashboardBuilder) *dashboardBuilder {
	zero := 0.0
	return b.WithRow(dashboard.NewRowBuilder("Log volume")).
		WithPanel(timeSeries(panel{
			title: "Log volume vs baseline per service",
			desc:  "Log lines per second per service, all revisions (opsight_log_records_total; service_name is the pod's service identity, set by the PodMonitor) against the same hour yesterday and the 1d mean, recorded by alerts/rules/operator-log-volume.yaml (baselines need those rules and a day of history). OperatorLogVolumeSpike fires when the 5-minute rate stays far above both baselines and above an absolute floor, OperatorLogVolumeDrop when it stays far below both; the factors are in docs/runbooks/operator-log-volume.md.",
			unit:  "short", base: "green", min: &zero, w: 12,
			queries: []query{
				// All revisions, like the baselines.
				{rate(c.MetricLogRecords, scope, c.LabelServiceName), "{{service_name}} now", false},
				{LogVolumeBaselineQuery(), "{{service_name}} {{baseline}}", false},
			},
		})).
		WithPanel(timeSeries(panel{
			title: "Risk-pattern lines per service",
			desc:  "Log lines per second per service and risk pattern (opsight_log_risk_total): which errors a volume spike is made of. A line can match several patterns. Each id has a runbook section in docs/runbooks/risk-patterns.md.",
			unit:  "short", stacked: true, base: "green", min: &zero, w: 12,
			queries: []query{{rate(c.MetricLogRisk, spanSel, c.LabelServiceName+", pattern"), "{{service_name}} {{pattern}}", false}},
		}))
}
