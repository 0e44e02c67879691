// Package adaptivesamplingprocessor keeps a consistent baseline fraction of
// traces and raises it to 100% for a key (service, zone, …) while that key's
// recent p99 latency or error ratio breaches a threshold.
package adaptivesamplingprocessor

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processorhelper"

	"github.com/opsight/opsight/internal/selftelemetry"
)

const typeStr = "adaptivesampling"

// Type is the component type ("adaptivesampling").
var Type = component.MustNewType(typeStr)

// NewFactory returns the factory; metrics go to selftelemetry.Default().
func NewFactory() processor.Factory { return newFactory(nil, nil) }

// newFactory lets tests inject a registry and a clock (nil: the defaults).
func newFactory(m *selftelemetry.Metrics, now func() time.Time) processor.Factory {
	return processor.NewFactory(Type,
		func() component.Config { return createDefaultConfig() },
		processor.WithTraces(func(ctx context.Context, set processor.Settings, cfg component.Config, next consumer.Traces) (processor.Traces, error) {
			if m == nil {
				m = selftelemetry.Default()
			}
			s, err := newSampler(cfg.(*Config), m, now)
			if err != nil {
				return nil, err
			}
			return processorhelper.NewTraces(ctx, set, cfg, next, s.processTraces,
				processorhelper.WithCapabilities(consumer.Capabilities{MutatesData: true}))
		}, component.StabilityLevelAlpha))
}
