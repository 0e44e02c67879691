// Package redmetricsexporter derives golden-signal RED metrics (rate, errors,
// duration) from spans and records them into the sidecar's one Prometheus
// registry, with trace_id/span_id exemplars on every observation.
package redmetricsexporter

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"

	"github.com/opsight/opsight/internal/selftelemetry"
)

const typeStr = "redmetrics"

// Type is the component type ("redmetrics").
var Type = component.MustNewType(typeStr)

// NewFactory returns the factory; exporters record into selftelemetry.Default().
func NewFactory() exporter.Factory { return newFactory(nil) }

// newFactory lets tests inject their own registry (nil: the process default).
func newFactory(m *selftelemetry.Metrics) exporter.Factory {
	return exporter.NewFactory(Type, createDefaultConfig,
		exporter.WithTraces(func(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Traces, error) {
			return createTraces(ctx, set, cfg, m)
		}, component.StabilityLevelAlpha))
}

func createDefaultConfig() component.Config {
	return &Config{DimensionsCacheSize: DefaultDimensionsCacheSize}
}

func createTraces(ctx context.Context, set exporter.Settings, cfg component.Config, m *selftelemetry.Metrics) (exporter.Traces, error) {
	if m == nil {
		m = selftelemetry.Default()
	}
	r := newRecorder(cfg.(*Config), m, set.Logger)
	// No queue or retry: recording into in-memory metrics cannot fail
	// transiently, so the helper only adds the collector's own obsreport.
	return exporterhelper.NewTraces(ctx, set, cfg, r.consumeTraces,
		exporterhelper.WithCapabilities(consumer.Capabilities{MutatesData: false}))
}
