package source

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opsight/opsight/internal/selftelemetry"
	"github.com/opsight/opsight/internal/testservers"
	"github.com/opsight/opsight/releasegate/stats"
)

// TestPrometheusRealServer feeds a real Prometheus from the sidecar's own
// metrics registry (selftelemetry: spanmetrics names, classic + native
// buckets), scraped every second by two jobs: one takes native histograms,
// the other classic buckets only. The source then reads both revisions back.
func TestPrometheusRealServer(t *testing.T) {
	m := selftelemetry.New()
	target := httptest.NewServer(m.Handler())
	defer target.Close()
	addr := strings.TrimPrefix(target.URL, "http://")

	labels := func(rev, status string) []string {
		// conventions.SpanMetricLabels order: service_name, span_name, span_kind, status_code, revision, namespace, cluster
		return []string{"etcd-operator", "Reconcile", "SPAN_KIND_SERVER", status, rev, "prod", "c1"}
	}
	// Series exist (at zero) before the window starts, so increase() sees the whole rise.
	for _, rev := range []string{"v1.4.0", "v1.5.0"} {
		for _, st := range []string{"STATUS_CODE_UNSET", "STATUS_CODE_ERROR"} {
			m.SpanDuration.WithLabelValues(labels(rev, st)...)
			m.SpanCalls.WithLabelValues(labels(rev, st)...).Add(0)
		}
	}
	cfg := fmt.Sprintf(`
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: native
    scrape_interval: 1s
    scrape_protocols: [PrometheusProto, OpenMetricsText1.0.0]
    scrape_native_histograms: true
    always_scrape_classic_histograms: true
    static_configs: [{targets: [%q]}]
  - job_name: classic
    scrape_interval: 1s
    scrape_protocols: [OpenMetricsText1.0.0]
    scrape_native_histograms: false
    static_configs: [{targets: [%q]}]
`, addr, addr)
	prom := testservers.StartPrometheus(t, cfg)
	src := &Prometheus{URL: prom.URL}
	waitScrapes := func(n int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			r, err := src.query(context.Background(), `min(count_over_time(up[10m]))`, time.Now())
			if err == nil && len(r.Data.Result) == 1 {
				if v, _ := r.Data.Result[0].Float(); int(v) >= n {
					return
				}
			}
			time.Sleep(250 * time.Millisecond)
		}
		t.Fatalf("prometheus did not scrape %d times:\n%s", n, prom.Logs())
	}
	waitScrapes(2)
	start := time.Now().Add(-1500 * time.Millisecond)

	// Baseline lognormal (median 50 ms); the candidate's slowest 5% take 3x longer.
	r := rand.New(rand.NewPCG(11, 12))
	const n = 3000
	truth := map[string][]float64{}
	errs := map[string]int{}
	for _, rev := range []string{"v1.4.0", "v1.5.0"} {
		for i := 0; i < n; i++ {
			d := 0.05 * math.Exp(0.5*r.NormFloat64())
			if rev == "v1.5.0" && r.Float64() < 0.05 {
				d *= 3
			}
			st := "STATUS_CODE_UNSET"
			if r.Float64() < map[string]float64{"v1.4.0": 0.02, "v1.5.0": 0.10}[rev] {
				st = "STATUS_CODE_ERROR"
				errs[rev]++
			}
			m.SpanDuration.WithLabelValues(labels(rev, st)...).Observe(d)
			m.SpanCalls.WithLabelValues(labels(rev, st)...).Inc()
			truth[rev] = append(truth[rev], d)
		}
		slices.Sort(truth[rev])
	}
	// Let a few scrapes see the totals, then close the window.
	time.Sleep(4 * time.Second)
	end := time.Now()
	win := Window{Start: start, End: end}
	q := Query{Service: "etcd-operator", SpanNames: []string{"Reconcile"}, SpanKind: "SPAN_KIND_SERVER",
		Baseline: Revision{Name: "v1.4.0", Window: win}, Candidate: Revision{Name: "v1.5.0", Window: win}}

	for _, job := range []string{"native", "classic"} {
		t.Run(job, func(t *testing.T) {
			src := &Prometheus{URL: prom.URL, Matchers: fmt.Sprintf(`job=%q`, job)}
			res, err := src.Fetch(context.Background(), q)
			if err != nil {
				t.Fatalf("%v\n%s", err, prom.Logs())
			}
			if len(res.Ops) != 1 {
				t.Fatalf("ops %+v", res.Ops)
			}
			op := res.Ops[0]
			for _, c := range []struct {
				rev  string
				side Side
			}{{"v1.4.0", op.Baseline}, {"v1.5.0", op.Candidate}} {
				// increase() extrapolates towards the window's edges, by up to a
				// scrape interval (1 s here) on a window of a few seconds.
				if c.side.Count < n*0.95 || c.side.Count > n*1.3 {
					t.Errorf("%s: count %v, observed %d", c.rev, c.side.Count, n)
				}
				if c.side.Hist == nil || c.side.Hist.Exponential != (job == "native") {
					t.Fatalf("%s: histogram %+v, want exponential=%v", c.rev, c.side.Hist, job == "native")
				}
				if !c.side.ErrorsKnown {
					t.Errorf("%s: error counts missing", c.rev)
				}
				share, want := c.side.Errors/c.side.Count, float64(errs[c.rev])/n
				if math.Abs(share-want) > 0.005 {
					t.Errorf("%s: error share %.4f, observed %.4f", c.rev, share, want)
				}
				for _, p := range []float64{0.5, 0.9, 0.99} {
					got := c.side.Hist.Quantile(p)
					exact := stats.Type7(truth[c.rev], p)
					lo, hi := c.side.Hist.Bounds(p, 0.025)
					res := c.side.Hist.Resolution(p)
					t.Logf("%s %s p%g: %.4fs (bucket factor %.3f, bounds %.4f..%.4f), exact %.4fs", job, c.rev, p*100, got, res, lo, hi, exact)
					if got < exact/res || got > exact*res {
						t.Errorf("%s p%g: %v not within bucket factor %.3f of %v", c.rev, p*100, got, res, exact)
					}
					if job == "native" && res > 1.1 {
						t.Errorf("native resolution %v, want the schema-3 factor ~1.09", res)
					}
				}
			}
			// The true p99 rose ~58%: native buckets (factor 1.09) prove it
			// beyond +15%; classic buckets (0.1, 0.25] cannot.
			ratio := stats.NewHistogramRatio(op.Baseline.Hist, op.Candidate.Hist, 0.99, 1.15)
			lo, hi := ratio.Interval(0.05)
			t.Logf("%s p99 ratio %.3f interval [%.3f, %.3f]", job, ratio.Value(), lo, hi)
			if decided := lo > 1.15; decided != (job == "native") {
				t.Errorf("%s: p99 ratio interval [%v, %v] vs 1.15", job, lo, hi)
			}
			switch job {
			case "native":
				if !strings.Contains(strings.Join(res.Notes, " "), "native histograms") {
					t.Errorf("notes %q", res.Notes)
				}
			case "classic":
				if !strings.Contains(strings.Join(res.Notes, " "), "classic buckets only") {
					t.Errorf("notes %q", res.Notes)
				}
			}
		})
	}

	t.Run("errors", func(t *testing.T) {
		// A revision nobody ran is an empty selection, not a pass.
		q2 := q
		q2.Candidate.Name = "v9.9.9"
		if _, err := src.Fetch(context.Background(), q2); err == nil || !strings.Contains(err.Error(), `no spans for candidate revision "v9.9.9"`) {
			t.Errorf("unknown revision: %v", err)
		}
		// Bad PromQL from the user's matchers comes back with Prometheus's message.
		bad := &Prometheus{URL: prom.URL, Matchers: `job=~"(("`}
		if _, err := bad.Fetch(context.Background(), q); err == nil || !strings.Contains(err.Error(), "HTTP 400") {
			t.Errorf("bad matcher: %v", err)
		}
		if _, err := (&Prometheus{URL: "http://127.0.0.1:1"}).Fetch(context.Background(), q); err == nil || !strings.Contains(err.Error(), "prometheus unreachable") {
			t.Errorf("unreachable: %v", err)
		}
	})
}
