package operatorenrichprocessor

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opsight/opsight/internal/componentcheck"
	"github.com/opsight/opsight/internal/configtest"
)

func loadConfig(t *testing.T, file, sub string) (*Config, error) {
	t.Helper()
	return configtest.Load[Config](t, NewFactory().CreateDefaultConfig, file, sub)
}

func TestLoadConfig(t *testing.T) {
	def, err := loadConfig(t, "config.yaml", "operatorenrich")
	if err != nil {
		t.Fatal(err)
	}
	if diff := componentcheck.ConfigDiff(createDefaultConfig(), def); diff != "" {
		t.Errorf("bare section differs from the defaults:\n%s", diff)
	}
	want := &Config{
		Revision: "v1.4.2", RevisionFile: "/etc/podinfo/revision", ServiceName: "my-operator",
		Cluster: "prod-eu", Namespace: "operators", Pod: "my-operator-7d9f", Container: "manager",
		Node: "node-1", Zone: "eu-west-1a", NodePool: "system",
		Risk: RiskConfig{Patterns: []PatternConfig{
			{ID: "quota_exceeded", Severity: "critical", Needles: []string{"exceeded quota", "quota exceeded"}},
			{ID: "slow_reconcile", Needles: []string{"reconcile took"}},
		}},
		Correlation: CorrelationConfig{
			LogKey: "reconcile_id", SpanAttribute: "opsight.reconcile_id", Wait: 500 * time.Millisecond,
			ActiveWindow: 30 * time.Second, IndexSize: 5000, IndexTTL: 2 * time.Minute, MaxHeld: 2000,
		},
	}
	full, err := loadConfig(t, "config.yaml", "operatorenrich/full")
	if err != nil {
		t.Fatal(err)
	}
	if diff := componentcheck.ConfigDiff(want, full); diff != "" {
		t.Errorf("full:\n%s", diff)
	}
	if ps := full.patterns(); len(ps) != len(createDefaultConfig().patterns())+2 || ps[len(ps)-1].Severity != "warning" {
		t.Errorf("effective patterns: %d, last severity %q", len(ps), ps[len(ps)-1].Severity)
	}
}

func TestDefaultConfig(t *testing.T) {
	c := createDefaultConfig()
	if c.Correlation.Wait != 2*time.Second || c.Correlation.ActiveWindow != time.Minute || c.Correlation.IndexSize != 100000 ||
		c.Correlation.IndexTTL != 5*time.Minute || c.Correlation.MaxHeld != 10000 || c.Correlation.LogKey != "reconcileID" ||
		c.Correlation.SpanAttribute != "reconcile.id" {
		t.Errorf("defaults %+v", c.Correlation)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}

func TestBadConfigs(t *testing.T) {
	tests := map[string]string{ // file → what the error must name
		"bad_pattern_id.yaml":           "risk.patterns[0].id",
		"bad_pattern_duplicate.yaml":    "risk.patterns[0].id",
		"bad_pattern_severity.yaml":     `'risk.patterns[0].severity' "high" is not one of critical, warning, info`,
		"bad_pattern_needles.yaml":      "risk.patterns[0].needles",
		"bad_pattern_empty_needle.yaml": "risk.patterns[0].needles[1]",
		"bad_disable_defaults.yaml":     "risk.disable_defaults",
		"bad_wait.yaml":                 "correlation.wait",
		"bad_negative_wait.yaml":        "correlation.wait",
		"bad_index_size.yaml":           "correlation.index_size",
		"bad_index_ttl.yaml":            "correlation.index_ttl",
		"bad_active_window.yaml":        "correlation.active_window",
		"bad_max_held.yaml":             "correlation.max_held",
		"bad_log_key.yaml":              "correlation.log_key",
		"bad_span_attribute.yaml":       "correlation.span_attribute",
		"bad_unknown_key.yaml":          "revison",
	}
	matches, _ := filepath.Glob("testdata/bad_*.yaml")
	if len(matches) != len(tests) {
		t.Errorf("%d bad_*.yaml fixtures, %d cases: keep them in step", len(matches), len(tests))
	}
	for file, want := range tests {
		t.Run(file, func(t *testing.T) {
			_, err := loadConfig(t, file, "")
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("error %v, want one naming %q", err, want)
			}
		})
	}
}
