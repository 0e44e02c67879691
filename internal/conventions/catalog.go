package conventions

// The catalogue below lists the shared names with what users need to know
// about them (labels, defaults, meaning). docs/conventions.md is generated from
// it (go generate ./internal/conventions), and catalog_test.go fails when a
// Metric*, Env*, Verdict* or Exit* constant is missing here.

// Metric is one metric family users query.
type Metric struct {
	Name   string
	Type   string   // counter, gauge or histogram
	Labels []string // label names, in the order the producer declares them
	Help   string
}

// SpanMetrics are the span-derived RED metrics (OTel spanmetrics connector names).
var SpanMetrics = []Metric{
	{MetricSpanDuration, "histogram", SpanMetricLabels, "Span durations (classic buckets and native histogram); exemplars carry trace_id and span_id."},
	{MetricSpanCalls, "counter", SpanMetricLabels, "Spans seen, by name, kind and status."},
}

// SidecarMetrics are the sidecar's own metrics (prefix opsight_).
var SidecarMetrics = []Metric{
	{MetricLogRecords, "counter", []string{"level", "revision"}, "Log records read from the operator."},
	{MetricLogRisk, "counter", []string{"pattern", "revision"}, "Log records matching a risk pattern (pattern = risk pattern id)."},
	{MetricLogCorrelated, "counter", []string{"correlation"}, "Log records by how their trace context was found: field, join or none."},
	{MetricLogParseErrors, "counter", []string{"reason"}, "Log records shipped raw because they could not be parsed."},
	{MetricTailLagBytes, "gauge", []string{"file"}, "Bytes written to a tailed file but not yet read."},
	{MetricTailRotations, "counter", nil, "Log file rotations detected (rename, copytruncate, truncation)."},
	{MetricExportSent, "counter", []string{"exporter"}, "Items sent by an exporter."},
	{MetricExportFailed, "counter", []string{"exporter", "reason"}, "Failed send attempts; retried unless the reason is permanent."},
	{MetricExportQueue, "gauge", []string{"exporter"}, "Items waiting in an exporter's sending queue."},
	{MetricExportDropped, "counter", []string{"exporter", "reason"}, "Items dropped by an exporter (must stay 0)."},
	{MetricExportRefused, "counter", []string{"exporter", "reason"}, "Entries the backend refused; each is re-sent fixed or dead-lettered."},
	{MetricExportAdjusted, "counter", []string{"exporter", "adjustment"}, "Entries changed so the backend accepts them: restamped, split, label_truncated, metadata_truncated."},
	{MetricExportDeadLetter, "counter", []string{"exporter", "reason"}, "Entries written to the dead-letter file under the state directory."},
	{MetricSpanServiceMismatch, "counter", []string{"span_service"}, "Spans that arrived with another service.name than the pod's service identity."},
	{MetricSamplingDecisions, "counter", []string{"key", "decision"}, "Trace sampling decisions (sampled, dropped), counted per span."},
	{MetricSamplingRate, "gauge", []string{"key"}, "Current fraction of traces kept, by key."},
}

// OperatorMetrics are the controller-runtime / client-go metrics the
// dashboards and alert rules read from the operator itself.
var OperatorMetrics = []Metric{
	{MetricReconcileTotal, "counter", []string{"controller", "result"}, "Reconciles by result."},
	{MetricReconcileErrors, "counter", []string{"controller"}, "Reconciles that returned an error."},
	{MetricReconcileTime, "histogram", []string{"controller"}, "Reconcile duration."},
	{MetricActiveWorkers, "gauge", []string{"controller"}, "Reconcile workers busy."},
	{MetricMaxWorkers, "gauge", []string{"controller"}, "Configured MaxConcurrentReconciles."},
	{MetricWorkqueueDepth, "gauge", []string{"controller", "name"}, "Items waiting in the work queue."},
	{MetricWorkqueueQueueDur, "histogram", []string{"controller", "name"}, "Time an item waits in the queue."},
	{MetricWorkqueueWorkDur, "histogram", []string{"controller", "name"}, "Time spent processing an item."},
	{MetricWorkqueueRetries, "counter", []string{"controller", "name"}, "Items re-queued with rate limiting."},
	{MetricRESTRequests, "counter", []string{"code", "method", "host"}, "API server requests by status code."},
	{MetricRESTDuration, "histogram", []string{"verb", "host"}, "API request latency (opt-in in client-go: panels fall back when absent)."},
	{MetricLeaderElection, "gauge", []string{"name"}, "1 while this replica holds the leader lease."},
	{MetricContainerCPU, "counter", []string{"namespace", "pod", "container"}, "Container CPU (cAdvisor; absent outside Kubernetes)."},
	{MetricContainerMemory, "gauge", []string{"namespace", "pod", "container"}, "Container working set (cAdvisor; absent outside Kubernetes)."},
	{MetricProcessCPU, "counter", nil, "Process CPU: fallback for " + MetricContainerCPU + "."},
	{MetricProcessResident, "gauge", nil, "Process resident memory: fallback for " + MetricContainerMemory + "."},
}

