package webhook

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestChartPodMonitorReadsWhatTheWebhookWrites: the chart's PodMonitor
// selects the label the webhook sets and copies the service-name annotation
// it writes onto the sidecar's series as service_name (Prometheus turns
// every character of a name outside [a-zA-Z0-9_] into "_" in the
// __meta_kubernetes_pod_annotation_<name> label).
func TestChartPodMonitorReadsWhatTheWebhookWrites(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "helm", "opsight", "templates", "podmonitor.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	pm := string(b)
	meta := "__meta_kubernetes_pod_annotation_" + regexp.MustCompile(`[^a-zA-Z0-9_]`).ReplaceAllString(AnnotationServiceName, "_")
	relabel := regexp.MustCompile(`(?m)^\s*- sourceLabels: \[` + regexp.QuoteMeta(meta) + `\]\n\s*targetLabel: service_name$`)
	if !relabel.MatchString(pm) {
		t.Errorf("podmonitor.yaml does not relabel %s (annotation %s) to service_name", meta, AnnotationServiceName)
	}
	if !strings.Contains(pm, LabelInjected+`: "true"`) {
		t.Errorf("podmonitor.yaml does not select label %s", LabelInjected)
	}
	// Without honorLabels the target's service_name would push the span
	// metrics' own service_name aside as exported_service_name.
	if !regexp.MustCompile(`(?m)^\s*honorLabels: true$`).MatchString(pm) {
		t.Errorf("podmonitor.yaml: honorLabels must be true")
	}
}
