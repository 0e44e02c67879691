// Package lokiexporter pushes log records to Loki: stream labels and
// structured metadata per internal/conventions, the line is the record Body.
package lokiexporter

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"

	"github.com/opsight/opsight/internal/selftelemetry"
)

const typeStr = "loki"

var (
	componentType = component.MustNewType(typeStr)
	stability     = component.StabilityLevelBeta
)

type options struct {
	metrics *selftelemetry.Metrics
}

// option adjusts the factory; unexported, tests inject their own metrics.
type option func(*options)

func withMetrics(m *selftelemetry.Metrics) option { return func(o *options) { o.metrics = m } }

// NewFactory returns the loki exporter factory, counting into selftelemetry.Default().
func NewFactory() exporter.Factory { return newFactory() }

func newFactory(opts ...option) exporter.Factory {
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	return exporter.NewFactory(componentType, createDefaultConfig,
		exporter.WithLogs(func(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Logs, error) {
			m := o.metrics
			if m == nil {
				m = selftelemetry.Default()
			}
			return createLogs(ctx, set, cfg.(*Config), m)
		}, stability))
}

func createDefaultConfig() component.Config {
	client := confighttp.NewDefaultClientConfig()
	client.Timeout = 30 * time.Second

	q := exporterhelper.NewDefaultQueueConfig()
	// One consumer keeps batches in order per stream across retries; a
	// blocking queue pushes back on the receiver instead of refusing data.
	q.NumConsumers = 1
	q.BlockOnOverflow = true

	retry := configretry.NewDefaultBackOffConfig()
	retry.InitialInterval = time.Second
	// Never give up on a retryable error: dropping is what we promise not to do.
	retry.MaxElapsedTime = 0

	return &Config{
		ClientConfig: client,
		QueueConfig:  configoptional.Some(q),
		RetryConfig:  retry,
		Encoding:     EncodingProtobuf,
		Limits:       defaultLimits(),
		DeadLetter:   DeadLetterConfig{MaxBytes: defaultDeadLetterMaxBytes},
	}
}

func createLogs(ctx context.Context, set exporter.Settings, cfg *Config, m *selftelemetry.Metrics) (exporter.Logs, error) {
	e := newLokiExporter(cfg, set, m)
	return exporterhelper.NewLogs(ctx, set, cfg, e.pushLogs,
		exporterhelper.WithStart(e.start),
		exporterhelper.WithShutdown(e.shutdown),
		exporterhelper.WithCapabilities(consumer.Capabilities{MutatesData: false}),
		// The http.Client timeout bounds each attempt; the helper's own would
		// only duplicate it.
		exporterhelper.WithTimeout(exporterhelper.TimeoutConfig{Timeout: 0}),
		exporterhelper.WithRetry(cfg.RetryConfig),
		exporterhelper.WithQueue(cfg.QueueConfig),
	)
}
