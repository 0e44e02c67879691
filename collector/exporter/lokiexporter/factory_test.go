package lokiexporter

import (
	"context"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/exporter/exportertest"

	"github.com/opsight/opsight/internal/selftelemetry"
)

func TestFactory(t *testing.T) {
	f := NewFactory()
	if f.Type().String() != "loki" {
		t.Errorf("type %s", f.Type())
	}
	if f.LogsStability() != component.StabilityLevelBeta {
		t.Errorf("logs stability %v", f.LogsStability())
	}
	if _, err := f.CreateTraces(context.Background(), exportertest.NewNopSettings(f.Type()), f.CreateDefaultConfig()); err == nil {
		t.Error("traces accepted; the loki exporter is logs only")
	}
}

// TestDefaultMetrics: without an injected *Metrics, failures are counted
// into selftelemetry.Default(), the registry the sidecar serves.
func TestDefaultMetrics(t *testing.T) {
	srv := newFakeLoki(t)
	srv.respond = func(n int, _ *http.Request) (int, map[string]string, string, time.Duration) {
		if n == 0 {
			return http.StatusTooManyRequests, nil, "slow down", 0
		}
		return http.StatusNoContent, nil, "", 0
	}
	cfg := testConfig(srv.url())
	cfg.QueueConfig = configoptional.None[QueueBatchConfig]()
	set := exportertest.NewNopSettings(componentType) // unique id: isolates this test's series
	exp, err := NewFactory().CreateLogs(context.Background(), set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.Start(context.Background(), testHost{}); err != nil {
		t.Fatal(err)
	}
	var seq [2]int
	if err := exp.ConsumeLogs(context.Background(), testBatch(&seq, 2)); err != nil {
		t.Fatal(err)
	}
	if err := exp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := failed(selftelemetry.Default(), set.ID.String(), reasonHTTP429); n != 1 {
		t.Errorf("Default() http_429 = %v, want 1", n)
	}
}
