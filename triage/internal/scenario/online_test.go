package scenario

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/selftelemetry"
	"github.com/opsight/opsight/internal/testservers"
	"github.com/opsight/opsight/triage/internal/analysis"
	"github.com/opsight/opsight/triage/internal/data"
	"github.com/opsight/opsight/triage/internal/online"
	"github.com/opsight/opsight/triage/internal/render"
)

// backends holds a scenario's output in real and stand-in backends: a real
// Prometheus scraping one OpenMetrics endpoint per pod (the sidecar's own
// registry, selftelemetry.New, fed the pod's spans with exemplars as the
// redmetrics exporter records them, and its log counters), the Tempo
// stand-in, and the strict Loki stand-in (the lines pushed with stream
// labels and structured metadata as the loki exporter sends them).
type backends struct {
	prom, tempo, loki string
	from, to          time.Time
	spans             []data.Span
	logs              []data.Log
}

func serveOnline(t *testing.T, s Scenario) *backends {
	t.Helper()
	testservers.SkipShort(t, "prometheus")
	start := time.Now().Add(-time.Second)
	res, err := Run(context.Background(), s, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tf, _ := data.Glob("--traces", []string{res.TracesGlob})
	lf, _ := data.Glob("--logs", []string{res.LogsGlob})
	b := &backends{from: start}
	if b.spans, err = data.ReadSpans(tf); err != nil {
		t.Fatal(err)
	}
	if b.logs, err = data.ReadLogs(lf); err != nil {
		t.Fatal(err)
	}

	// One sidecar registry per pod, every series created at zero first so
	// increase() counts from the first scrape.
	type pod struct {
		m     *selftelemetry.Metrics
		spans []*data.Span
		logs  []*data.Log
	}
	pods := map[string]*pod{}
	var names []string
	get := func(name string) *pod {
		if pods[name] == nil {
			pods[name] = &pod{m: selftelemetry.New()}
			names = append(names, name)
		}
		return pods[name]
	}
	labels := func(sp *data.Span) []string {
		code := "STATUS_CODE_UNSET"
		if sp.Error {
			code = "STATUS_CODE_ERROR"
		}
		return []string{sp.Res.Service, sp.Name, sp.Kind, code, sp.Res.Revision, sp.Res.Namespace, sp.Res.Cluster}
	}
	for i := range b.spans {
		sp := &b.spans[i]
		p := get(sp.Res.Pod)
		p.spans = append(p.spans, sp)
		p.m.SpanDuration.WithLabelValues(labels(sp)...)
		p.m.SpanCalls.WithLabelValues(labels(sp)...)
	}
	for i := range b.logs {
		l := &b.logs[i]
		p := get(l.Pod)
		p.logs = append(p.logs, l)
		p.m.LogRecords.WithLabelValues(l.Level, l.Revision)
		for _, r := range l.Risk {
			p.m.LogRisk.WithLabelValues(r, l.Revision)
		}
	}
	sort.Strings(names)
	var targets []string
	for _, n := range names {
		srv := httptest.NewServer(pods[n].m.Handler()) // 127.0.0.1
		t.Cleanup(srv.Close)
		targets = append(targets, fmt.Sprintf("      - targets: [%q]\n        labels: {pod: %q, namespace: %q, service_name: %q}\n",
			strings.TrimPrefix(srv.URL, "http://"), n, Namespace, Service))
	}
	prom := testservers.StartPrometheus(t, `global:
  scrape_interval: 1s
  scrape_native_histograms: true
  always_scrape_classic_histograms: true
scrape_configs:
  - job_name: sidecars
    honor_labels: true
    static_configs:
`+strings.Join(targets, ""))
	b.prom = prom.URL
	waitScrapes(t, prom.URL, len(names), 2)

	// Replay: each pod's spans in 8 chunks, one per scrape or so, so the
	// exemplars (the latest per bucket) rotate as they would live.
	const chunks = 8
	for c := 0; c < chunks; c++ {
		for _, n := range names {
			p := pods[n]
			lo, hi := c*len(p.spans)/chunks, (c+1)*len(p.spans)/chunks
			for _, sp := range p.spans[lo:hi] {
				ex := prometheus.Labels{conventions.LogTraceID: sp.Trace.String(), conventions.LogSpanID: sp.ID.String()}
				p.m.SpanDuration.WithLabelValues(labels(sp)...).(prometheus.ExemplarObserver).ObserveWithExemplar(sp.Duration(), ex)
				p.m.SpanCalls.WithLabelValues(labels(sp)...).(prometheus.ExemplarAdder).AddWithExemplar(1, ex)
			}
			lo, hi = c*len(p.logs)/chunks, (c+1)*len(p.logs)/chunks
			for _, l := range p.logs[lo:hi] {
				p.m.LogRecords.WithLabelValues(l.Level, l.Revision).Inc()
				for _, r := range l.Risk {
					p.m.LogRisk.WithLabelValues(r, l.Revision).Inc()
				}
			}
		}
		time.Sleep(1100 * time.Millisecond)
	}
	waitScrapes(t, prom.URL, len(names), 2)
	b.to = time.Now()

	b.tempo = startTempo(t, b.spans).srv.URL
	loki := testservers.StartStrictLoki(t)
	pushLogs(t, loki.PushURL, b.logs)
	b.loki = loki.URL
	return b
}

// waitScrapes waits until every target was scraped n more times.
func waitScrapes(t *testing.T, base string, targets, n int) {
	t.Helper()
	count := func() float64 {
		var sum float64
		r, err := online.Client{URL: base}.Query(context.Background(), `sum(count_over_time(up{job="sidecars"}[10m]))`, time.Now())
		if err == nil {
			for _, s := range r.Data.Result {
				v, _ := s.Float()
				sum += v
			}
		}
		return sum
	}
	want := count() + float64(targets*n)
	deadline := time.Now().Add(60 * time.Second)
	for count() < want {
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus did not scrape the %d targets %d times within 60s", targets, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// pushLogs sends the lines to Loki's push API as JSON: stream labels and
// structured metadata as CONVENTIONS.md splits them.
func pushLogs(t *testing.T, url string, logs []data.Log) {
	t.Helper()
	type stream struct {
		Stream map[string]string `json:"stream"`
		Values [][]any           `json:"values"`
	}
	streams := map[string]*stream{}
	var keys []string
	now := time.Now()
	for _, l := range logs {
		lab := map[string]string{"cluster": l.Cluster, "namespace": l.Namespace, "pod": l.Pod, "container": "manager", "service_name": l.Service, "revision": l.Revision}
		k := fmt.Sprint(lab)
		if streams[k] == nil {
			streams[k] = &stream{Stream: lab}
			keys = append(keys, k)
		}
		md := map[string]string{"level": l.Level, "zone": l.Zone}
		if !l.Trace.IsZero() {
			md["trace_id"] = l.Trace.String()
		}
		if len(l.Risk) > 0 {
			md["risk"] = strings.Join(l.Risk, ",")
		}
		// As the sidecar does: a line without a usable time of its own
		// (a klog header without a year) takes the runtime's, here now.
		ts := l.Time
		if ts.IsZero() || ts.Before(now.Add(-time.Hour)) || ts.After(now) {
			ts = now
		}
		streams[k].Values = append(streams[k].Values, []any{strconv.FormatInt(ts.UnixNano(), 10), l.Line, md})
	}
	for _, k := range keys {
		st := streams[k]
		for lo := 0; lo < len(st.Values); lo += 2000 {
			part := stream{Stream: st.Stream, Values: st.Values[lo:min(lo+2000, len(st.Values))]}
			body, _ := json.Marshal(map[string]any{"streams": []stream{part}})
			resp, err := http.Post(url, "application/json", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				t.Fatalf("loki push: %s: %s", resp.Status, msg)
			}
		}
	}
}

func onlineTriage(t *testing.T, b *backends) *analysis.Report {
	t.Helper()
	r, err := online.Run(context.Background(), online.Sources{Prometheus: b.prom, Tempo: b.tempo, Loki: b.loki},
		analysis.Options{Service: Service, Namespace: Namespace, BaselineRevision: Baseline, CandidateRevision: Candidate,
			From: b.from.Add(-time.Minute), To: b.to})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	render.TextReport(&out, r)
	t.Logf("online report:\n%s", out.String())
	return r
}

func ran(r *analysis.Report, backend, api string) int {
	n := 0
	for _, q := range r.Queries {
		if q.Backend == backend && strings.HasPrefix(q.API, api) {
			n++
		}
	}
	return n
}

// TestOnline runs scenarios into a real Prometheus (sidecar registries with
// exemplars), the Tempo stand-in and the strict Loki stand-in, and checks
// the online report names what the offline one names, from the HTTP APIs.
func TestOnline(t *testing.T) {
	testservers.SkipShort(t, "prometheus")
	t.Run("one candidate pod CPU-throttled", func(t *testing.T) {
		b := serveOnline(t, PodCPUThrottle())
		r := onlineTriage(t, b)
		if len(r.Findings) != 1 {
			t.Fatalf("%d findings, want exactly 1: %v", len(r.Findings), headlines(r))
		}
		f := r.Findings[0]
		if f.Span != "Reconcile" || f.Moves[0].Direction != "up" || f.Moves[0].Measure == "errors" {
			t.Errorf("finding %s %+v, want a Reconcile latency rise", f.Span, f.Moves[0])
		}
		if got := movedValues(split(f, "pod")); len(got) != 1 || got[0] != "etcd-operator-cand-a2" {
			t.Errorf("pods moved %v, want only etcd-operator-cand-a2 (from the span metrics by pod); where %s", got, f.WhereText)
		}
		for _, v := range split(f, "zone").Values {
			if v.Value == "" {
				t.Errorf("a zone left unknown: the pods' zones come from their traces")
			}
		}
		if !r.Candidate.Fetched || r.Candidate.Spans < 2000 || r.Candidate.Traces == 0 {
			t.Errorf("candidate side %+v: want the span metrics' count and some fetched traces", r.Candidate)
		}
		if f.Time == nil || len(f.Time.Parts) == 0 || !f.Time.Parts[0].Self || f.Time.NCandidate < 10 {
			t.Errorf("time %+v: want the reconcile's own time first, from fetched traces", f.Time)
		}
		if f.Logs.Lines == 0 || len(f.Logs.Sample) == 0 {
			t.Errorf("no lines of the finding's traces read from Loki: %+v", f.Logs)
		}
		for _, api := range [][2]string{{"prometheus", "/api/v1/query"}, {"prometheus", "/api/v1/query_exemplars"}, {"tempo", "/api/v2/traces"}, {"loki", "/loki/api/v1/query_range"}} {
			if ran(r, api[0], api[1]) == 0 {
				t.Errorf("no %s %s query ran: %+v", api[0], api[1], r.Queries)
			}
		}
		// Log volume from the sidecar's counters: every line of each side.
		var lines [2]int
		for _, l := range b.logs {
			switch l.Revision {
			case Baseline:
				lines[0]++
			case Candidate:
				lines[1]++
			}
		}
		for sd, got := range []int{r.Logs.BaselineLines, r.Logs.CandidateLines} {
			if math.Abs(float64(got-lines[sd])) > 0.1*float64(lines[sd]) {
				t.Errorf("side %d: %d lines from the counters, the files hold %d", sd, got, lines[sd])
			}
		}
	})
	t.Run("etcd timeout storm in the candidate", func(t *testing.T) {
		r := onlineTriage(t, serveOnline(t, EtcdTimeoutStorm()))
		if len(r.Findings) != 1 {
			t.Fatalf("%d findings, want exactly 1: %v", len(r.Findings), headlines(r))
		}
		f := r.Findings[0]
		if f.Span != "Reconcile" || f.Moves[0].Measure != "errors" || f.Moves[0].Direction != "up" {
			t.Errorf("finding %s %+v, want Reconcile errors up", f.Span, f.Moves[0])
		}
		if f.Cause != "risk pattern etcd_timeout" {
			t.Errorf("cause %q, want risk pattern etcd_timeout (from the failed traces' lines in Loki)", f.Cause)
		}
		if len(r.Logs.Patterns) == 0 || r.Logs.Patterns[0].Pattern != "etcd_timeout" || !r.Logs.Patterns[0].Rose {
			t.Errorf("window-level top pattern %+v, want etcd_timeout, risen (the sidecar's risk counters)", r.Logs.Patterns)
		}
	})
}
