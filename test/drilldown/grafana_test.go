package drilldown

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// datasources is the provisioning file the chart ships (the chart's copy
// must equal it; deploy/helm's chart test checks).
var datasources = filepath.Join("..", "..", "deploy", "grafana", "datasources.yaml")

func loadEntries(t *testing.T) []Entry {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "entries.json"))
	if err != nil {
		t.Fatal(err)
	}
	var es []Entry
	if err := json.Unmarshal(b, &es); err != nil {
		t.Fatal(err)
	}
	return es
}

// fixtureSpan is the span of trace 00f3a1b2… in testdata/entries.json as
// Tempo returns it, with the trace id as Grafana prints it.
func fixtureSpan(traceID string) Span {
	return Span{TraceID: traceID, SpanID: "1111111111111111", Name: "Reconcile",
		Process: []KV{{"service.name", "etcd-operator"}, {"service.version", "v1.4.0"}, {"k8s.cluster.name", "prod-eu-1"},
			{"k8s.namespace.name", "etcd-system"}, {"k8s.pod.name", "etcd-operator-7d9f8c6b5d-x2k9p"}},
		Attrs: []KV{{"reconcile.id", "r-a"}, {"controller", "etcdcluster"}}}
}

// TestQueryForms documents, on a hand-made set of Loki entries, what each
// form of the trace → logs query returns for a trace whose id has leading
// zeros, printed in full and without them. Entries 0 (the id in the line,
// correlation=field) and 1 (joined by reconcile id: the id only in
// structured metadata) are the trace's lines in the span's service and
// window; 2 is another trace, 3 has no trace, 4 is the trace in another
// service's stream, 5 is outside the time window.
//
// Only the custom query finds both lines whatever the print: the older
// line filter never sees a joined line, the newer label_format form misses
// it when the id is printed without its leading zeros.
func TestQueryForms(t *testing.T) {
	cfg, err := LoadTracesToLogs(datasources)
	if err != nil {
		t.Fatal(err)
	}
	entries := loadEntries(t)
	const full = "00f3a1b2c3d4e5f60718293a4b5c6d7e"
	trimmed := strings.TrimLeft(full, "0")
	start := time.Date(2026, 11, 30, 10, 0, 0, 50e6, time.UTC)
	from, to, err := cfg.Window(start, start.Add(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		form    Form
		traceID string
		want    []int // indices into entries.json
	}{
		{FormCustom, full, []int{0, 1}},
		{FormCustom, trimmed, []int{0, 1}},
		{FormLineFilter, full, []int{0}},
		{FormLineFilter, trimmed, []int{0}},
		{FormLabelFormat, full, []int{0, 1}},
		{FormLabelFormat, trimmed, []int{0}},
	} {
		t.Run(tc.form.String()+"/"+tc.traceID, func(t *testing.T) {
			q, err := cfg.Build(fixtureSpan(tc.traceID), tc.form)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Select(entries, q, from, to)
			if err != nil {
				t.Fatal(err)
			}
			var idx []int
			for _, g := range got {
				idx = append(idx, slices.IndexFunc(entries, func(e Entry) bool { return e.Line == g.Line && e.Time.Equal(g.Time) }))
			}
			if !slices.Equal(idx, tc.want) {
				t.Errorf("%s\nreturned entries %v, want %v", q, idx, tc.want)
			}
		})
	}
}

// TestBuildCustomQuery: what Grafana sends Loki for the shipped setting,
// narrowed by the stream labels the span has and no others.
func TestBuildCustomQuery(t *testing.T) {
	cfg, err := LoadTracesToLogs(datasources)
	if err != nil {
		t.Fatal(err)
	}
	noCluster := fixtureSpan("f3a1")
	noCluster.Process = slices.DeleteFunc(slices.Clone(noCluster.Process), func(kv KV) bool { return kv.Key == "k8s.cluster.name" })
	for _, tc := range []struct {
		name string
		span Span
		want string
	}{
		{"every tag", fixtureSpan("f3a1"),
			`{service_name="etcd-operator", cluster="prod-eu-1", namespace="etcd-system"} | trace_id=~"0*f3a1"`},
		{"no cluster attribute: no cluster label", noCluster,
			`{service_name="etcd-operator", namespace="etcd-system"} | trace_id=~"0*f3a1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cfg.Build(tc.span, FormCustom)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("query\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestBuildInterpolation: Grafana's variables, and no link when one is
// missing (why the shipped query uses ${__tags} rather than
// ${__span.tags["k8s.namespace.name"]}).
func TestBuildInterpolation(t *testing.T) {
	span := fixtureSpan("abc")
	for _, tc := range []struct {
		query, want, err string
	}{
		{`{service_name="${__span.tags["service.name"]}"} | trace_id="${__trace.traceId}"`, `{service_name="etcd-operator"} | trace_id="abc"`, ""},
		{`{service_name="${__span.tags["service.name"]}"} | span_id="${__span.spanId}" |= "${__span.name}"`,
			`{service_name="etcd-operator"} | span_id="1111111111111111" |= "Reconcile"`, ""},
		{`{x="${__span.tags.controller}"}`, `{x="etcdcluster"}`, ""},
		{`{ns="${__span.tags["k8s.node.name"]}"}`, "", `variables ${__span.tags["k8s.node.name"]} are not defined`},
		{`{a="$__unknown"}`, "", "$__unknown"},
	} {
		cfg := TracesToLogs{CustomQuery: true, Query: tc.query}
		got, err := cfg.Build(span, FormCustom)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: err %v, want %q", tc.query, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("%s: got %q, %v; want %q", tc.query, got, err, tc.want)
		}
	}
	if _, err := (TracesToLogs{}).Build(span, FormLineFilter); err == nil {
		t.Error("default form without any configured tag on the span: want no link (an error)")
	}
}
