package conventions

// Resource attributes the sidecar sets on logs and spans (OTel semantic
// conventions where one exists).
const (
	AttrServiceName     = "service.name"
	AttrServiceVersion  = "service.version" // the revision
	AttrOriginalVersion = "opsight.original_version"
	// AttrOriginalServiceName keeps a span's own service.name when it
	// differed from the pod's service identity.
	AttrOriginalServiceName = "opsight.original_service_name"
	AttrCluster             = "k8s.cluster.name"
	AttrNamespace           = "k8s.namespace.name"
	AttrPod                 = "k8s.pod.name"
	AttrContainer           = "k8s.container.name"
	AttrNode                = "k8s.node.name"
	AttrZone                = "cloud.availability_zone"
	AttrNodePool            = "k8s.node_pool.name"
	AttrLogFilePath         = "log.file.path"
	AttrLogIOStream         = "log.iostream"
	AttrPodUID              = "k8s.pod.uid"
	AttrReconcileIDSpan     = "reconcile.id" // default span attribute carrying the correlation key
	AttrControllerSpan      = "controller"
)

// Log record attributes set by the enrichment processor. They become Loki
// structured metadata under the same names.
const (
	LogTraceID     = "trace_id"
	LogSpanID      = "span_id"
	LogLevel       = "level"
	LogController  = "controller"
	LogReconcileID = "reconcile_id"
	LogRisk        = "risk"
	LogCorrelation = "correlation"
	LogObjectNS    = "k8s.object.namespace"
	LogObjectName  = "k8s.object.name"
	LogParseError  = "opsight.parse_error" // reason a line could not be parsed as JSON; absent when it could
	LogTruncated   = "opsight.truncated"   // set when the line exceeded max_line_size

	// ParseErrorBadFraming: the receiver could not read a CRI/docker frame.
	ParseErrorBadFraming = "bad_framing"
)

// Correlation kinds: how a log line got its trace context.
const (
	CorrelationField = "field"
	CorrelationJoin  = "join"
	CorrelationNone  = "none" // metric label only; never written on a record
)

// Default correlation key: controller-runtime's log field and the span attribute.
const (
	DefaultLogCorrelationKey  = "reconcileID"
	DefaultSpanCorrelationKey = AttrReconcileIDSpan
)

// Loki stream labels (index, low cardinality) and structured metadata keys.
const (
	LabelCluster     = "cluster"
	LabelNamespace   = "namespace"
	LabelPod         = "pod"
	LabelContainer   = "container"
	LabelServiceName = "service_name"
	LabelRevision    = "revision"

	MetaNode = "node"
	MetaZone = "zone"
)

// LokiLabels maps each Loki stream label to the resource attribute it comes from.
var LokiLabels = []struct{ Label, Resource string }{
	{LabelCluster, AttrCluster},
	{LabelNamespace, AttrNamespace},
	{LabelPod, AttrPod},
	{LabelContainer, AttrContainer},
	{LabelServiceName, AttrServiceName},
	{LabelRevision, AttrServiceVersion},
}

// LokiStructuredMetadata lists the structured metadata keys, in output order:
// log record attributes first, then the two resource attributes node and zone.
var LokiStructuredMetadata = []struct{ Key, LogAttr, Resource string }{
	{LogTraceID, LogTraceID, ""},
	{LogSpanID, LogSpanID, ""},
	{LogLevel, LogLevel, ""},
	{LogController, LogController, ""},
	{LogReconcileID, LogReconcileID, ""},
	{LogRisk, LogRisk, ""},
	{LogCorrelation, LogCorrelation, ""},
	{MetaNode, "", AttrNode},
	{MetaZone, "", AttrZone},
}

// ForbiddenLokiLabels may never be stream labels: unbounded cardinality.
var ForbiddenLokiLabels = []string{LogTraceID, LogSpanID, LogReconcileID}

// Span-derived metrics (OTel spanmetrics connector names).
const (
	MetricSpanDuration = "traces_span_metrics_duration_seconds"
	MetricSpanCalls    = "traces_span_metrics_calls_total"
)

// SpanKindNames are the span_kind label values, as the OTel spanmetrics
// connector writes them (the protobuf enum names), indexed by the OTLP enum
// value (ptrace.SpanKind).
var SpanKindNames = []string{"SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER", "SPAN_KIND_CLIENT", "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER"}

// SpanKindName is the span_kind label value of an OTLP span kind; unknown
// values are unspecified.
func SpanKindName(kind int32) string {
	if kind < 0 || int(kind) >= len(SpanKindNames) {
		return SpanKindNames[0]
	}
	return SpanKindNames[kind]
}

// SpanMetricLabels are the labels of the span-derived metrics, in order.
var SpanMetricLabels = []string{"service_name", "span_name", "span_kind", "status_code", "revision", "namespace", "cluster"}

