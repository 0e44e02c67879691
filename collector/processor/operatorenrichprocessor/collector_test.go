package operatorenrichprocessor

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"

	"github.com/opsight/opsight/internal/conventions"
)

// A source receiver and a sink exporter that hand their consumers to the test.
type testPlumbing struct {
	mu        sync.Mutex
	logsIn    consumer.Logs
	tracesIn  consumer.Traces
	logsOut   *consumertest.LogsSink
	tracesOut *consumertest.TracesSink
}

type nopComponent struct {
	component.StartFunc
	component.ShutdownFunc
}

type sinkLogs struct {
	nopComponent
	*consumertest.LogsSink
}

type sinkTraces struct {
	nopComponent
	*consumertest.TracesSink
}

func (p *testPlumbing) factories() (otelcol.Factories, error) {
	type emptyCfg struct{}
	src := receiver.NewFactory(component.MustNewType("testsrc"), func() component.Config { return &emptyCfg{} },
		receiver.WithLogs(func(_ context.Context, _ receiver.Settings, _ component.Config, next consumer.Logs) (receiver.Logs, error) {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.logsIn = next
			return nopComponent{}, nil
		}, component.StabilityLevelAlpha),
		receiver.WithTraces(func(_ context.Context, _ receiver.Settings, _ component.Config, next consumer.Traces) (receiver.Traces, error) {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.tracesIn = next
			return nopComponent{}, nil
		}, component.StabilityLevelAlpha))
	sink := exporter.NewFactory(component.MustNewType("testsink"), func() component.Config { return &emptyCfg{} },
		exporter.WithLogs(func(context.Context, exporter.Settings, component.Config) (exporter.Logs, error) {
			return sinkLogs{LogsSink: p.logsOut}, nil
		}, component.StabilityLevelAlpha),
		exporter.WithTraces(func(context.Context, exporter.Settings, component.Config) (exporter.Traces, error) {
			return sinkTraces{TracesSink: p.tracesOut}, nil
		}, component.StabilityLevelAlpha))
	f := otelcol.Factories{Telemetry: otelconftelemetry.NewFactory()}
	var err error
	if f.Receivers, err = otelcol.MakeFactoryMap(src); err != nil {
		return f, err
	}
	if f.Processors, err = otelcol.MakeFactoryMap[processor.Factory](NewFactory()); err != nil {
		return f, err
	}
	f.Exporters, err = otelcol.MakeFactoryMap(sink)
	return f, err
}

// In a real collector the logs and traces pipelines build separate
// processor instances of one component ID; they must share the index, and
// a log line held before its span must be joined when the span comes
// through the other pipeline.
func TestCollectorPipelinesShareIndex(t *testing.T) {
	p := &testPlumbing{logsOut: new(consumertest.LogsSink), tracesOut: new(consumertest.TracesSink)}
	cfg := `yaml:
receivers: {testsrc: {}}
processors: {operatorenrich: {revision: v7, correlation: {wait: 10s}}}
exporters: {testsink: {}}
service:
  telemetry: {metrics: {level: none}}
  pipelines:
    logs: {receivers: [testsrc], processors: [operatorenrich], exporters: [testsink]}
    traces: {receivers: [testsrc], processors: [operatorenrich], exporters: [testsink]}
`
	col, err := otelcol.NewCollector(otelcol.CollectorSettings{
		BuildInfo:               component.NewDefaultBuildInfo(),
		Factories:               p.factories,
		DisableGracefulShutdown: true,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{ResolverSettings: confmap.ResolverSettings{
			URIs: []string{cfg}, ProviderFactories: []confmap.ProviderFactory{yamlprovider.NewFactory()},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- col.Run(context.Background()) }()
	deadline := time.Now().Add(20 * time.Second)
	for col.GetState() != otelcol.StateRunning {
		if time.Now().After(deadline) {
			t.Fatalf("collector not running: %v", col.GetState())
		}
		select {
		case err := <-runErr:
			t.Fatalf("collector stopped: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	defer func() {
		col.Shutdown()
		if err := <-runErr; err != nil {
			t.Error(err)
		}
	}()
	p.mu.Lock()
	logsIn, tracesIn := p.logsIn, p.tracesIn
	p.mu.Unlock()

	warm, _ := keyedSpans("warm-up")
	if err := tracesIn.ConsumeTraces(context.Background(), warm); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- logsIn.ConsumeLogs(context.Background(), fileLogs(lineFor("late-key", "x"))) }()
	time.Sleep(100 * time.Millisecond) // the line is held by now (or the span below joins it at once)
	td, ids := keyedSpans("late-key")
	if err := tracesIn.ConsumeTraces(context.Background(), td); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("held line not released by its span")
	}
	lds := p.logsOut.AllLogs()
	if len(lds) != 1 {
		t.Fatalf("%d log batches exported", len(lds))
	}
	lr := records(lds[0])[0]
	if got := attr(lr.Attributes(), conventions.LogTraceID); got != ids["late-key"][0] || attr(lr.Attributes(), conventions.LogCorrelation) != "join" {
		t.Errorf("line not joined across pipelines: trace_id %q", got)
	}
	res := p.tracesOut.AllTraces()[0].ResourceSpans().At(0).Resource().Attributes()
	if attr(res, conventions.AttrServiceVersion) != "v7" {
		t.Errorf("span resource service.version %q", attr(res, conventions.AttrServiceVersion))
	}
}
