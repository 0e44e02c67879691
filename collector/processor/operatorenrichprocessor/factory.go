// Package operatorenrichprocessor enriches a Kubernetes operator's logs and
// spans: one scan of each JSON line for time, level, controller, reconcile
// id, object and trace context; risk patterns in one pass; revision and k8s
// metadata on every resource; and a late join that gives log lines the
// trace of the span with the same reconcile id (README.md).
package operatorenrichprocessor

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processorhelper"
	"go.uber.org/zap"

	"github.com/opsight/opsight/internal/selftelemetry"
)

var componentType = component.MustNewType("operatorenrich")

const stability = component.StabilityLevelAlpha

// enrichFactory holds the per-component-ID shared state, so the logs and
// traces processors of one component ID share one span index.
type enrichFactory struct {
	mu     sync.Mutex
	shared map[component.ID]*shared

	metrics *selftelemetry.Metrics
	getenv  func(string) string
	now     func() time.Time
}

// option configures the factory in tests.
type option func(*enrichFactory)

// withMetrics counts into m instead of selftelemetry.Default().
func withMetrics(m *selftelemetry.Metrics) option { return func(f *enrichFactory) { f.metrics = m } }

// withEnv reads the environment from a map.
func withEnv(env map[string]string) option {
	return func(f *enrichFactory) { f.getenv = func(k string) string { return env[k] } }
}

// NewFactory returns the operatorenrich processor factory.
func NewFactory() processor.Factory { return newFactory() }

func newFactory(opts ...option) processor.Factory {
	return newEnrichFactory(opts...).processorFactory()
}

func newEnrichFactory(opts ...option) *enrichFactory {
	f := &enrichFactory{shared: map[component.ID]*shared{}, getenv: os.Getenv, now: time.Now}
	for _, o := range opts {
		o(f)
	}
	return f
}

func (f *enrichFactory) processorFactory() processor.Factory {
	return processor.NewFactory(componentType,
		func() component.Config { return createDefaultConfig() },
		processor.WithLogs(f.createLogs, stability),
		processor.WithTraces(f.createTraces, stability))
}

// acquire returns the component ID's shared state, creating it on first use.
func (f *enrichFactory) acquire(set processor.Settings, cfg component.Config) (*shared, error) {
	c, ok := cfg.(*Config)
	if !ok {
		return nil, fmt.Errorf("operatorenrich: config is %T, want *Config", cfg)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if sh, ok := f.shared[set.ID]; ok {
		return sh, nil
	}
	m := f.metrics
	if m == nil {
		m = selftelemetry.Default()
	}
	logger := set.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	s := resolveSettings(c, f.getenv, logger)
	e, err := newEnricher(s, c.patterns(), m, f.now)
	if err != nil {
		return nil, fmt.Errorf("operatorenrich: risk patterns: %w", err)
	}
	logger.Info("operatorenrich configured", zap.String("revision", s.revision), zap.String("revision_source", s.revisionSourceLabel),
		zap.String("service_name", s.serviceName), zap.Int("risk_patterns", e.matcher.Len()))
	sh := &shared{e: e, index: newSpanIndex(s.indexSize, s.indexTTL),
		svc: newServiceCheck(s.serviceName, m.SpanServiceMismatch, logger, f.now)}
	f.shared[set.ID] = sh
	return sh, nil
}

var mutates = processorhelper.WithCapabilities(consumer.Capabilities{MutatesData: true})

func (f *enrichFactory) createLogs(ctx context.Context, set processor.Settings, cfg component.Config, next consumer.Logs) (processor.Logs, error) {
	sh, err := f.acquire(set, cfg)
	if err != nil {
		return nil, err
	}
	p := newLogsProcessor(sh)
	l := &lifecycle{f: f, id: set.ID, sh: sh, onStop: p.shutdown}
	return processorhelper.NewLogs(ctx, set, cfg, next, p.processLogs, mutates,
		processorhelper.WithStart(l.start), processorhelper.WithShutdown(l.shutdown))
}

func (f *enrichFactory) createTraces(ctx context.Context, set processor.Settings, cfg component.Config, next consumer.Traces) (processor.Traces, error) {
	sh, err := f.acquire(set, cfg)
	if err != nil {
		return nil, err
	}
	p := &tracesProcessor{sh: sh, e: sh.e}
	l := &lifecycle{f: f, id: set.ID, sh: sh}
	return processorhelper.NewTraces(ctx, set, cfg, next, p.processTraces, mutates,
		processorhelper.WithStart(l.start), processorhelper.WithShutdown(l.shutdown))
}
