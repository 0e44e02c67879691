package links

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// TestUIDsMatchTheChart keeps the default UIDs in step with the data
// sources the chart provisions.
func TestUIDsMatchTheChart(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "deploy", "grafana", "datasources.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Datasources []struct{ UID, Type string } `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range f.Datasources {
		got[d.Type] = d.UID
	}
	for typ, uid := range map[string]string{"prometheus": PrometheusUID, "tempo": TempoUID, "loki": LokiUID} {
		if got[typ] != uid {
			t.Errorf("%s data source uid %q in datasources.yaml, links use %q", typ, got[typ], uid)
		}
	}
}

func TestExplore(t *testing.T) {
	from, to := time.UnixMilli(1000), time.UnixMilli(2000)
	tests := []struct {
		kind, q, field string
	}{
		{"prometheus", `rate(x{a="b"}[5m])`, "expr"},
		{"loki", `{service_name="s"} | trace_id=~"0*ab"`, "expr"},
		{"tempo", "0123abcd", "query"},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			u, err := url.Parse(Config{GrafanaURL: "https://g.example/"}.Explore(tt.kind, tt.q, from, to))
			if err != nil {
				t.Fatal(err)
			}
			if u.Host != "g.example" || u.Path != "/explore" || u.Query().Get("schemaVersion") != "1" || u.Query().Get("orgId") != "1" {
				t.Errorf("url %s", u)
			}
			var panes map[string]struct {
				Datasource string           `json:"datasource"`
				Queries    []map[string]any `json:"queries"`
				Range      struct{ From, To string }
			}
			if err := json.Unmarshal([]byte(u.Query().Get("panes")), &panes); err != nil {
				t.Fatal(err)
			}
			p := panes["a"]
			if p.Datasource != tt.kind || len(p.Queries) != 1 || p.Queries[0][tt.field] != tt.q || p.Range.From != "1000" || p.Range.To != "2000" {
				t.Errorf("pane %+v", p)
			}
			if ds := p.Queries[0]["datasource"].(map[string]any); ds["uid"] != tt.kind || ds["type"] != tt.kind {
				t.Errorf("query datasource %v", ds)
			}
		})
	}
}

func TestQueries(t *testing.T) {
	s := Selector{Service: "etcd-operator", Namespace: "etcd-system"}
	tests := []struct{ got, want string }{
		// docs/drilldown.md: the trace → logs form, leading zeros optional.
		{s.TraceLogQL("00f3a1b2c3d4e5f60718293a4b5c6d7e"), `{service_name="etcd-operator", namespace="etcd-system"} | trace_id=~"0*f3a1b2c3d4e5f60718293a4b5c6d7e"`},
		{Selector{Service: "x", Cluster: "c"}.TraceLogQL("ab"), `{service_name="x", cluster="c"} | trace_id=~"0*ab"`},
		{s.LatencyPromQL("GET", "SPAN_KIND_CLIENT", 0.99), `histogram_quantile(0.99, sum by (le, revision) (rate(traces_span_metrics_duration_seconds_bucket{service_name="etcd-operator", namespace="etcd-system", span_name="GET", span_kind="SPAN_KIND_CLIENT"}[5m])))`},
		{s.SlowSpansTraceQL("GET", "SPAN_KIND_CLIENT", 45500*time.Microsecond, "v1.5.0", "zone-b", false), `{ resource.service.name = "etcd-operator" && resource.k8s.namespace.name = "etcd-system" && resource.service.version = "v1.5.0" && resource.cloud.availability_zone = "zone-b" && name = "GET" && kind = client && duration >= 45ms }`},
		{s.SlowSpansTraceQL("Reconcile", "SPAN_KIND_SERVER", 0, "", "", true), `{ resource.service.name = "etcd-operator" && resource.k8s.namespace.name = "etcd-system" && name = "Reconcile" && kind = server && status = error }`},
		{s.SlowSpansTraceQL("x", "SPAN_KIND_UNSPECIFIED", 2500*time.Microsecond, "", "", false), `{ resource.service.name = "etcd-operator" && resource.k8s.namespace.name = "etcd-system" && name = "x" && duration >= 2500us }`},
		{Selector{Service: `we"ird`}.RiskLogQL("etcd_timeout"), `sum by (revision) (count_over_time({service_name="we\"ird"} | risk=~"(^|.*,)etcd_timeout(,.*|$)" [1m]))`},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got  %s\nwant %s", tt.got, tt.want)
		}
	}
	if !strings.Contains(s.ErrorPromQL("Reconcile", "SPAN_KIND_SERVER"), `status_code="STATUS_CODE_ERROR"`) {
		t.Error("error query does not select errors")
	}
}
