package redmetricsexporter

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/opsight/opsight/collector/extension/opsightmetricsextension"
	"github.com/opsight/opsight/internal/testservers"
)

// TestRealPrometheusScrape has a real Prometheus scrape the extension and
// checks what it stored: exemplars with our ids, native histograms, and the
// classic buckets next to them.
func TestRealPrometheusScrape(t *testing.T) {
	ctx := context.Background()
	addr := freeAddr(t)
	ef := opsightmetricsextension.NewFactory()
	ecfg := ef.CreateDefaultConfig().(*opsightmetricsextension.Config)
	ecfg.NetAddr.Endpoint = addr
	ext, err := ef.Create(ctx, extensiontest.NewNopSettings(ef.Type()), ecfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ext.Start(ctx, componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ext.Shutdown(ctx) })

	xf := NewFactory()
	exp, err := xf.CreateTraces(ctx, exportertest.NewNopSettings(xf.Type()), xf.CreateDefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	tid, sid := ids(42)
	var spans []testSpan
	for i := 0; i < 20; i++ {
		spans = append(spans, testSpan{"PromReconcile", ptrace.SpanKindServer, ptrace.StatusCodeOk, time.Duration(i+1) * 10 * time.Millisecond, tid, sid})
	}
	if err := exp.ConsumeTraces(ctx, makeTraces(withService("prom-test"), spans...)); err != nil {
		t.Fatal(err)
	}

	prom := testservers.StartPrometheus(t, fmt.Sprintf(`
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: sidecar
    scrape_native_histograms: true
    always_scrape_classic_histograms: true
    static_configs: [{targets: [%q]}]
`, addr))

	sel := `{service_name="prom-test",span_name="PromReconcile",revision="v1.2.3",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_OK"}`
	queries := map[string]float64{
		"histogram_count(traces_span_metrics_duration_seconds" + sel + ")":                    20, // native histogram
		"sum(traces_span_metrics_duration_seconds_bucket" + sel[:len(sel)-1] + `,le="+Inf"})`: 20, // classic buckets
		"traces_span_metrics_calls_total" + sel:                                               20,
	}
	deadline := time.Now().Add(30 * time.Second)
	for q, want := range queries {
		var got float64
		var err error
		for {
			got, err = instantQuery(prom.URL, q)
			if (err == nil && got == want) || time.Now().After(deadline) {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if err != nil || got != want {
			t.Errorf("%s = %v (err %v), want %v\nprometheus logs:\n%s", q, got, err, want, prom.Logs())
		}
	}

	ex, err := exemplars(prom.URL, "traces_span_metrics_duration_seconds_bucket"+sel)
	if err != nil {
		t.Fatal(err)
	}
	wantT, wantS := hex.EncodeToString(tid[:]), hex.EncodeToString(sid[:])
	var found bool
	for _, e := range ex {
		found = found || (e["trace_id"] == wantT && e["span_id"] == wantS)
	}
	if !found {
		t.Errorf("Prometheus stored no exemplar with trace_id=%s span_id=%s; got %v", wantT, wantS, ex)
	}
}

func instantQuery(base, q string) (float64, error) {
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string
		Data   struct {
			Result []struct {
				Value [2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, err
	}
	if len(body.Data.Result) != 1 {
		return 0, fmt.Errorf("%d results", len(body.Data.Result))
	}
	s, _ := body.Data.Result[0].Value[1].(string)
	return strconv.ParseFloat(s, 64)
}

// exemplars returns the label sets of the exemplars Prometheus stored for q
// over the last 10 minutes.
func exemplars(base, q string) ([]map[string]string, error) {
	now := time.Now()
	u := fmt.Sprintf("%s/api/v1/query_exemplars?query=%s&start=%d&end=%d", base, url.QueryEscape(q), now.Add(-10*time.Minute).Unix(), now.Add(time.Minute).Unix())
	resp, err := http.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Data []struct {
			Exemplars []struct {
				Labels map[string]string
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	var out []map[string]string
	for _, d := range body.Data {
		for _, e := range d.Exemplars {
			out = append(out, e.Labels)
		}
	}
	return out, nil
}
