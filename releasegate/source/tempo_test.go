package source

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The recorded Tempo responses (testdata/tempo, copied from
// shared/fixtures/tempo) were taken over this window.
var tempoWindow = Window{Start: time.Unix(1795630492, 0), End: time.Unix(1795630792, 0)}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "tempo", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tempoServer answers like the recorded Tempo: the histogram query with the
// recorded histogram, the count query with the recorded counts, a bad query
// with the recorded 400 text/plain, an unknown service with the recorded
// empty 200. It records the queries it saw.
func tempoServer(t *testing.T) (*httptest.Server, *[]string) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query().Get("q")
		mu.Lock()
		seen = append(seen, r.URL.Path+"?"+r.URL.RawQuery)
		mu.Unlock()
		if r.URL.Path != "/api/metrics/query" {
			http.NotFound(w, r)
			return
		}
		switch {
		case strings.Contains(q, "no-such-service"):
			w.Header().Set("Content-Type", "application/json")
			w.Write(fixture(t, "empty_unknown_service.json"))
		case strings.Contains(q, "syntax-error"):
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusBadRequest)
			w.Write(fixture(t, "error_bad_traceql.json"))
		case strings.Contains(q, "histogram_over_time(duration)"):
			w.Write(fixture(t, "instant_histogram_by_version.json"))
		case strings.Contains(q, "quantile_over_time(duration, 0.5, 0.99)"):
			w.Write(fixture(t, "instant_quantiles_by_version_and_name.json"))
		case strings.Contains(q, "count_over_time()"):
			w.Write(fixture(t, "instant_count_by_version.json"))
		default:
			http.Error(w, "unexpected query "+q, http.StatusBadRequest)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &seen
}

type truthRev struct {
	Spans int     `json:"reconcile_spans"`
	P50   float64 `json:"p50_s"`
	P90   float64 `json:"p90_s"`
	P99   float64 `json:"p99_s"`
}

