package dashboards

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/opsight/opsight/alerts"
	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/riskpatterns"
	"github.com/opsight/opsight/internal/selftelemetry"
	"github.com/opsight/opsight/internal/testservers"
)

// TestRealScrape runs the sidecar's demo (a simulated operator plus the
// sidecar) and a real Prometheus scraping both every second, then checks
// every metric, label and grouping label that a dashboard panel, a dashboard
// variable or a Prometheus rule uses exists, and that every panel query
// returns data. This is the contract between the dashboards/alerts and what
// the sidecar and controller-runtime really expose.
//
// Contract with operator-sidecar: `operator-sidecar demo --duration D --dir
// DIR --metrics-addr A1 --operator-metrics-addr A2` serves the sidecar's
// /metrics on A1 and the simulated operator's controller-runtime, client-go
// and workqueue metrics on A2 while it runs.
func TestRealScrape(t *testing.T) {
	root, err := testservers.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "operator-sidecar")
	build := exec.Command("go", "build", "-o", bin, "./operator-sidecar")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building ./operator-sidecar: %v\n%s", err, out)
	}

	sidecarAddr, operatorAddr := testservers.FreeAddr(t), testservers.FreeAddr(t)
	// Target labels stand in for Kubernetes service discovery; they fill in
	// what the exposed series lack. honor_labels keeps the series' own
	// namespace/cluster (span metrics carry the span's), as the chart's
	// PodMonitor does; service_name stands in for its relabeling of the
	// webhook's opsight.dev/service-name annotation (the demo's service is
	// etcd-operator). The log-volume rules run, so the panels that read
	// their recorded series are checked on what they record.
	volumeRules := filepath.Join(root, "alerts", "rules", "operator-log-volume.yaml")
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: opsight-sidecar
    honor_labels: true
    scrape_native_histograms: true
    always_scrape_classic_histograms: true
    static_configs:
      - targets: [%q]
        labels: {cluster: demo, namespace: opsight-demo, pod: demo-operator-0, container: opsight-sidecar, service_name: etcd-operator}
  - job_name: operator
    honor_labels: true
    scrape_native_histograms: true
    always_scrape_classic_histograms: true
    static_configs:
      - targets: [%q]
        labels: {cluster: demo, namespace: opsight-demo, pod: demo-operator-0, container: manager}
