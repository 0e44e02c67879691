package operatorlogsreceiver

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"

	"github.com/opsight/opsight/internal/selftelemetry"
)

const (
	typeStr   = "operatorlogs"
	stability = component.StabilityLevelAlpha

	defaultPollInterval    = 200 * time.Millisecond
	defaultMaxLineSize     = 256 << 10 // Loki's default max_line_size
	defaultFingerprintSize = 1 << 10
	defaultMaxBatchLines   = 1000
	defaultMaxBatchBytes   = 1 << 20
)

var componentType = component.MustNewType(typeStr)

// NewFactory returns the operatorlogs receiver factory.
func NewFactory() receiver.Factory {
	return newFactory(factoryOptions{})
}

// factoryOptions are test hooks, deliberately unexported.
type factoryOptions struct {
	metrics *selftelemetry.Metrics
}

func newFactory(o factoryOptions) receiver.Factory {
	return receiver.NewFactory(componentType, createDefaultConfig,
		receiver.WithLogs(func(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Logs) (receiver.Logs, error) {
			m := o.metrics
			if m == nil {
				m = selftelemetry.Default()
			}
			return newReceiver(set, cfg.(*Config), next, m)
		}, stability))
}

func createDefaultConfig() component.Config {
	return &Config{
		Source:          SourceFile,
		API:             APIConfig{TokenFile: DefaultTokenFile, CAFile: DefaultCAFile},
		Format:          FormatAuto,
		StartAt:         StartAtBeginning,
		PollInterval:    defaultPollInterval,
		MaxLineSize:     defaultMaxLineSize,
		LongLines:       LongLinesSplit,
		FingerprintSize: defaultFingerprintSize,
		MaxBatchLines:   defaultMaxBatchLines,
		MaxBatchBytes:   defaultMaxBatchBytes,
		IncludeFilePath: true,
	}
}