func TestTempoAgainstTruth(t *testing.T) {
	srv, seen := tempoServer(t)
	q := Query{Service: "etcd-operator", SpanNames: []string{"Reconcile"}, Quantiles: []float64{0.5, 0.99},
		Baseline: Revision{Name: "v1.4.0", Window: tempoWindow}, Candidate: Revision{Name: "v1.5.0", Window: tempoWindow}}
	res, err := (&Tempo{URL: srv.URL, Mode: TempoMetrics}).Fetch(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	// Metrics mode: instant TraceQL metrics over each revision's window, never search.
	for _, s := range *seen {
		if !strings.HasPrefix(s, "/api/metrics/query?") || !strings.Contains(s, "start=1795630492") || !strings.Contains(s, "end=1795630792") {
			t.Errorf("unexpected request %s", s)
		}
	}
	if len(*seen) != 6 {
		t.Errorf("%d requests, want 6 (histogram, quantiles and counts per revision)", len(*seen))
	}
	if len(res.Ops) != 1 {
		t.Fatalf("ops %+v", res.Ops)
	}
	op := res.Ops[0]
	if op.Service != "etcd-operator" || op.Name != "Reconcile" {
		t.Errorf("op named %q %q", op.Service, op.Name)
	}
	var truth map[string]truthRev
	if err := json.Unmarshal(fixture(t, "truth.json"), &truth); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		rev  string
		side Side
	}{{"v1.4.0", op.Baseline}, {"v1.5.0", op.Candidate}} {
		tr := truth[c.rev]
		if int(c.side.Count) != tr.Spans {
			t.Errorf("%s: count %v, truth %d", c.rev, c.side.Count, tr.Spans)
		}
		for _, qt := range []struct {
			p, want float64
		}{{0.5, tr.P50}, {0.9, tr.P90}, {0.99, tr.P99}} {
			got := c.side.Hist.Quantile(qt.p)
			// Power-of-two buckets: the estimate must be within a factor of 2 of the truth.
			if got < qt.want/2 || got > qt.want*2 {
				t.Errorf("%s p%g: %v, truth %v (outside factor 2)", c.rev, qt.p*100, got, qt.want)
			}
			// And the distribution-free bounds at 5% per side must contain the truth.
			lo, hi := c.side.Hist.Bounds(qt.p, 0.05)
			if !(lo <= qt.want && qt.want <= hi) {
				t.Errorf("%s p%g: bounds [%v, %v] miss truth %v", c.rev, qt.p*100, lo, hi, qt.want)
			}
			t.Logf("%s p%g: tempo-derived %.4fs (bounds %.4f..%.4f), truth %.4fs, ratio %.2f", c.rev, qt.p*100, got, lo, hi, qt.want, got/qt.want)
		}
		if c.side.ErrorsKnown {
			t.Errorf("%s: the recorded count response has no status breakdown, errors must be unknown", c.rev)
		}
	}
	// Our log-linear interpolation within the power-of-two buckets reproduces
	// Tempo's own quantile_over_time answer (recorded for Reconcile).
	qr, err := ParseTempoResponse(fixture(t, "instant_quantiles_by_version_and_name.json"))
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, s := range qr.Series {
		if n, _ := s.Label("name"); n != "Reconcile" {
			continue
		}
		v, _ := s.Label("resource.service.version")
		ps, _ := s.Label("p")
		side := op.Baseline
		if v == "v1.5.0" {
			side = op.Candidate
		}
		p := map[string]float64{"0.5": 0.5, "0.99": 0.99}[ps]
		got, want := side.Hist.Quantile(p), *s.Value
		if got/want < 0.999 || got/want > 1.001 {
			t.Errorf("%s p=%s: ours %v, tempo's quantile_over_time %v", v, ps, got, want)
		}
		checked++
	}
	if checked != 4 {
		t.Errorf("compared %d quantiles with Tempo's, want 4", checked)
	}
	// The source hands Tempo's own figures over for the cross-check.
	if got := op.Candidate.Reported[0.99]; got != 0.26611968679916764 {
		t.Errorf("reported candidate p99 %v, want Tempo's 0.26611968679916764", got)
	}
	if len(op.Baseline.Reported) != 2 {
		t.Errorf("reported %v", op.Baseline.Reported)
	}
	if len(res.Notes) == 0 || !strings.Contains(res.Notes[0], "factor of 2") {
		t.Errorf("notes %q must state the factor-2 resolution", res.Notes)
	}
}

func TestTempoErrors(t *testing.T) {
	srv, _ := tempoServer(t)
	tests := []struct {
		name  string
		url   string
		svc   string
		want  string
		empty bool
	}{
		{"400 text/plain is passed on", srv.URL, "syntax-error", "tempo answered HTTP 400", false},
		{"empty 200 is an empty selection", srv.URL, "no-such-service", "no spans for service=no-such-service", true},
		{"unreachable", "http://127.0.0.1:1", "x", "tempo unreachable", false},
		{"no url", "", "x", "--tempo-url is required", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := Query{Service: tc.svc, Baseline: Revision{Name: "v1.4.0", Window: tempoWindow}, Candidate: Revision{Name: "v1.5.0", Window: tempoWindow}}
			_, err := (&Tempo{URL: tc.url, Mode: TempoMetrics}).Fetch(context.Background(), q)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if errors.Is(err, ErrEmpty) != tc.empty {
				t.Errorf("ErrEmpty mismatch: %v", err)
			}
		})
	}
	// The 400's body (Tempo's parse error) reaches the user.
	q := Query{Service: "syntax-error", Baseline: Revision{Name: "a", Window: tempoWindow}, Candidate: Revision{Name: "b", Window: tempoWindow}}
	_, err := (&Tempo{URL: srv.URL, Mode: TempoMetrics}).Fetch(context.Background(), q)
	if err == nil || !strings.Contains(err.Error(), "parse error at line 1, col 40") {
		t.Errorf("400 body lost: %v", err)
	}
}

