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
	// A runtime writes whole lines, and splits long ones into pieces written
	// back to back, so a line stays unended only when its writer died or
	// stalled mid-line. 1s (filelog's is 500ms) is five polls at the default
	// poll_interval: a slow write of a split line is not cut in two, and a
	// crashed operator's last line still arrives within about a second.
	defaultForceFlushPeriod = time.Second
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
		Source:           SourceFile,
		API:              APIConfig{TokenFile: DefaultTokenFile, CAFile: DefaultCAFile},
		Format:           FormatAuto,
		StartAt:          StartAtBeginning,
		PollInterval:     defaultPollInterval,
		MaxLineSize:      defaultMaxLineSize,
		LongLines:        LongLinesSplit,
		ForceFlushPeriod: defaultForceFlushPeriod,
		FingerprintSize:  defaultFingerprintSize,
		MaxBatchLines:    defaultMaxBatchLines,
		MaxBatchBytes:    defaultMaxBatchBytes,
		IncludeFilePath:  true,
	}
}
