package selftelemetry

import (
	"context"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/exporter"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/opsight/opsight/internal/conventions"
)

// WrapExporter returns f with the exporterhelper's own telemetry (sent, send
// failed, queue size, enqueue failed) re-exposed under the opsight_export_*
// names, labelled by the exporter's component id. It works for any exporter
// built on exporterhelper (ours, otlp, otlphttp) without touching its code.
func (m *Metrics) WrapExporter(f exporter.Factory) exporter.Factory {
	withReader := func(set exporter.Settings) exporter.Settings {
		r := sdkmetric.NewManualReader()
		set.TelemetrySettings.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
		m.bridges.add(set.ID.String(), r)
		return set
	}
	wrapped := exporter.NewFactory(f.Type(), f.CreateDefaultConfig,
		exporter.WithTraces(func(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Traces, error) {
			return f.CreateTraces(ctx, withReader(set), cfg)
		}, f.TracesStability()),
		exporter.WithMetrics(func(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Metrics, error) {
			return f.CreateMetrics(ctx, withReader(set), cfg)
		}, f.MetricsStability()),
		exporter.WithLogs(func(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Logs, error) {
			return f.CreateLogs(ctx, withReader(set), cfg)
		}, f.LogsStability()),
	)
	// Keep a deprecated type alias (otlphttp for otlp_http in v0.165) so
	// configurations written with the old name still load.
	if a, ok := f.(interface{ DeprecatedAlias() component.Type }); ok && a.DeprecatedAlias().String() != "" {
		if s, ok := wrapped.(interface{ SetDeprecatedAlias(component.Type) }); ok {
			s.SetDeprecatedAlias(a.DeprecatedAlias())
		}
	}
	return wrapped
}

// bridgeSet is a prometheus.Collector reading every wrapped exporter's
// ManualReader at scrape time.
type bridgeSet struct {
	mu      sync.Mutex
	readers map[string][]*sdkmetric.ManualReader
}

func (b *bridgeSet) add(id string, r *sdkmetric.ManualReader) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.readers == nil {
		b.readers = map[string][]*sdkmetric.ManualReader{}
	}
	b.readers[id] = append(b.readers[id], r)
}

var (
	bridgeSentDesc    = prometheus.NewDesc(conventions.MetricExportSent, "Items (log records, spans) delivered to a backend, by exporter.", []string{"exporter"}, nil)
	bridgeQueueDesc   = prometheus.NewDesc(conventions.MetricExportQueue, "Requests waiting in an exporter's sending queue.", []string{"exporter"}, nil)
	bridgeDroppedDesc = prometheus.NewDesc(conventions.MetricExportDropped, "Items given up on, by exporter and reason (queue_full: refused by a full queue; send_failed: permanent error or retries exhausted). Must stay 0.", []string{"exporter", "reason"}, nil)
)

func (b *bridgeSet) Describe(ch chan<- *prometheus.Desc) {
	ch <- bridgeSentDesc
	ch <- bridgeQueueDesc
	ch <- bridgeDroppedDesc
}
func (b *bridgeSet) Collect(ch chan<- prometheus.Metric) {
	b.mu.Lock()
	snapshot := make(map[string][]*sdkmetric.ManualReader, len(b.readers))
	for id, rs := range b.readers {
		snapshot[id] = rs
	}
	b.mu.Unlock()
	for id, rs := range snapshot {
		var sent, failed, queue, enqFail float64
		for _, r := range rs {
			var rm metricdata.ResourceMetrics
			if err := r.Collect(context.Background(), &rm); err != nil {
				continue
			}
			for _, sm := range rm.ScopeMetrics {
				for _, md := range sm.Metrics {
					v := sumOf(md.Data)
					switch {
					case strings.HasPrefix(md.Name, "otelcol_exporter_sent_"):
						sent += v
					case strings.HasPrefix(md.Name, "otelcol_exporter_send_failed_"):
						failed += v
					case md.Name == "otelcol_exporter_queue_size":
						queue += v
					case strings.HasPrefix(md.Name, "otelcol_exporter_enqueue_failed_"):
						enqFail += v
					}
				}
			}
		}
		ch <- prometheus.MustNewConstMetric(bridgeSentDesc, prometheus.CounterValue, sent, id)
		ch <- prometheus.MustNewConstMetric(bridgeQueueDesc, prometheus.GaugeValue, queue, id)
		ch <- prometheus.MustNewConstMetric(bridgeDroppedDesc, prometheus.CounterValue, enqFail, id, "queue_full")
		ch <- prometheus.MustNewConstMetric(bridgeDroppedDesc, prometheus.CounterValue, failed, id, "send_failed")
	}
}

func sumOf(d metricdata.Aggregation) float64 {
	var v float64
	switch d := d.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			v += float64(p.Value)
		}
	case metricdata.Sum[float64]:
		for _, p := range d.DataPoints {
			v += p.Value
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			v += float64(p.Value)
		}
	case metricdata.Gauge[float64]:
		for _, p := range d.DataPoints {
			v += p.Value
		}
	}
	return v
}
