package dashboards

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/opsight/opsight/internal/conventions"
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
	checkTracesToLogs(t, tl, list(tl, "tags"))
	// The service map reads traces_service_graph_* series; nothing in opsight
	// writes them, so a serviceMap setting would only show an empty map.
	if sm, ok := byType["tempo"]["serviceMap"]; ok {
		t.Errorf("tempo serviceMap %v: nothing produces service-graph metrics (traces_service_graph_*); drop it or produce them", sm)
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

// checkTracesToLogs: the trace -> logs link is a custom query that filters
// on the trace_id structured metadata (so lines joined by reconcile id,
// whose text never holds the id, are found too), tolerates an id without
// leading zeros, and narrows only by Loki stream labels the sidecar sets,
// each mapped from the span resource attribute that label comes from (so
// the values agree: one service identity). test/drilldown runs the query
// on the sidecar's real output.
func checkTracesToLogs(t *testing.T, tl map[string]any, tags []map[string]any) {
	t.Helper()
	if tl["customQuery"] != true {
		t.Errorf("tracesToLogsV2.customQuery must be true (the default query of older Grafanas is a line filter that misses joined lines): %v", tl)
	}
	q, _ := tl["query"].(string)
	if !strings.Contains(q, `| trace_id=~"0*$${__trace.traceId}"`) || !strings.HasPrefix(q, "{$${__tags}}") {
		t.Errorf("tracesToLogsV2.query = %q: want {$${__tags}} | trace_id=~\"0*$${__trace.traceId}\" (stream labels of the span's tags, trace_id metadata, ids without leading zeros; $$ escapes provisioning's env expansion)", q)
	}
	if strings.Contains(q, "|=") || strings.Contains(q, "|~") {
		t.Errorf("tracesToLogsV2.query = %q: a line filter misses the joined lines, whose text has no trace id", q)
	}
	fromAttr := map[string]string{}
	for _, l := range conventions.LokiLabels {
		fromAttr[l.Resource] = l.Label
	}
	var mapped []string
	for _, tag := range tags {
		key, _ := tag["key"].(string)
		val, _ := tag["value"].(string)
		if want, ok := fromAttr[key]; !ok || val != want {
			t.Errorf("tracesToLogsV2 tag %s -> %s: want a Loki stream label from that resource attribute (%q)", key, val, want)
		}
		mapped = append(mapped, val)
	}
	if !slices.Contains(mapped, conventions.LabelServiceName) {
		t.Errorf("tracesToLogsV2 tags %v must map %s to %s (the one service identity)", mapped, conventions.AttrServiceName, conventions.LabelServiceName)
	}
	if slices.Contains(mapped, conventions.LabelPod) {
		t.Errorf("tracesToLogsV2 tags %v narrow by pod: a trace may span pods of the service (leader handover, webhook server)", mapped)
	}
}
