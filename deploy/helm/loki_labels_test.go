package helm

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/opsight/opsight/internal/conventions"
)

var (
	selectorRe = regexp.MustCompile(`\{([^{}]*)\}`)
	matcherRe  = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)`)
	byRe       = regexp.MustCompile(`\bby\s*\(([^)]*)\)`)
)

// exprViolations finds forbidden names used as labels in a PromQL/LogQL
// expression: in a stream/series selector, or grouped by (which turns them
// into series labels). `| trace_id="..."` filters structured metadata and is fine.
func exprViolations(where, expr string) []string {
	var v []string
	for _, sel := range selectorRe.FindAllStringSubmatch(expr, -1) {
		for _, m := range matcherRe.FindAllStringSubmatch(sel[1], -1) {
			if slices.Contains(conventions.ForbiddenLokiLabels, m[1]) {
				v = append(v, fmt.Sprintf("%s: label matcher on %s in %q", where, m[1], expr))
			}
		}
	}
	for _, by := range byRe.FindAllStringSubmatch(expr, -1) {
		for _, name := range strings.Split(by[1], ",") {
			if slices.Contains(conventions.ForbiddenLokiLabels, strings.TrimSpace(name)) {
				v = append(v, fmt.Sprintf("%s: grouped by %s in %q", where, strings.TrimSpace(name), expr))
			}
		}
	}
	return v
}

type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert  string            `json:"alert"`
			Record string            `json:"record"`
			Expr   string            `json:"expr"`
			Labels map[string]string `json:"labels"`
		} `json:"rules"`
	} `json:"groups"`
}

func ruleViolations(where string, rf ruleFile) (v []string, n int) {
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			n++
			id := fmt.Sprintf("%s %s/%s%s", where, g.Name, r.Alert, r.Record)
			v = append(v, exprViolations(id, r.Expr)...)
			for k := range r.Labels {
				if slices.Contains(conventions.ForbiddenLokiLabels, k) {
					v = append(v, fmt.Sprintf("%s: sets label %s", id, k))
				}
			}
		}
	}
	return v, n
}

// walkLabels reports forbidden names under any key that configures labels
// (collector exporters' `labels`, Grafana's trace-to-logs `tags`, ...).
func walkLabels(where string, x any, inLabels bool) []string {
	var v []string
	switch t := x.(type) {
	case map[string]any:
		for k, val := range t {
			lk := strings.ToLower(k)
			labelKey := strings.Contains(lk, "label") || lk == "tags"
			if inLabels && slices.Contains(conventions.ForbiddenLokiLabels, k) {
				v = append(v, fmt.Sprintf("%s: %s configured as a label", where, k))
			}
			if (inLabels || labelKey) && (lk == "value" || lk == "key") {
				if s, ok := val.(string); ok && slices.Contains(conventions.ForbiddenLokiLabels, s) && lk == "value" {
					v = append(v, fmt.Sprintf("%s: %s mapped to a label", where, s))
				}
			}
			if lk == "expr" || lk == "query" {
				if s, ok := val.(string); ok {
					v = append(v, exprViolations(where, s)...)
				}
			}
			v = append(v, walkLabels(where+"."+k, val, inLabels || labelKey)...)
		}
	case []any:
		for i, e := range t {
			if s, ok := e.(string); ok && inLabels && slices.Contains(conventions.ForbiddenLokiLabels, s) {
				v = append(v, fmt.Sprintf("%s[%d]: %s configured as a label", where, i, s))
			}
			v = append(v, walkLabels(fmt.Sprintf("%s[%d]", where, i), e, inLabels)...)
		}
	}
	return v
}

// lokiLabelViolations inspects everything the chart renders that names
// labels: Loki and Prometheus rules, dashboards, data sources, the gateway
// config. It returns the violations and how many Loki rules it read.
func lokiLabelViolations(t *testing.T, objs []object) (v []string, lokiRules int) {
	t.Helper()
	for _, o := range objs {
		switch obj := o.Obj.(type) {
		case *monitoringv1.PrometheusRule:
			for _, g := range obj.Spec.Groups {
				for _, r := range g.Rules {
					v = append(v, exprViolations("PrometheusRule "+o.Name, r.Expr.String())...)
					for k := range r.Labels {
						if slices.Contains(conventions.ForbiddenLokiLabels, k) {
							v = append(v, fmt.Sprintf("PrometheusRule %s: sets label %s", o.Name, k))
						}
					}
				}
			}
		case *corev1.ConfigMap:
			for key, data := range obj.Data {
				where := fmt.Sprintf("ConfigMap %s %s", o.Name, key)
				var doc any
				var err error
				if strings.HasSuffix(key, ".json") {
					err = json.Unmarshal([]byte(data), &doc)
				} else {
					err = yaml.Unmarshal([]byte(data), &doc)
				}
				if err != nil {
					t.Errorf("%s: not JSON/YAML: %v", where, err)
					continue
				}
				if obj.Labels["loki_rule"] == "1" || obj.Labels["prometheus_rule"] == "1" {
					var rf ruleFile
					if err := yaml.UnmarshalStrict([]byte(data), &rf); err != nil {
						// Rules carry more fields (for, annotations); only check what labels them.
						_ = yaml.Unmarshal([]byte(data), &rf)
					}
					rv, n := ruleViolations(where, rf)
					v = append(v, rv...)
					if obj.Labels["loki_rule"] == "1" {
						lokiRules += n
					}
					continue
				}
				v = append(v, walkLabels(where, doc, false)...)
			}
		}
	}
	return v, lokiRules
}

func TestChartNeverMakesTraceIDsLokiLabels(t *testing.T) {
	for _, args := range [][]string{
		// lokiRules.logVolume (off by default) ships every Loki rule file.
		{"-f", ciValues(t, "gateway-on.yaml"), "--set", "datasources.enabled=true,lokiRules.logVolume=true", "--api-versions", "monitoring.coreos.com/v1"},
		{"-f", ciValues(t, "no-prom-operator.yaml"), "--set", "datasources.enabled=true,gateway.enabled=true,gateway.tracesEndpoint=http://tempo:4318,lokiRules.logVolume=true"},
	} {
		objs := render(t, args...)
		v, n := lokiLabelViolations(t, objs)
		for _, e := range v {
			t.Error(e)
		}
		// Every Loki rule the repository ships was read (none is fine only when there are none).
		want := 0
		for _, f := range globChart(t, "files/loki-rules/*.yaml") {
			var rf ruleFile
			if err := yaml.Unmarshal(readFile(t, f), &rf); err != nil {
				t.Fatal(err)
			}
			_, c := ruleViolations(f, rf)
			want += c
		}
		if n != want {
			t.Errorf("checked %d Loki rules, the chart has %d", n, want)
		}
	}
}

// TestLokiLabelCheckCatches proves the check above can fail.
func TestLokiLabelCheckCatches(t *testing.T) {
	bad := []object{
		{Kind: "ConfigMap", Name: "loki", Obj: &corev1.ConfigMap{
			ObjectMeta: metav1ObjectMeta(map[string]string{"loki_rule": "1"}),
			Data: map[string]string{"r.yaml": `groups:
