package dashboards

import (
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestDatasourceProvisioningCorrelations checks deploy/grafana/datasources.yaml
// wires the three data sources to each other with Grafana's provisioning keys.
func TestDatasourceProvisioningCorrelations(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "deploy", "grafana", "datasources.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name     string         `yaml:"name"`
			UID      string         `yaml:"uid"`
			Type     string         `yaml:"type"`
			JSONData map[string]any `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	byType := map[string]map[string]any{}
	uid := map[string]string{}
	for _, d := range f.Datasources {
		byType[d.Type] = d.JSONData
		uid[d.Type] = d.UID
	}
	if f.APIVersion != 1 || len(byType) != 3 {
		t.Fatalf("want apiVersion 1 and prometheus, loki, tempo; got %d, %v", f.APIVersion, uid)
	}
	list := func(m map[string]any, key string) []map[string]any {
		raw, _ := m[key].([]any)
		var out []map[string]any
		for _, r := range raw {
			if x, ok := r.(map[string]any); ok {
				out = append(out, x)
			}
		}
		return out
	}
	sub := func(m map[string]any, key string) map[string]any {
		x, _ := m[key].(map[string]any)
		return x
	}

	ex := list(byType["prometheus"], "exemplarTraceIdDestinations")
	if len(ex) != 1 || ex[0]["name"] != "trace_id" || ex[0]["datasourceUid"] != uid["tempo"] {
		t.Errorf("prometheus exemplarTraceIdDestinations must send the trace_id exemplar label to Tempo: %v", ex)
	}
	df := list(byType["loki"], "derivedFields")
	if len(df) != 1 || df[0]["matcherType"] != "label" || df[0]["matcherRegex"] != "trace_id" || df[0]["datasourceUid"] != uid["tempo"] || df[0]["url"] != "$${__value.raw}" {
		t.Errorf("loki derivedFields must link the trace_id structured metadata (matcherType label) to Tempo: %v", df)
	}
	tl := sub(byType["tempo"], "tracesToLogsV2")
	if tl["datasourceUid"] != uid["loki"] || tl["filterByTraceID"] != true {
		t.Errorf("tempo tracesToLogsV2 must query Loki filtered by trace id: %v", tl)
	}
	tm := sub(byType["tempo"], "tracesToMetrics")
	if tm["datasourceUid"] != uid["prometheus"] || len(list(tm, "queries")) == 0 {
		t.Errorf("tempo tracesToMetrics must point at Prometheus with queries: %v", tm)
	}
}

// tempoMetricQueries returns the PromQL of tracesToMetrics in datasources.yaml.
func tempoMetricQueries(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "deploy", "grafana", "datasources.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Datasources []struct {
			Type     string `yaml:"type"`
			JSONData struct {
				TracesToMetrics struct {
					Queries []struct {
						Query string `yaml:"query"`
					} `yaml:"queries"`
				} `yaml:"tracesToMetrics"`
			} `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range f.Datasources {
		for _, q := range d.JSONData.TracesToMetrics.Queries {
			out = append(out, q.Query)
		}
	}
	if len(out) == 0 {
		t.Fatal("datasources.yaml: no tracesToMetrics queries")
	}
	return out
}