func TestParseTempoRecorded(t *testing.T) {
	// Every recorded metrics response parses; range samples without a value
	// (no data in that step) count as nothing.
	for _, f := range []string{"range_histogram_by_version.json", "range_quantiles_by_version.json", "range_rate_by_status_version.json",
		"instant_quantiles_by_version_and_name.json", "instant_count_by_version.json", "instant_histogram_by_version.json", "empty_unknown_service.json"} {
		r, err := ParseTempoResponse(fixture(t, f))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if f == "range_histogram_by_version.json" {
			var total float64
			for _, s := range r.Series {
				if v, _ := s.Label("resource.service.version"); v == "v1.4.0" {
					total += s.Total()
				}
			}
			if total != 466 { // 4+84+237+125+15+1: the samples that carry a value
				t.Errorf("range histogram v1.4.0 total %v, want 466", total)
			}
		}
		if f == "instant_quantiles_by_version_and_name.json" {
			p, _ := r.Series[0].Label("p")
			n, _ := r.Series[0].Label("name")
			if p != "0.5" || !strings.HasPrefix(n, "GET ") {
				t.Errorf("labels p=%q name=%q", p, n)
			}
		}
	}
	if _, err := ParseTempoResponse(fixture(t, "error_bad_traceql.json")); err == nil {
		t.Error("text/plain error body parsed as JSON")
	}
}

func TestTempoFilter(t *testing.T) {
	q := Query{Service: `op"x`, SpanNames: []string{"Reconcile", "GET /a"}, SpanKind: "SPAN_KIND_SERVER"}
	got := tempoFilter(q, "v1")
	want := `{resource.service.name="op\"x" && resource.service.version="v1" && (name="Reconcile" || name="GET /a") && kind=server}`
	if got != want {
		t.Errorf("filter\n got %s\nwant %s", got, want)
	}
}

func FuzzParseTempoResponse(f *testing.F) {
	for _, name := range []string{"instant_histogram_by_version.json", "range_quantiles_by_version.json", "empty_unknown_service.json", "error_bad_traceql.json"} {
		f.Add(fixture(f, name))
	}
	f.Add([]byte(`{"series":[{"labels":[{"key":"__bucket","value":{"intValue":"x"}}],"samples":[{"timestampMs":"zz","value":1}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseTempoResponse(body)
		if err != nil {
			return
		}
		// Accepted: every timestamp is empty or an integer.
		for i, s := range r.Series {
			for _, x := range s.Samples {
				if _, err := strconv.ParseInt(x.TimestampMs, 10, 64); x.TimestampMs != "" && err != nil {
					t.Fatalf("series %d: accepted timestampMs %q", i, x.TimestampMs)
				}
			}
		}
		// Round trip: re-encoded, the response decodes to the same totals and
		// the same labels the gate reads.
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("re-encoding: %v", err)
		}
		again, err := ParseTempoResponse(b)
		if err != nil {
			t.Fatalf("re-encoded response rejected: %v\n%s", err, b)
		}
		if len(again.Series) != len(r.Series) {
			t.Fatalf("%d series, %d after the round trip", len(r.Series), len(again.Series))
		}
		for i, s := range r.Series {
			s2 := again.Series[i]
			if t1, t2 := s.Total(), s2.Total(); t1 != t2 && !(math.IsNaN(t1) && math.IsNaN(t2)) {
				t.Errorf("series %d: total %v, %v after the round trip", i, t1, t2)
			}
			for _, l := range s.Labels {
				v1, ok1 := s.Label(l.Key)
				v2, ok2 := s2.Label(l.Key)
				if !ok1 || v1 != v2 || ok1 != ok2 {
					t.Errorf("series %d: label %q = %q (%v), %q (%v) after the round trip", i, l.Key, v1, ok1, v2, ok2)
				}
			}
		}
	})
}
