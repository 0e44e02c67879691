package simoperator

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// OperatorMetrics are the controller-runtime, workqueue, client-go and
// leader-election metrics an operator exposes, under their real names. The
// cluster/namespace/pod/revision labels stand for the target labels a
// Kubernetes scrape (PodMonitor relabeling) attaches.
type OperatorMetrics struct {
	Registry *prometheus.Registry

	reconcileTotal, reconcileErrors, retries, restRequests *prometheus.CounterVec
	reconcileTime, queueWait, workDuration                 *prometheus.HistogramVec
	active, maxWorkers, depth, leader                      *prometheus.GaugeVec
}

var targetLabels = []string{"cluster", "namespace", "pod", "revision"}

func (c *Config) labels(controller string) []string {
	return []string{c.Cluster, c.Namespace, c.Pod, c.Revision, controller}
}

// NewOperatorMetrics registers the metrics in a fresh registry.
func NewOperatorMetrics() *OperatorMetrics {
	withCtl := append(append([]string{}, targetLabels...), "controller")
	withName := append(append([]string{}, targetLabels...), "name")
	buckets := []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60}
	m := &OperatorMetrics{Registry: prometheus.NewRegistry()}
	m.reconcileTotal = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "controller_runtime_reconcile_total", Help: "Total number of reconciliations per controller"}, append(append([]string{}, withCtl...), "result"))
	m.reconcileErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "controller_runtime_reconcile_errors_total", Help: "Total number of reconciliation errors per controller"}, withCtl)
	m.reconcileTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "controller_runtime_reconcile_time_seconds", Help: "Length of time per reconciliation per controller", Buckets: buckets}, withCtl)
	m.active = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "controller_runtime_active_workers", Help: "Number of currently used workers per controller"}, withCtl)
	m.maxWorkers = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "controller_runtime_max_concurrent_reconciles", Help: "Maximum number of concurrent reconciles per controller"}, withCtl)
	// workqueue metrics are labelled name (and controller in recent controller-runtime).
	m.depth = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "workqueue_depth", Help: "Current depth of workqueue"}, withCtl)
	m.queueWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "workqueue_queue_duration_seconds", Help: "How long in seconds an item stays in workqueue before being requested", Buckets: prometheus.ExponentialBuckets(10e-9, 10, 12)}, withCtl)
	m.workDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "workqueue_work_duration_seconds", Help: "How long in seconds processing an item from workqueue takes.", Buckets: prometheus.ExponentialBuckets(10e-9, 10, 12)}, withCtl)
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "workqueue_retries_total", Help: "Total number of retries handled by workqueue"}, withCtl)
	m.restRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rest_client_requests_total", Help: "Number of HTTP requests, partitioned by status code, method, and host."}, append(append([]string{}, targetLabels...), "code", "method", "host"))
	m.leader = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "leader_election_master_status", Help: "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease."}, withName)
	m.Registry.MustRegister(m.reconcileTotal, m.reconcileErrors, m.reconcileTime, m.active, m.maxWorkers,
		m.depth, m.queueWait, m.workDuration, m.retries, m.restRequests, m.leader,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics as controller-runtime's /metrics does.
func (m *OperatorMetrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}