`, volumeRules, sidecarAddr, operatorAddr)
	// Prometheus starts first (its targets are down until the demo runs), so
	// a slow start cannot eat into the demo's 40 seconds.
	prom := testservers.StartPrometheus(t, cfg)

	ctx, cancel := context.WithCancel(context.Background())
	demo := exec.CommandContext(ctx, bin, "demo", "--duration", "40s", "--dir", filepath.Join(tmp, "demo"),
		"--metrics-addr", sidecarAddr, "--operator-metrics-addr", operatorAddr)
	demoOut := &lockedBuffer{}
	demo.Stdout, demo.Stderr = demoOut, demoOut
	if err := demo.Start(); err != nil {
		t.Fatalf("starting the demo: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- demo.Wait() }()
	t.Cleanup(func() { cancel(); <-exited })
	for _, a := range []string{sidecarAddr, operatorAddr} {
		ready := make(chan error, 1)
		go func() { ready <- testservers.WaitHTTP("http://"+a+"/metrics", 30*time.Second) }()
		select {
		case err := <-ready:
			if err != nil {
				t.Fatalf("demo does not serve /metrics on %s: %v\n%s", a, err, demoOut.String())
			}
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("demo exited before serving /metrics (%v):\n%s", err, demoOut.String())
		}
	}

	api := &promAPI{base: prom.URL}

	// ~25 s of 1 s scrapes: enough for rate() over the 1m windows below. The
	// checks run while the demo still serves: after it stops, staleness
	// markers empty every instant query.
	deadline := time.Now().Add(25 * time.Second)
	select {
	case <-time.After(time.Until(deadline)):
	case err := <-exited:
		exited <- err
		t.Fatalf("demo exited after %s, before the scrape window ended (%v):\n%s", 25*time.Second-time.Until(deadline), err, demoOut.String())
	}
	if up, err := api.query(`sum(up)`); err != nil || len(up) == 0 || up[0].Value[1] != "2" {
		t.Fatalf("both targets must be up (got %v, %v)\nprometheus:\n%s\ndemo:\n%s", up, err, prom.Logs(), demoOut.String())
	}

	var problems []string
	report := func(where string, errs []string) {
		for _, e := range errs {
			problems = append(problems, where+": "+e)
		}
	}

	// Dashboard panels: names and labels exist, and the query returns data.
	panels := promQueries(t)
	keys := sortedKeys(panels)
	for _, k := range keys {
		q := substitute(panels[k])
		report(k, api.checkNames(q))
		res, err := api.query(q)
		switch {
		case err != nil:
			report(k, []string{err.Error()})
		case len(res) == 0:
			report(k, []string{"query returns no data: " + q})
		}
	}
	// Dashboard variables: label_values(selector, label) has values.
	for k, v := range variableQueries(t) {
		sel := substitute(v[0])
		report(k, api.checkNames(sel))
		if ls, err := api.labelNames(sel); err != nil {
			report(k, []string{err.Error()})
		} else if !ls[v[1]] {
			report(k, []string{fmt.Sprintf("no series of %s has label %s", sel, v[1])})
		}
	}
	// Prometheus rules: every metric and label they read exists (recorded
	// series, named level:metric:op, are checked through their own rules).
	rules, err := prometheusRuleExprs(filepath.Join("..", "alerts", "rules"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range sortedKeys(rules) {
		report(k, api.checkNames(rules[k]))
	}

	// Label values the dashboards enumerate or match must be the shared ones.
	known := map[string]map[string]bool{"pattern": {}, "correlation": {
		conventions.CorrelationField: true, conventions.CorrelationJoin: true, conventions.CorrelationNone: true}}
	for _, p := range riskpatterns.Default {
		known["pattern"][p.ID] = true
	}
	for label, metric := range map[string]string{"pattern": conventions.MetricLogRisk, "correlation": conventions.MetricLogCorrelated} {
		res, err := api.query(fmt.Sprintf("count by (%s) (%s)", label, metric))
		if err != nil || len(res) == 0 {
			report(metric, []string{fmt.Sprintf("no %s values (%v)", label, err)})
		}
		for _, r := range res {
			if !known[label][r.Metric[label]] {
				report(metric, []string{fmt.Sprintf("%s=%q is not a shared value (riskpatterns.Default / conventions)", label, r.Metric[label])})
			}
		}
	}

	t.Logf("checked %d panel queries, %d variables, %d rules against a real scrape", len(panels), len(variableQueries(t)), len(rules))
	if len(problems) > 0 {
		t.Errorf("%d problems:\n%s\n\ndemo output:\n%s", len(problems), strings.Join(problems, "\n"), tail(demoOut.String(), 3000))
	}
}

// lockedBuffer collects the demo's output while it runs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// prometheusRuleExprs reads the generated Prometheus rule files (not the
// Loki ones) and returns "file/rule" → expr.
func prometheusRuleExprs(dir string) (map[string]string, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(paths) == 0 {
		return nil, fmt.Errorf("no rule files in %s (%v)", dir, err)
	}
	out := map[string]string{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		if bytes.Contains(b, []byte("Evaluated by the loki ruler")) {
			continue
		}
		var f struct {
			Groups []struct {
				Rules []struct {
					Record, Alert, Expr string
					Labels              map[string]string
				}
			}
		}
		if err := yaml.Unmarshal(b, &f); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		for _, g := range f.Groups {
			for i, r := range g.Rules {
				out[fmt.Sprintf("%s/%s%s#%d", filepath.Base(p), r.Record, r.Alert, i)] = r.Expr
			}
		}
	}
	return out, nil
}

// promAPI is the little of the Prometheus HTTP API the test needs.
type promAPI struct {
	base   string
	series map[string][]map[string]string
}

type sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (a *promAPI) get(path string, params url.Values, into any) error {
	resp, err := http.PostForm(a.base+path, params)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("%s: %s", path, b)
	}
	if env.Status != "success" {
		return fmt.Errorf("%s %v: %s", path, params, env.Error)
	}
	return json.Unmarshal(env.Data, into)
}

func (a *promAPI) query(q string) ([]sample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := a.get("/api/v1/query", url.Values{"query": {q}}, &data); err != nil {
		return nil, err
	}
	if data.ResultType != "vector" {
		return []sample{{}}, nil // a scalar always has a value
	}
	var res []sample
	if err := json.Unmarshal(data.Result, &res); err != nil {
		return nil, err
	}
	for i := range res {
		if f, ok := res[i].Value[1].(string); ok {
			if v, err := strconv.ParseFloat(f, 64); err == nil && v == float64(int64(v)) {
				res[i].Value[1] = strconv.FormatInt(int64(v), 10)
			}
		}
	}
	return res, nil
}

// matchSeries returns the label sets of the series a selector matches in the
// last five minutes (cached).
func (a *promAPI) matchSeries(sel string) ([]map[string]string, error) {
	if a.series == nil {
		a.series = map[string][]map[string]string{}
	}
	if s, ok := a.series[sel]; ok {
		return s, nil
	}
	var s []map[string]string
	err := a.get("/api/v1/series", url.Values{"match[]": {sel}, "start": {strconv.FormatInt(time.Now().Add(-5*time.Minute).Unix(), 10)}}, &s)
	if err == nil {
		a.series[sel] = s
	}
	return s, err
}

func (a *promAPI) labelNames(sel string) (map[string]bool, error) {
	s, err := a.matchSeries(sel)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, ls := range s {
		for k := range ls {
			out[k] = true
		}
	}
	return out, nil
}

// checkNames parses q with Prometheus (/api/v1/parse_query) and checks every
// selector matches series and every "by" label exists on the series below
// it. Either side of an "or" may be absent (fallbacks), not both.
func (a *promAPI) checkNames(q string) []string {
	var ast any
	if err := a.get("/api/v1/parse_query", url.Values{"query": {q}}, &ast); err != nil {
		return []string{err.Error()}
	}
	errs, _ := a.walk(ast)
	return errs
}

// walk returns problems and the label names of the series under node.
func (a *promAPI) walk(node any) ([]string, map[string]bool) {
	n, ok := node.(map[string]any)
	if !ok {
		return nil, nil
	}
	labels := map[string]bool{}
	merge := func(ls map[string]bool) {
		for k := range ls {
			labels[k] = true
		}
	}
	switch n["type"] {
	case "vectorSelector", "matrixSelector":
		name, _ := n["name"].(string)
		if strings.Contains(name, ":") {
			return nil, map[string]bool{"__recorded__": true} // recorded series: checked via its rule
		}
		if _, ok := alerts.ForeignMetrics[name]; ok {
			return nil, map[string]bool{"__foreign__": true} // another program's: checked against it
		}
		sel := selectorString(name, n["matchers"])
		s, err := a.matchSeries(sel)
		if err != nil {
			return []string{err.Error()}, nil
		}
		// A counter of events a healthy run never has (or has only as its
		// zero series): its labels are the sidecar's declaration plus the
		// target labels Prometheus gives every sidecar series.
		if ls, ok := selftelemetry.EventLabels(name); ok {
			target, err := a.labelNames(conventions.MetricTailRotations)
			if err != nil {
				return []string{err.Error()}, nil
			}
			merge(target)
			for _, l := range ls {
				labels[l] = true
			}
		} else if len(s) == 0 {
			return []string{"no series match " + sel}, nil
		}
		for _, ls := range s {
			for k := range ls {
				labels[k] = true
			}
		}
		return nil, labels
	case "binaryExpr":
		le, ll := a.walk(n["lhs"])
		re, rl := a.walk(n["rhs"])
		merge(ll)
		merge(rl)
		if n["op"] == "or" && (len(le) == 0 || len(re) == 0) {
			return nil, labels
		}
		return append(le, re...), labels
	case "aggregation":
		errs, ls := a.walk(n["expr"])
		merge(ls)
		if without, _ := n["without"].(bool); !without && len(errs) == 0 && !labels["__recorded__"] && !labels["__foreign__"] {
			g, _ := n["grouping"].([]any)
			for _, l := range g {
				if name, _ := l.(string); !labels[name] {
					errs = append(errs, fmt.Sprintf("grouping label %q exists on no series below %v", name, n["op"]))
				}
			}
		}
		return errs, labels
	case "call":
		var errs []string
		args, _ := n["args"].([]any)
		for _, arg := range args {
			e, ls := a.walk(arg)
			errs = append(errs, e...)
			merge(ls)
		}
		return errs, labels
	case "parenExpr", "unaryExpr", "subquery":
		return a.walk(n["expr"])
	}
	return nil, nil
}

func selectorString(name string, matchers any) string {
	var parts []string
	ms, _ := matchers.([]any)
	for _, m := range ms {
		mm, _ := m.(map[string]any)
		ln, _ := mm["name"].(string)
		op, _ := mm["type"].(string)
		v, _ := mm["value"].(string)
		if ln == "__name__" && op == "=" && v == name {
			continue
		}
		parts = append(parts, ln+op+strconv.Quote(v))
	}
	return name + "{" + strings.Join(parts, ", ") + "}"
}

// TestNameCheckerCanFail runs the checker of TestRealScrape against a real
// Prometheus scraping itself, so a broken checker cannot pass silently.
func TestNameCheckerCanFail(t *testing.T) {
	prom := testservers.StartPrometheus(t, "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: []\n")
	self := strings.TrimPrefix(prom.URL, "http://")
	prom2 := testservers.StartPrometheus(t, fmt.Sprintf("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: [%q]\n", self))
	api := &promAPI{base: prom2.URL}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if res, err := api.query(`up{job="self"} == 1`); err == nil && len(res) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("self scrape never came up:\n%s", prom2.Logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
	for q, wantOK := range map[string]bool{
		`sum by (code) (rate(prometheus_http_requests_total{job=~".*"}[1m]))`: true,
		`nosuch_metric_total`: false,
		`nosuch_metric_total or prometheus_http_requests_total`:                                            true,
		`nosuch_metric_total or also_missing`:                                                              false,
		`sum by (no_such_label) (prometheus_http_requests_total)`:                                          false,
		`prometheus_http_requests_total{code="999"}`:                                                       false,
		`histogram_quantile(0.9, sum by (le) (rate(prometheus_http_request_duration_seconds_bucket[1m])))`: true,
		`opsight:recorded:ratio_rate5m > 1`:                                                                true,
	} {
		errs := api.checkNames(q)
		if (len(errs) == 0) != wantOK {
			t.Errorf("%s: problems %v, want ok=%v", q, errs, wantOK)
		}
	}
}