- name: g
  rules:
  - alert: A
    expr: sum by (namespace, span_id) (count_over_time({namespace="x", trace_id=~".+"} [5m])) > 0
    labels: {reconcile_id: "1"}
`}}},
		{Kind: "ConfigMap", Name: "gw", Obj: &corev1.ConfigMap{Data: map[string]string{"config.yaml": `exporters:
  loki:
    labels:
      attributes: {trace_id: "", level: ""}
`}}},
		{Kind: "ConfigMap", Name: "ds", Obj: &corev1.ConfigMap{Data: map[string]string{"ds.yaml": `datasources:
- jsonData:
    tracesToLogsV2:
      tags:
      - {key: trace.id, value: trace_id}
`}}},
		{Kind: "ConfigMap", Name: "dash", Obj: &corev1.ConfigMap{Data: map[string]string{"d.json": `{"panels":[{"targets":[{"expr":"{span_id=\"1\"} |= \"x\""}]}]}`}}},
	}
	v, _ := lokiLabelViolations(t, bad)
	for _, want := range []string{"grouped by span_id", "label matcher on trace_id", "sets label reconcile_id",
		"trace_id configured as a label", "trace_id mapped to a label", "label matcher on span_id"} {
		found := false
		for _, e := range v {
			found = found || strings.Contains(e, want)
		}
		if !found {
			t.Errorf("check missed %q; it reported %q", want, v)
		}
	}
	// Structured metadata filters and the derived field matcher are fine.
	ok := []object{{Kind: "ConfigMap", Name: "fine", Obj: &corev1.ConfigMap{Data: map[string]string{"d.json": `{"expr":"{namespace=\"x\"} | trace_id=\"abc\" | json","derivedFields":[{"matcherType":"label","matcherRegex":"trace_id"}]}`}}}}
	if v, _ := lokiLabelViolations(t, ok); len(v) != 0 {
		t.Errorf("false positives: %q", v)
	}
}

func metav1ObjectMeta(labels map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Labels: labels}
}

func globChart(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(chartDir(t), pattern))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLokiLogVolumeRuleIsOptIn: the Loki-evaluated volume alert re-reads a
// day-old hour of every service's logs every 5 minutes; it ships only with
// lokiRules.logVolume=true.
func TestLokiLogVolumeRuleIsOptIn(t *testing.T) {
	for _, c := range []struct {
		set  string
		want bool
	}{{"lokiRules.enabled=true", false}, {"lokiRules.logVolume=true", true}} {
		found := false
		for _, cm := range ofKind[*corev1.ConfigMap](render(t, "--set", c.set)) {
			if _, ok := cm.Data["loki-log-volume.yaml"]; ok {
				found = true
			}
			if _, ok := cm.Data["loki-risk-patterns.yaml"]; !ok && strings.HasSuffix(cm.Name, "-loki-rules") {
				t.Errorf("--set %s: the risk-pattern rules are missing", c.set)
			}
		}
		if found != c.want {
			t.Errorf("--set %s: loki-log-volume.yaml shipped %v, want %v", c.set, found, c.want)
		}
	}
}
