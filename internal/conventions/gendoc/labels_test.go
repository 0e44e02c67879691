package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	c "github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/internal/selftelemetry"
)

var descRE = regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)

// TestDocumentedLabelsAreServed: the labels docs/conventions.md lists for a
// metric the sidecar serves are the labels internal/selftelemetry declares.
func TestDocumentedLabelsAreServed(t *testing.T) {
	m := selftelemetry.New()
	ch := make(chan *prometheus.Desc, 64)
	for _, col := range []prometheus.Collector{m.LogRecords, m.LogRisk, m.LogCorrelated, m.LogParseErrors, m.TailLagBytes,
		m.TailRotations, m.ExportFailed, m.ExportRefused, m.ExportAdjusted, m.ExportDeadLetter, m.SpanServiceMismatch,
		m.SpanDuration, m.SpanCalls} {
		col.Describe(ch)
	}
	close(ch)
	served := map[string]string{}
	for d := range ch {
		mm := descRE.FindStringSubmatch(d.String())
		if mm == nil {
			t.Fatalf("cannot read %s", d)
		}
		served[mm[1]] = strings.ReplaceAll(mm[2], ",", ", ")
	}
	documented := map[string]string{}
	for _, set := range [][]c.Metric{c.SpanMetrics, c.SidecarMetrics} {
		for _, metric := range set {
			documented[metric.Name] = strings.Join(metric.Labels, ", ")
		}
	}
	if len(served) < 13 {
		t.Fatalf("read only %d metric descriptions", len(served))
	}
	for name, labels := range served {
		doc, ok := documented[name]
		if !ok {
			t.Errorf("%s is served but not documented (add it to conventions.SidecarMetrics)", name)
			continue
		}
		if doc != labels {
			t.Errorf("%s: served with labels {%s}, documented {%s}", name, labels, doc)
		}
	}
}
