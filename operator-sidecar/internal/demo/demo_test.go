package demo

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/otelcol"

	"github.com/opsight/opsight/collector"
	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/testservers"
)

// TestDemo runs the whole demo briefly: the in-process sidecar must deliver
// every line the simulated operators wrote, join most keyed lines to spans,
// write every span, and drop nothing.
func TestDemo(t *testing.T) {
	set := otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{Command: "operator-sidecar", Version: "test"},
		Factories: collector.Components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{ResolverSettings: confmap.ResolverSettings{
			ProviderFactories: []confmap.ProviderFactory{yamlprovider.NewFactory()},
		}},
	}
	var out bytes.Buffer
	s, err := Run(context.Background(), set, Options{
		Duration: 8 * time.Second, Dir: t.TempDir(), Rate: 30, Quiet: true,
		MetricsAddr: testservers.FreeAddr(t), OperatorMetricsAddr: testservers.FreeAddr(t),
	}, &out)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	t.Log("\n" + out.String())
	if s.LinesWritten < 1000 {
		t.Fatalf("the simulated operators wrote only %d lines", s.LinesWritten)
	}
	if s.RecordsOut != s.LinesWritten {
		t.Errorf("records written %d, lines written %d: every line must arrive exactly once", s.RecordsOut, s.LinesWritten)
	}
	if int64(s.RecordsRead) != s.LinesWritten {
		t.Errorf("opsight_log_records_total = %.0f, lines written %d", s.RecordsRead, s.LinesWritten)
	}
	if s.SpansSent == 0 || s.SpansOut != s.SpansSent {
		t.Errorf("spans sent %d, written %d", s.SpansSent, s.SpansOut)
	}
	if s.Dropped != 0 {
		t.Errorf("%s = %.0f, want 0", conventions.MetricExportDropped, s.Dropped)
	}
	field, join := s.Correlation[conventions.CorrelationField], s.Correlation[conventions.CorrelationJoin]
	if field == 0 || join == 0 {
		t.Errorf("correlation field=%.0f join=%.0f: both kinds must occur", field, join)
	}
	// Keyed lines are the reconcile lines; nearly all must end up with a trace id.
	if got, want := field+join, 0.99*float64(s.KeyedLines); got < want {
		t.Errorf("%.0f of %d keyed lines got a trace id, want ≥ 99%%", got, s.KeyedLines)
	}
	for _, id := range []string{"reconciler_error", "client_throttling"} {
		if s.Risk[id] == 0 {
			t.Errorf("risk pattern %s never counted; risk counts: %v", id, s.Risk)
		}
	}
	if !strings.Contains(out.String(), "releasegate") {
		t.Errorf("summary does not show the release gate command:\n%s", out.String())
	}
}
