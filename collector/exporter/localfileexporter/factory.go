// Package localfileexporter writes logs as enriched NDJSON and traces as
// OTLP JSON lines to local files: the sidecar's default when no Loki or
// Tempo is configured.
package localfileexporter

import (
	"context"
	"github.com/opsight/opsight/internal/selftelemetry"
	"github.com/prometheus/client_golang/prometheus"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
)

const typeStr = "localfile"

var (
	componentType = component.MustNewType(typeStr)
	stability     = component.StabilityLevelBeta
)

// NewFactory returns the localfile exporter factory.
func NewFactory() exporter.Factory {
	return exporter.NewFactory(componentType, createDefaultConfig,
		exporter.WithLogs(createLogs, stability),
		exporter.WithTraces(createTraces, stability))
}

func createDefaultConfig() component.Config {
	return &Config{MaxFileBytes: defaultMaxFileBytes, MaxFiles: defaultMaxFiles}
}

// helperOptions: no queue, no retry, no timeout. ConsumeX returns only once
// the batch is written and fsynced, so the receiver may checkpoint after it;
// on error the caller (receiver) retries and nothing is held here.
func helperOptions(w *fileWriter) []exporterhelper.Option {
	return []exporterhelper.Option{
		exporterhelper.WithStart(w.start),
		exporterhelper.WithShutdown(w.shutdown),
		exporterhelper.WithCapabilities(consumer.Capabilities{MutatesData: false}),
		exporterhelper.WithTimeout(exporterhelper.TimeoutConfig{}),
		exporterhelper.WithRetry(configretry.BackOffConfig{Enabled: false}),
		exporterhelper.WithQueue(configoptional.None[exporterhelper.QueueBatchConfig]()),
	}
}

func createLogs(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Logs, error) {
	c := cfg.(*Config)
	w := newFileWriter(c, "logs-", ".ndjson", set.Logger, writeFailures(set))
	le := &logsEncoder{}
	return exporterhelper.NewLogs(ctx, set, cfg, le.consume(w), helperOptions(w)...)
}

func createTraces(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Traces, error) {
	c := cfg.(*Config)
	w := newFileWriter(c, "traces-", ".jsonl", set.Logger, writeFailures(set))
	return exporterhelper.NewTraces(ctx, set, cfg, tracesConsumer(w), helperOptions(w)...)
}

// writeFailures is the exporter's opsight_export_failed_total{reason="write"}
// series, created at zero so alerts on it see the exporter before it fails.
func writeFailures(set exporter.Settings) prometheus.Counter {
	return selftelemetry.Default().ExportFailed.WithLabelValues(set.ID.String(), "write")
}