// EnvSetting is one sidecar environment variable.
type EnvSetting struct {
	Name    string
	Meaning string
	Default string // the literal default value; "" when there is none
	// NoDefault says what happens when the variable is unset and there is no
	// literal default ("" means the value is empty).
	NoDefault string
}

// EnvSettings are the sidecar's environment variables (read when it runs
// without --config), in documentation order.
var EnvSettings = []EnvSetting{
	{EnvLogInclude, "comma-separated globs of log files to tail", "", "the pod's own /var/log/pods directory"},
	{EnvRevision, "the revision", "", "the image tag of " + EnvPodImage},
	{EnvLokiURL, "Loki push URL (…/loki/api/v1/push)", "", "unset: enriched NDJSON under " + EnvStateDir + "/out"},
	{EnvTracesURL, "OTLP/HTTP endpoint of Tempo or any OTLP backend", "", "unset: OTLP JSON files under " + EnvStateDir + "/out"},
	{EnvOTLPGRPCAddr, "where the operator sends OTLP/gRPC", DefaultOTLPGRPCAddr, ""},
	{EnvOTLPHTTPAddr, "where the operator sends OTLP/HTTP", DefaultOTLPHTTPAddr, ""},
	{EnvMetricsAddr, "OpenMetrics endpoint (/metrics)", DefaultMetricsAddr, ""},
	{EnvStateDir, "checkpoints, persistent queues, embedded-default output", DefaultStateDir, ""},
	{EnvStateLimitBytes, "size limit of the state directory's volume, in bytes; every on-disk budget derives from it", "", "set by the webhook from stateSizeLimit"},
	{EnvQueueBytes, "bound of the persistent sending queues together, in bytes; full = stop reading; set, it also puts the Loki queue on disk in file mode", "", "their share of the state volume's budget"},
	{EnvServiceName, "the service name", "", "derived by the webhook (see CONVENTIONS.md, Service identity)"},
	{EnvLogSource, "`file` (the pod's log files, hostPath) or `api` (pods/log through the API server)", "file", ""},
	{EnvServiceAccountDir, "`token` and `ca.crt` for " + EnvLogSource + "=api", "/var/run/secrets/kubernetes.io/serviceaccount", ""},
	{EnvPodImage, "the operator's image; its tag is the default revision", "", "set by the webhook"},
	{EnvCluster, "cluster name (Loki label cluster)", "", ""},
	{EnvZone, "availability zone (structured metadata zone)", "", ""},
	{EnvNodePool, "node pool", "", ""},
	{EnvPodName, "pod name (downward API)", "", ""},
	{EnvPodNamespace, "pod namespace (downward API)", "", ""},
	{EnvPodUID, "pod UID (downward API)", "", ""},
	{EnvNodeName, "node name (downward API)", "", ""},
	{EnvContainer, "the operator's container name", "", "set by the webhook"},
}

// Verdict is one release gate verdict with its exit code.
type Verdict struct {
	Name     string
	ExitCode int
	Meaning  string
}

// Verdicts are the release gate's verdicts, per comparison and overall.
var Verdicts = []Verdict{
	{VerdictPass, ExitPass, "no comparison regressed beyond the threshold with confidence"},
	{VerdictFail, ExitFail, "at least one comparison regressed beyond the threshold with confidence"},
	{VerdictInconclusive, ExitInconclusive, "the data cannot tell (too few samples or an interval spanning the threshold)"},
}

// ExitErrorMeaning describes ExitError (3 or more).
const ExitErrorMeaning = "an error: bad input, unreadable source, bad flags"

// Dashboards lists the dashboard UIDs with their titles (dashboards_test.go
// checks the generated JSON carries them).
var Dashboards = []struct{ UID, Title string }{
	{DashboardGoldenSignals, "Operator golden signals"},
	{DashboardReleaseComparison, "Operator release comparison"},
	{DashboardSidecarHealth, "opsight sidecar health"},
}
