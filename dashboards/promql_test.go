package dashboards

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/opsight/opsight/internal/testservers"
)

// TestPromQLParsesWithPromtool puts every dashboard expression (variables
// substituted as Grafana does) into a rule file and runs the real
// `promtool check rules`, so the Prometheus parser judges them without the
// root module depending on Prometheus.
func TestPromQLParsesWithPromtool(t *testing.T) {
	promtool := testservers.Promtool.MustPath(t)
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	var names []string
	exprs := promQueries(t)
	for k := range exprs {
		names = append(names, k)
	}
	sort.Strings(names)
	for i, k := range names {
		rules = append(rules, rule{fmt.Sprintf("dashboard_expr_%d", i), substitute(exprs[k])})
	}
	vq := variableQueries(t)
	for k, v := range vq {
		rules = append(rules, rule{"dashboard_variable_" + strings.NewReplacer("/", "_", "$", "", "-", "_").Replace(k), substitute(v[0])})
	}
	// The trace-to-metrics queries of the Tempo data source, with $__tags
	// filled as Grafana does.
	for i, q := range tempoMetricQueries(t) {
		rules = append(rules, rule{fmt.Sprintf("datasource_tempo_query_%d", i), strings.ReplaceAll(q, "$$__tags", `service_name="op"`)})
	}
	if len(rules) < 40 {
		t.Fatalf("only %d expressions found", len(rules))
	}
	b, err := yaml.Marshal(map[string]any{"groups": []map[string]any{{"name": "dashboards", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "dashboards.rules.yaml")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", p).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules on the dashboards' PromQL: %v\n%s", err, out)
	}

	// The check must be able to fail: a broken expression is rejected.
	bad := filepath.Join(t.TempDir(), "bad.rules.yaml")
	os.WriteFile(bad, []byte("groups:\n- name: x\n  rules:\n  - record: x\n    expr: sum by (a (rate(x[5m]))\n"), 0o644)
	if out, err := exec.Command(promtool, "check", "rules", bad).CombinedOutput(); err == nil {
		t.Fatalf("promtool accepted a broken expression:\n%s", out)
	}
}
