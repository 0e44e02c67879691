// Package opsightmetricsextension serves the sidecar's one Prometheus
// registry (internal/selftelemetry) as OpenMetrics with exemplars, or as
// protobuf with native histograms when the scraper asks for it, plus a
// liveness endpoint.
package opsightmetricsextension

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"

	"github.com/opsight/opsight/internal/selftelemetry"
)

const typeStr = "opsightmetrics"

// Type is the component type ("opsightmetrics").
var Type = component.MustNewType(typeStr)

// NewFactory returns the factory; the extension serves selftelemetry.Default().
func NewFactory() extension.Factory { return newFactory(nil) }

// newFactory lets tests inject their own registry (nil: the process default).
func newFactory(m *selftelemetry.Metrics) extension.Factory {
	return extension.NewFactory(Type,
		func() component.Config { return createDefaultConfig() },
		func(_ context.Context, set extension.Settings, cfg component.Config) (extension.Extension, error) {
			if m == nil {
				m = selftelemetry.Default()
			}
			return newServer(cfg.(*Config), set.TelemetrySettings, m), nil
		},
		component.StabilityLevelAlpha)
}
