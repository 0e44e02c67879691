package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opsight/opsight/internal/riskpatterns"
	"github.com/opsight/opsight/internal/simoperator"
	"github.com/opsight/opsight/internal/testservers"
)

// scenarioPod is one simulated operator pod and its sidecar.
type scenarioPod struct {
	name, revision string
	slowTail       float64
	seed           uint64
	env            map[string]string
	sc             *sidecar
	op             *simoperator.Operator
	stats          simoperator.Stats
}

// TestScenarioRealBackends runs the whole product against real servers: two
// revisions of a simulated operator (the candidate with a slow tail), one
// sidecar per pod in env mode, VictoriaLogs as the Loki push target, Jaeger
// v2 as the OTLP trace backend and a real Prometheus scraping both sidecars.
func TestScenarioRealBackends(t *testing.T) {
	t.Parallel()
	const (
		ns      = "ops"
		runFor  = 20 * time.Second
		service = "etcd-operator"
	)
	dir := t.TempDir()
	vl := testservers.StartVictoriaLogs(t)
	jg := testservers.StartJaeger(t)
	pods := []*scenarioPod{
		{name: "etcd-operator-7d9f5-a", revision: "v1.4.0", seed: 11},
		{name: "etcd-operator-8c1e2-b", revision: "v1.5.0-rc.1", slowTail: 0.08, seed: 22},
		// The baseline's code under a rebuilt image tag: the release gate's A/A.
		{name: "etcd-operator-7d9f5-c", revision: "v1.4.0-rebuild", seed: 33},
	}
	var targets []string
	for _, p := range pods {
		p.env = podEnv(dir, ns, p.name, p.revision)
		p.env["OPSIGHT_LOKI_URL"] = vl.PushURL
		p.env["OPSIGHT_TRACES_URL"] = jg.OTLPHTTP
		p.env["OPSIGHT_SERVICE_NAME"] = service
		p.env["OPSIGHT_METRICS_ADDR"] = testservers.FreeAddr(t)
		p.env["OPSIGHT_OTLP_HTTP_ADDR"] = testservers.FreeAddr(t)
		targets = append(targets, strconv.Quote(p.env["OPSIGHT_METRICS_ADDR"]))
		p.sc = newSidecar(t, p.env)
		requireEnvConfigValid(t, p.sc)
		p.sc.start()
		waitOTLP(t, p.sc, p.env["OPSIGHT_OTLP_HTTP_ADDR"])
	}
	prom := testservers.StartPrometheus(t, fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
  scrape_native_histograms: true
  always_scrape_classic_histograms: true
scrape_configs:
  - job_name: opsight-sidecar
    static_configs:
      - targets: [%s]
`, strings.Join(targets, ", ")))

	ctx, cancel := context.WithTimeout(context.Background(), runFor)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(pods))
	started := time.Now()
	for _, p := range pods {
		op, err := simoperator.New(simoperator.Config{
			LogRoot: filepath.Join(dir, "pods"), Namespace: ns, Pod: p.name, Revision: p.revision, Cluster: "e2e",
			Service: service, ReconcilesPerSecond: 100, SlowTailShare: p.slowTail, SlowTailFactor: 8,
			MaxFiles:     1000, // keep every rotation: the test reads them all back
			OTLPEndpoint: "http://" + p.env["OPSIGHT_OTLP_HTTP_ADDR"], Seed: p.seed,
		})
		if err != nil {
			t.Fatal(err)
		}
		p.op = op
		wg.Add(1)
		go func(p *scenarioPod) {
			defer wg.Done()
			st, err := p.op.Run(ctx)
			p.stats = st
			errs <- err
		}(p)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ended := time.Now()

	matcher, err := riskpatterns.NewMatcher(riskpatterns.Default)
	if err != nil {
		t.Fatal(err)
	}
	traceOfReconcile := map[string]string{} // reconcile id → trace id, over both pods
	for _, p := range pods {
		t.Run("logs/"+p.revision, func(t *testing.T) {
			checkPodLogs(t, vl, p, ns, service, matcher, traceOfReconcile)
		})
	}

	t.Run("traces", func(t *testing.T) {
		// Joined trace ids must be real traces: Jaeger has a sample of them.
		ids := make([]string, 0, len(traceOfReconcile))
		for _, id := range traceOfReconcile {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		if len(ids) > 40 {
			ids = ids[:40]
		}
		missing := waitJaeger(jg, ids, 60*time.Second)
		var spans int64
		for _, p := range pods {
			spans += p.stats.Spans
		}
		t.Logf("operator spans sent %d; sampled %d trace ids of log lines, %d not in Jaeger", spans, len(ids), len(missing))
		if len(ids) == 0 {
			t.Error("no log line carried a trace id")
		}
		if len(missing) > 0 {
			t.Errorf("trace ids found in logs but not in Jaeger: %v\njaeger log:\n%s", missing, jg.Logs())
		}
	})

	t.Run("exemplars", func(t *testing.T) {
		var ex []string
		ok := waitFor(30*time.Second, func() bool {
			ex, err = exemplarTraceIDs(prom.URL, `{__name__=~"traces_span_metrics_duration_seconds.*"}`, started, time.Now())
			return err == nil && len(ex) >= 5
		})
		if !ok {
			t.Fatalf("Prometheus has %d exemplars with trace_id on traces_span_metrics_duration_seconds (err %v); want ≥ 5\nprometheus log:\n%s", len(ex), err, prom.Logs())
		}
		all := len(ex)
		if len(ex) > 40 {
			ex = ex[:40]
		}
		missing := waitJaeger(jg, ex, 60*time.Second)
		t.Logf("exemplars with trace_id: %d; checked %d in Jaeger, %d missing", all, len(ex), len(missing))
		if len(missing) > 0 {
			t.Errorf("exemplar trace ids Jaeger does not have: %v", missing)
		}
	})

	t.Run("export", func(t *testing.T) {
		for _, p := range pods {
			dropped, err := p.sc.metricValue("opsight_export_dropped_total", "")
			if err != nil {
				t.Fatal(err)
			}
			sent, _ := p.sc.metricValue("opsight_export_sent_total", "")
			t.Logf("%s: opsight_export_sent_total %v, dropped %v", p.name, sent, dropped)
			if dropped != 0 {
				t.Errorf("%s: opsight_export_dropped_total = %v, want 0", p.name, dropped)
			}
		}
	})

	t.Run("releasegate/prometheus", func(t *testing.T) {
		// A/A: the baseline against its rebuilt twin; then the regression:
		// the candidate's slow tail must fail the gate.
		w := fmt.Sprintf("%d,%d", started.Unix(), ended.Add(2*time.Second).Unix())
		common := []string{"--prometheus-url", prom.URL, "--service", service, "--span-name", "Reconcile", "--threshold", "p99:+25%",
			"--baseline-window", w, "--candidate-window", w}
		aa := append(append([]string{}, common...), "--baseline", pods[0].revision, "--candidate", pods[2].revision)
		reg := append(append([]string{}, common...), "--baseline", pods[0].revision, "--candidate", pods[1].revision)
		time.Sleep(3 * time.Second) // the last scrape
		checkReleaseGate(t, "prometheus A/A", aa, 0)
		checkReleaseGate(t, "prometheus regression", reg, 1)
	})
}

// checkPodLogs verifies what VictoriaLogs holds for one pod against the lines
// the operator wrote.
func checkPodLogs(t *testing.T, vl *testservers.VictoriaLogsServer, p *scenarioPod, ns, service string, matcher *riskpatterns.Matcher, traceOfReconcile map[string]string) {
	written, err := podLines(p.stats.LogDir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	for _, l := range written {
		want[l]++
	}
	q := fmt.Sprintf("pod:=%q", p.name)
	var rows []map[string]string
	complete := waitFor(90*time.Second, func() bool {
		n, err := vl.Count(q)
		return err == nil && n >= len(written)
	})
	time.Sleep(1500 * time.Millisecond) // late duplicates become searchable
	if rows, err = vl.Query(q); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, r := range rows {
		got[r["_msg"]]++
	}
	missing, dups, unknown := 0, 0, 0
	for l, n := range want {
		switch g := got[l]; {
		case g < n:
			missing += n - g
		case g > n:
			dups += g - n
		}
	}
	for l := range got {
		if want[l] == 0 {
			unknown++
			if unknown <= 3 {
				t.Errorf("VictoriaLogs has a line the operator never wrote: %.200q", l)
			}
		}
	}
	t.Logf("%s: operator wrote %d lines (%d with reconcileID, %d rotations), VictoriaLogs has %d: missing %d, duplicates %d",
		p.revision, len(written), p.stats.KeyedLines, p.stats.Rotations, len(rows), missing, dups)
	if missing > 0 || !complete {
		t.Errorf("%d lines never reached VictoriaLogs\nsidecar log:\n%s", missing, p.sc.logs())
	}
	if dups > 0 {
		t.Errorf("%d lines arrived more than once", dups)
	}

	labels := map[string]string{"cluster": "e2e", "namespace": ns, "pod": p.name, "container": "manager", "service_name": service, "revision": p.revision}
	var keyed, keyedWithTrace, fieldTrace, joined int
	var labelErrs, metaErrs int
	report := func(counter *int, format string, args ...any) {
		*counter++
		if *counter <= 5 {
			t.Errorf(format, args...)
		}
	}
	for _, r := range rows {
		line := r["_msg"]
		for k, v := range labels {
			if r[k] != v {
				report(&labelErrs, "stream label %s = %q, want %q (stream %s)", k, r[k], v, r["_stream"])
			}
		}
		if strings.Contains(r["_stream"], "trace_id") || strings.Contains(r["_stream"], "reconcile_id") {
			report(&labelErrs, "per-request id used as a stream label: %s", r["_stream"])
		}
		var wantRisk []string
		for _, i := range matcher.MatchString(line, nil) {
			wantRisk = append(wantRisk, matcher.Patterns()[i].ID)
		}
		if w := strings.Join(wantRisk, ","); r["risk"] != w {
			report(&metaErrs, "risk = %q, want %q for %.200q", r["risk"], w, line)
		}
		if tid := r["trace_id"]; tid != "" && (!hexID.MatchString(tid) || len(tid) != 32) {
			report(&metaErrs, "trace_id %q is not 32 lowercase hex chars", tid)
		}
		if sid := r["span_id"]; sid != "" && (!hexID.MatchString(sid) || len(sid) != 16) {
			report(&metaErrs, "span_id %q is not 16 lowercase hex chars", sid)
		}
		var obj map[string]any
		if json.Unmarshal([]byte(line), &obj) != nil {
			continue // klog and stack lines: checked for labels and risk only
		}
		if lv, _ := obj["level"].(string); r["level"] != lv {
			report(&metaErrs, "level = %q, want %q", r["level"], lv)
		}
		if c, _ := obj["controller"].(string); r["controller"] != c {
			report(&metaErrs, "controller = %q, want %q", r["controller"], c)
		}
		rid, _ := obj["reconcileID"].(string)
		if r["reconcile_id"] != rid {
			report(&metaErrs, "reconcile_id = %q, want %q", r["reconcile_id"], rid)
		}
		if rid == "" {
			continue
		}
		keyed++
		if r["trace_id"] != "" {
			keyedWithTrace++
			if prev, ok := traceOfReconcile[rid]; ok && prev != r["trace_id"] {
				report(&metaErrs, "reconcile %s has lines with trace ids %s and %s", rid, prev, r["trace_id"])
			}
			traceOfReconcile[rid] = r["trace_id"]
		}
		if tid, sid, ok := lineTrace(obj); ok {
			fieldTrace++
			if r["trace_id"] != tid || r["span_id"] != sid || r["correlation"] != "field" {
				report(&metaErrs, "trace_id/span_id/correlation = %s/%s/%s, want %s/%s/field for %.200q", r["trace_id"], r["span_id"], r["correlation"], tid, sid, line)
			}
		} else if r["trace_id"] != "" {
			joined++
			if r["correlation"] != "join" {
				report(&metaErrs, "correlation = %q for a trace id the line does not carry, want join", r["correlation"])
			}
		}
	}
	share := 0.0
	if keyed > 0 {
		share = float64(keyedWithTrace) / float64(keyed)
	}
	t.Logf("%s: lines with reconcileID %d, with trace_id %d (%.2f%%): in the line %d, joined %d; label errors %d, metadata errors %d",
		p.revision, keyed, keyedWithTrace, 100*share, fieldTrace, joined, labelErrs, metaErrs)
	if keyed == 0 || share < 0.99 {
		t.Errorf("%.2f%% of %d lines with a reconcile id got a trace_id; want ≥ 99%%", 100*share, keyed)
	}
}

var hexID = regexp.MustCompile(`^[0-9a-f]+$`)

// lineTrace returns the trace context the line itself carries, normalised
// per CONVENTIONS.md, in the spellings the simulated operator uses.
func lineTrace(obj map[string]any) (traceID, spanID string, ok bool) {
	str := func(k string) string { s, _ := obj[k].(string); return s }
	pair := func(t, s string) (string, string, bool) { return strings.ToLower(t), strings.ToLower(s), t != "" }
	for _, k := range [][2]string{{"trace_id", "span_id"}, {"traceId", "spanId"}, {"traceID", "spanID"}, {"otelTraceID", "otelSpanID"}} {
		if str(k[0]) != "" {
			return pair(str(k[0]), str(k[1]))
		}
	}
	if tr, isMap := obj["trace"].(map[string]any); isMap {
		id, _ := tr["id"].(string)
		sid, _ := tr["span_id"].(string)
		return pair(id, sid)
	}
	if d := str("dd.trace_id"); d != "" {
		tv, err1 := strconv.ParseUint(d, 10, 64)
		sv, err2 := strconv.ParseUint(str("dd.span_id"), 10, 64)
		if err1 == nil && err2 == nil {
			return fmt.Sprintf("%032x", tv), fmt.Sprintf("%016x", sv), true
		}
	}
	if tp := strings.Split(str("traceparent"), "-"); len(tp) == 4 {
		return pair(tp[1], tp[2])
	}
	return "", "", false
}

// waitJaeger returns the ids Jaeger still lacks after timeout.
func waitJaeger(jg *testservers.JaegerServer, ids []string, timeout time.Duration) []string {
	var missing []string
	waitFor(timeout, func() bool {
		missing = missing[:0]
		for _, id := range ids {
			if ok, err := jg.HasTrace(id); !ok || err != nil {
				missing = append(missing, id)
			}
		}
		return len(missing) == 0
	})
	return missing
}

// exemplarTraceIDs returns the distinct trace_id labels of the exemplars
// Prometheus stored for query between start and end.
func exemplarTraceIDs(base, query string, start, end time.Time) ([]string, error) {
	u := fmt.Sprintf("%s/api/v1/query_exemplars?query=%s&start=%d&end=%d", base, url.QueryEscape(query), start.Unix()-60, end.Unix()+60)
	resp, err := http.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   []struct {
			Exemplars []struct {
				Labels map[string]string `json:"labels"`
			} `json:"exemplars"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query_exemplars: %s", r.Error)
	}
	seen := map[string]bool{}
	var ids []string
	for _, s := range r.Data {
		for _, e := range s.Exemplars {
			if id := e.Labels["trace_id"]; id != "" && !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// requireEnvConfigValid: the sidecar must start from the environment alone
// (OPSIGHT_LOKI_URL and OPSIGHT_TRACES_URL set); `validate` says why not.
func requireEnvConfigValid(t *testing.T, sc *sidecar) {
	t.Helper()
	cmd := exec.Command(sc.bin, "validate")
	cmd.Env = sc.env
	if out, err := cmd.CombinedOutput(); err != nil || strings.Contains(string(out), "Error:") {
		t.Fatalf("operator-sidecar validate rejects the env configuration: %v\n%s", err, out)
	}
}
