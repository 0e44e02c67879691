package conventions

// Operator metrics the dashboards and alert rules read (controller-runtime /
// client-go, CONVENTIONS.md). They are not opsight's: they are named once here
// so the dashboards, the alert rules and the docs agree.
const (
	MetricReconcileTotal    = "controller_runtime_reconcile_total" // controller, result
	MetricReconcileErrors   = "controller_runtime_reconcile_errors_total"
	MetricReconcileTime     = "controller_runtime_reconcile_time_seconds"
	MetricActiveWorkers     = "controller_runtime_active_workers"
	MetricMaxWorkers        = "controller_runtime_max_concurrent_reconciles"
	MetricWorkqueueDepth    = "workqueue_depth"
	MetricWorkqueueQueueDur = "workqueue_queue_duration_seconds"
	MetricWorkqueueWorkDur  = "workqueue_work_duration_seconds"
	MetricWorkqueueRetries  = "workqueue_retries_total"
	MetricRESTRequests      = "rest_client_requests_total"           // code, method, host
	MetricRESTDuration      = "rest_client_request_duration_seconds" // opt-in in client-go: always behind a fallback
	MetricLeaderElection    = "leader_election_master_status"
	MetricContainerCPU      = "container_cpu_usage_seconds_total"  // cAdvisor; absent outside Kubernetes
	MetricContainerMemory   = "container_memory_working_set_bytes" // cAdvisor; absent outside Kubernetes
	MetricProcessCPU        = "process_cpu_seconds_total"          // fallback for MetricContainerCPU
	MetricProcessResident   = "process_resident_memory_bytes"      // fallback for MetricContainerMemory
)

// ReconcileLatencySLOSeconds is the reconcile latency SLO: a classic bucket
// bound (le label value, in seconds) of the reconcile histograms, shared by
// the dashboards' thresholds and the SLO alert rules.
const ReconcileLatencySLOSeconds = "0.5"

// ReconcileSpanNameRegex selects the spans that stand for one reconcile
// (case-insensitive RE2, as PromQL and TraceQL read it). controller-runtime
// tracing and opsight's instrument helper name them "Reconcile" /
// "reconcile <controller>".
const ReconcileSpanNameRegex = "(?i).*reconcile.*"

// Grafana dashboard UIDs. Alert annotations (dashboard_url) and
// cross-dashboard links use them: never change one silently.
const (
	DashboardGoldenSignals     = "opsight-golden-signals"
	DashboardReleaseComparison = "opsight-release-comparison"
	DashboardSidecarHealth     = "opsight-sidecar-health"
)
