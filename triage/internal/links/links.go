// Package links builds the queries (PromQL, TraceQL, LogQL) behind a
// finding and the Grafana Explore links that open them, so a person can go
// on by hand from where the triage stopped.
package links

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/opsight/opsight/internal/conventions"
)

// The data source UIDs deploy/grafana/datasources.yaml provisions (a test
// keeps them in step with that file).
const (
	PrometheusUID = "prometheus"
	TempoUID      = "tempo"
	LokiUID       = "loki"
)

// Config says where Grafana is and which data sources to open.
type Config struct {
	GrafanaURL    string // default http://localhost:3000
	OrgID         int    // default 1
	PrometheusUID string
	TempoUID      string
	LokiUID       string
}

func (c Config) withDefaults() Config {
	if c.GrafanaURL == "" {
		c.GrafanaURL = "http://localhost:3000"
	}
	if c.OrgID == 0 {
		c.OrgID = 1
	}
	if c.PrometheusUID == "" {
		c.PrometheusUID = PrometheusUID
	}
	if c.TempoUID == "" {
		c.TempoUID = TempoUID
	}
	if c.LokiUID == "" {
		c.LokiUID = LokiUID
	}
	return c
}

type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type query struct {
	RefID      string `json:"refId"`
	Datasource dsRef  `json:"datasource"`
	Expr       string `json:"expr,omitempty"`      // Prometheus, Loki
	QueryType  string `json:"queryType,omitempty"` // Tempo: traceql
	Query      string `json:"query,omitempty"`     // Tempo
}

type pane struct {
	Datasource string    `json:"datasource"`
	Queries    []query   `json:"queries"`
	Range      timeRange `json:"range"`
}

type timeRange struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Explore is the Grafana Explore URL (schemaVersion 1, Grafana 10+) that
// runs q on the data source of kind ("prometheus", "tempo", "loki") over
// [from, to].
func (c Config) Explore(kind, q string, from, to time.Time) string {
	c = c.withDefaults()
	uid := map[string]string{"prometheus": c.PrometheusUID, "tempo": c.TempoUID, "loki": c.LokiUID}[kind]
	qq := query{RefID: "A", Datasource: dsRef{Type: kind, UID: uid}}
	if kind == "tempo" {
		qq.QueryType, qq.Query = "traceql", q
	} else {
		qq.Expr = q
	}
	p := map[string]pane{"a": {Datasource: uid, Queries: []query{qq},
		Range: timeRange{From: strconv.FormatInt(from.UnixMilli(), 10), To: strconv.FormatInt(to.UnixMilli(), 10)}}}
	b, _ := json.Marshal(p) // plain structs: cannot fail
	v := url.Values{}
	v.Set("schemaVersion", "1")
	v.Set("panes", string(b))
	v.Set("orgId", strconv.Itoa(c.OrgID))
	return strings.TrimRight(c.GrafanaURL, "/") + "/explore?" + v.Encode()
}

// Selector is who a query is about.
type Selector struct {
	Service, Namespace, Cluster string
}

func quote(s string) string { return strconv.Quote(s) }

// matchers spells the selector as label matchers in the given names.
func (s Selector) matchers(service, namespace, cluster string) []string {
	m := []string{service + "=" + quote(s.Service)}
	if s.Namespace != "" {
		m = append(m, namespace+"="+quote(s.Namespace))
	}
	if s.Cluster != "" {
		m = append(m, cluster+"="+quote(s.Cluster))
	}
	return m
}

func (s Selector) spanMetric(span, kind string, extra ...string) string {
	m := s.matchers("service_name", "namespace", "cluster")
	m = append(m, "span_name="+quote(span), "span_kind="+quote(kind))
	m = append(m, extra...)
	return "{" + strings.Join(m, ", ") + "}"
}

// LatencyPromQL is the quantile of a span's duration by revision, from the
// span metrics (CONVENTIONS.md: no zone or pod label there; the split by
// zone and pod is in the traces).
func (s Selector) LatencyPromQL(span, kind string, q float64) string {
	return fmt.Sprintf("histogram_quantile(%g, sum by (le, revision) (rate(%s_bucket%s[5m])))", q, conventions.MetricSpanDuration, s.spanMetric(span, kind))
}

// ErrorPromQL is a span's error share by revision.
func (s Selector) ErrorPromQL(span, kind string) string {
	return fmt.Sprintf("sum by (revision) (rate(%s%s[5m])) / sum by (revision) (rate(%s%s[5m]))",
		conventions.MetricSpanCalls, s.spanMetric(span, kind, `status_code="STATUS_CODE_ERROR"`), conventions.MetricSpanCalls, s.spanMetric(span, kind))
}

// SlowSpansTraceQL finds spans of a name slower than a duration, narrowed
// to a revision and zone when given.
func (s Selector) SlowSpansTraceQL(span, kind string, slowerThan time.Duration, revision, zone string, errorsOnly bool) string {
	c := []string{"resource.service.name = " + quote(s.Service)}
	if s.Namespace != "" {
		c = append(c, "resource.k8s.namespace.name = "+quote(s.Namespace))
	}
	if revision != "" {
		c = append(c, "resource.service.version = "+quote(revision))
	}
	if zone != "" {
		c = append(c, "resource.cloud.availability_zone = "+quote(zone))
	}
	c = append(c, "name = "+quote(span))
	if k := strings.ToLower(strings.TrimPrefix(kind, "SPAN_KIND_")); k != "" && k != "unspecified" {
		c = append(c, "kind = "+k)
	}
	if errorsOnly {
		c = append(c, "status = error")
	} else if slowerThan > 0 {
		c = append(c, "duration >= "+traceqlDuration(slowerThan))
	}
	return "{ " + strings.Join(c, " && ") + " }"
}

// traceqlDuration spells a duration as TraceQL reads it, whole units.
func traceqlDuration(d time.Duration) string {
	switch {
	case d >= 10*time.Millisecond:
		// Whole milliseconds, rounded down: a few more spans, never fewer.
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d >= time.Millisecond:
		return strconv.FormatInt(d.Microseconds(), 10) + "us"
	}
	return strconv.FormatInt(d.Nanoseconds(), 10) + "ns"
}

// TraceLogQL is the trace → logs query of docs/drilldown.md: the
// structured metadata trace_id, so lines the sidecar joined are found too,
// and 0* so an id printed without leading zeros still matches.
func (s Selector) TraceLogQL(traceID string) string {
	return "{" + strings.Join(s.matchers(conventions.LabelServiceName, conventions.LabelNamespace, conventions.LabelCluster), ", ") + `} | trace_id=~"0*` + strings.TrimLeft(traceID, "0") + `"`
}

// RiskLogQL counts the lines of a risk pattern by revision (risk is
// structured metadata holding comma-separated ids).
func (s Selector) RiskLogQL(pattern string) string {
	sel := "{" + strings.Join(s.matchers(conventions.LabelServiceName, conventions.LabelNamespace, conventions.LabelCluster), ", ") + "}"
	return fmt.Sprintf(`sum by (revision) (count_over_time(%s | risk=~"(^|.*,)%s(,.*|$)" [1m]))`, sel, pattern)
}
