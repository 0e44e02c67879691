// Package selftelemetry holds the Prometheus registry behind the sidecar's one
// OpenMetrics endpoint: the sidecar's own opsight_* metrics and the
// span-derived RED metrics, declared once here so names cannot drift
// (CONVENTIONS.md).
package selftelemetry

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/opsight/opsight/internal/conventions"
)

// SpanDurationBuckets are classic buckets for sub-second reconciles and API
// calls, alongside the native (exponential) histogram.
var SpanDurationBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// Metrics is every metric the sidecar exposes.
type Metrics struct {
	Registry *prometheus.Registry

	LogRecords     *prometheus.CounterVec // level, revision
	LogRisk        *prometheus.CounterVec // pattern, revision
	LogCorrelated  *prometheus.CounterVec // correlation
	LogParseErrors *prometheus.CounterVec // reason
	TailLagBytes   *prometheus.GaugeVec   // file
	TailRotations  prometheus.Counter

	// ExportFailed counts failed send attempts by reason, for exporters that
	// know the reason (ours). opsight_export_sent_total, _queue_size and
	// _dropped_total come from the exporterhelper of every wrapped exporter
	// (see WrapExporter), so they cannot disagree with what it really did.
	ExportFailed *prometheus.CounterVec // exporter, reason
	// ExportRefused, ExportAdjusted and ExportDeadLetter account for every
	// entry a backend would refuse or did refuse: fixed and re-sent, or kept
	// in the dead-letter file.
	ExportRefused    *prometheus.CounterVec // exporter, reason
	ExportAdjusted   *prometheus.CounterVec // exporter, adjustment
	ExportDeadLetter *prometheus.CounterVec // exporter, reason

	// SpanServiceMismatch counts spans whose service.name differed from the
	// pod's service identity (they are re-labelled, not split).
	SpanServiceMismatch *prometheus.CounterVec // span_service

	SpanDuration *prometheus.HistogramVec // conventions.SpanMetricLabels
	SpanCalls    *prometheus.CounterVec   // conventions.SpanMetricLabels

	bridges bridgeSet
}

// New returns a fresh set registered in its own registry (tests use one each).
func New() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	m.LogRecords = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: conventions.MetricLogRecords, Help: "Log records read from the operator, by level and revision.",
	}, []string{"level", "revision"})
	m.LogRisk = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: conventions.MetricLogRisk, Help: "Log records matching a risk pattern, by pattern id and revision.",
	}, []string{"pattern", "revision"})
	m.LogCorrelated = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: conventions.MetricLogCorrelated, Help: "Log records by how their trace context was found: field, join or none.",
	}, []string{"correlation"})
	m.LogParseErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: conventions.MetricLogParseErrors, Help: "Log records shipped raw because they could not be parsed, by reason.",
	}, []string{"reason"})
	m.TailLagBytes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: conventions.MetricTailLagBytes, Help: "Bytes written to a tailed file but not yet read.",
	}, []string{"file"})
	m.TailRotations = prometheus.NewCounter(prometheus.CounterOpts{
		Name: conventions.MetricTailRotations, Help: "Log file rotations detected (rename, copytruncate, truncation).",
	})
	m.ExportFailed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: conventions.MetricExportFailed, Help: "Failed send attempts, by exporter and reason; retried unless the reason is permanent.",
	}, []string{"exporter", "reason"})
	m.ExportRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: conventions.MetricExportRefused, Help: "Entries the backend refused, by exporter and the backend's reason; each is re-sent fixed or dead-lettered.",
	}, eventLabels[conventions.MetricExportRefused])
	m.ExportAdjusted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: conventions.MetricExportAdjusted, Help: "Entries changed so the backend accepts them, by exporter and adjustment.",
	}, eventLabels[conventions.MetricExportAdjusted])
	m.ExportDeadLetter = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: conventions.MetricExportDeadLetter, Help: "Entries written to the dead-letter file (refused and not fixable), by exporter and reason.",
	}, eventLabels[conventions.MetricExportDeadLetter])
	m.SpanServiceMismatch = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: conventions.MetricSpanServiceMismatch, Help: "Spans that arrived with another service.name than the pod's service identity, by that name.",
	}, eventLabels[conventions.MetricSpanServiceMismatch])
	m.SpanDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:                            conventions.MetricSpanDuration,
		Help:                            "Span durations, from the operator's spans.",
		Buckets:                         SpanDurationBuckets,
		NativeHistogramBucketFactor:     1.1,
		NativeHistogramMaxBucketNumber:  160,
		NativeHistogramMinResetDuration: time.Hour,
	}, conventions.SpanMetricLabels)
	m.SpanCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: conventions.MetricSpanCalls, Help: "Spans seen, by name, kind and status.",
	}, conventions.SpanMetricLabels)

	m.Registry.MustRegister(m.LogRecords, m.LogRisk, m.LogCorrelated, m.LogParseErrors,
		m.TailLagBytes, m.TailRotations, m.ExportFailed, m.ExportRefused, m.ExportAdjusted, m.ExportDeadLetter,
		m.SpanServiceMismatch, m.SpanDuration, m.SpanCalls, &m.bridges,
		// memstats are off: go_memstats_alloc_bytes (gauge) and _alloc_bytes_total
		// (counter) are one family in OpenMetrics, and strict parsers reject both.
		collectors.NewGoCollector(collectors.WithGoCollectorMemStatsMetricsDisabled()), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// eventLabels are the label names of the counters whose series appear only
// when their event happens (a refusal, a dead letter, a renamed span), so a
// scrape of a healthy sidecar cannot show them; rule checks read them here.
var eventLabels = map[string][]string{
	conventions.MetricExportRefused:       {"exporter", "reason"},
	conventions.MetricExportAdjusted:      {"exporter", "adjustment"},
	conventions.MetricExportDeadLetter:    {"exporter", "reason"},
	conventions.MetricSpanServiceMismatch: {"span_service"},
}

// EventLabels returns the label names of an event-only counter.
func EventLabels(name string) ([]string, bool) {
	l, ok := eventLabels[name]
	return l, ok
}

var (
	defaultOnce sync.Once
	defaultSet  *Metrics
)

// Default is the process-wide set the sidecar serves. Component factories use
// it unless given another (tests).
func Default() *Metrics {
	defaultOnce.Do(func() { defaultSet = New() })
	return defaultSet
}

// Handler serves the registry as OpenMetrics (so exemplars are scraped) or,
// when the scraper asks for it, protobuf (so native histograms are scraped).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{EnableOpenMetrics: true, Registry: m.Registry})
}