// The sidecar's own metrics.
const (
	MetricLogRecords     = "opsight_log_records_total"      // level, revision
	MetricLogRisk        = "opsight_log_risk_total"         // pattern, revision
	MetricLogCorrelated  = "opsight_log_correlated_total"   // correlation
	MetricLogParseErrors = "opsight_log_parse_errors_total" // reason
	MetricTailLagBytes   = "opsight_tail_lag_bytes"         // file
	MetricTailRotations  = "opsight_tail_rotations_total"
	MetricExportSent     = "opsight_export_sent_total"    // exporter
	MetricExportFailed   = "opsight_export_failed_total"  // exporter, reason
	MetricExportQueue    = "opsight_export_queue_size"    // exporter
	MetricExportDropped  = "opsight_export_dropped_total" // exporter, reason
	// MetricExportRefused counts entries the backend refused (Loki's partial
	// 400), by the backend's reason; each is then re-sent or dead-lettered.
	MetricExportRefused = "opsight_export_refused_total" // exporter, reason
	// MetricExportAdjusted counts entries changed so the backend accepts
	// them: restamped, split, label_truncated, metadata_truncated.
	MetricExportAdjusted = "opsight_export_adjusted_total" // exporter, adjustment
	// MetricExportDeadLetter counts entries written to the dead-letter file
	// under the state directory: refused and not fixable, never dropped.
	MetricExportDeadLetter = "opsight_export_dead_letter_total" // exporter, reason
	// MetricSpanServiceMismatch counts spans that arrived with another
	// service.name than the pod's service identity.
	MetricSpanServiceMismatch = "opsight_span_service_mismatch_total" // span_service

	MetricSamplingDecisions = "opsight_sampling_decisions_total" // key, decision
	MetricSamplingRate      = "opsight_sampling_rate"            // key
)

// Release gate verdicts and exit codes.
const (
	VerdictPass         = "pass"
	VerdictFail         = "fail"
	VerdictInconclusive = "inconclusive"

	ExitPass         = 0
	ExitFail         = 1
	ExitInconclusive = 2
	ExitError        = 3
)

// Sidecar environment settings (used when run without --config).
const (
	EnvLogInclude   = "OPSIGHT_LOG_INCLUDE"
	EnvRevision     = "OPSIGHT_REVISION"
	EnvLokiURL      = "OPSIGHT_LOKI_URL"
	EnvTracesURL    = "OPSIGHT_TRACES_URL"
	EnvOTLPGRPCAddr = "OPSIGHT_OTLP_GRPC_ADDR"
	EnvOTLPHTTPAddr = "OPSIGHT_OTLP_HTTP_ADDR"
	EnvMetricsAddr  = "OPSIGHT_METRICS_ADDR"
	EnvStateDir     = "OPSIGHT_STATE_DIR"
	EnvCluster      = "OPSIGHT_CLUSTER"
	EnvPodName      = "POD_NAME"
	EnvPodNamespace = "POD_NAMESPACE"
	EnvNodeName     = "NODE_NAME"
	EnvContainer    = "CONTAINER_NAME"
	EnvZone         = "OPSIGHT_ZONE"
	EnvNodePool     = "OPSIGHT_NODE_POOL"
	EnvServiceName  = "OPSIGHT_SERVICE_NAME"
	EnvPodImage     = "OPSIGHT_POD_IMAGE" // the operator's image; its tag is the default revision
	EnvPodUID       = "POD_UID"
	EnvLogSource    = "OPSIGHT_LOG_SOURCE"  // file (tail the hostPath) or api (stream pods/log)
	EnvQueueBytes   = "OPSIGHT_QUEUE_BYTES" // bound of the persistent sending queues (default: 25% of free disk, ≤ 1 GiB)
	// EnvStateLimitBytes is the size limit of the state directory's volume
	// (the webhook passes its emptyDir sizeLimit); every on-disk budget
	// derives from it.
	EnvStateLimitBytes = "OPSIGHT_STATE_LIMIT_BYTES"
	// EnvServiceAccountDir holds token and ca.crt for OPSIGHT_LOG_SOURCE=api
	// (default: the pod's /var/run/secrets/kubernetes.io/serviceaccount).
	EnvServiceAccountDir = "OPSIGHT_SERVICE_ACCOUNT_DIR"

	// SidecarContainer is the injected container's name; its logs are never tailed.
	SidecarContainer = "opsight-sidecar"

	DefaultOTLPGRPCAddr = "127.0.0.1:4317"
	DefaultOTLPHTTPAddr = "127.0.0.1:4318"
	DefaultMetricsAddr  = ":9464"
	DefaultStateDir     = "/var/lib/opsight"
)
