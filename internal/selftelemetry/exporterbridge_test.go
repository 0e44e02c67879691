package selftelemetry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/exporter/otlphttpexporter"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

func spans(n int) ptrace.Traces {
	td := ptrace.NewTraces()
	ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	for i := 0; i < n; i++ {
		s := ss.AppendEmpty()
		s.SetName("Reconcile")
		s.SetTraceID([16]byte{1, byte(i)})
		s.SetSpanID([8]byte{2, byte(i)})
	}
	return td
}

// The wrapped exporter's own exporterhelper figures appear under the
// opsight_export_* names, per exporter id, and a permanent failure counts as
// dropped.
func TestWrapExporterBridgesHelperTelemetry(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		status                int
		wantSent, wantDropped float64
	}{
		{"delivered", http.StatusOK, 7, 0},
		{"rejected", http.StatusBadRequest, 0, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
			}))
			defer srv.Close()
			m := New()
			f := m.WrapExporter(otlphttpexporter.NewFactory())
			cfg := f.CreateDefaultConfig().(*otlphttpexporter.Config)
			cfg.ClientConfig.Endpoint = srv.URL
			cfg.QueueConfig = configoptional.None[exporterhelper.QueueBatchConfig]()
			cfg.RetryConfig.Enabled = false
			set := exportertest.NewNopSettings(f.Type())
			set.ID = component.MustNewIDWithName(f.Type().String(), "tempo")
			exp, err := f.CreateTraces(context.Background(), set, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := exp.Start(context.Background(), componenttest.NewNopHost()); err != nil {
				t.Fatal(err)
			}
			defer exp.Shutdown(context.Background())
			_ = exp.ConsumeTraces(context.Background(), spans(7))
			id := set.ID.String()
			want := `
# HELP opsight_export_dropped_total Items given up on, by exporter and reason (queue_full: refused by a full queue; send_failed: permanent error or retries exhausted). Must stay 0.
# TYPE opsight_export_dropped_total counter
opsight_export_dropped_total{exporter="` + id + `",reason="queue_full"} 0
opsight_export_dropped_total{exporter="` + id + `",reason="send_failed"} ` + ftoa(tc.wantDropped) + `
# HELP opsight_export_sent_total Items (log records, spans) delivered to a backend, by exporter.
# TYPE opsight_export_sent_total counter
opsight_export_sent_total{exporter="` + id + `"} ` + ftoa(tc.wantSent) + `
`
			if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want), "opsight_export_sent_total", "opsight_export_dropped_total"); err != nil {
				t.Error(err)
			}
		})
	}
}

func ftoa(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// A deprecated type alias of the wrapped factory (otlphttp for otlp_http)
// still resolves, so configurations using the old name load.
func TestWrapExporterKeepsAlias(t *testing.T) {
	f := New().WrapExporter(otlphttpexporter.NewFactory())
	m, err := otelcol.MakeFactoryMap[exporter.Factory](f)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"otlp_http", "otlphttp"} {
		if _, ok := m[component.MustNewType(name)]; !ok {
			t.Errorf("exporter type %q not registered by the wrapped factory (have %v)", name, m)
		}
	}
}
