package main

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/otelcol"
)

// The configuration the environment gives must load and validate against
// the real distribution (every component type exists, every key is known),
// with and without the backends set.
func TestEnvConfigDryRun(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
	}{
		{"embedded default", map[string]string{}},
		{"loki and tempo", map[string]string{
			"OPSIGHT_LOKI_URL":   "http://loki:3100/loki/api/v1/push",
			"OPSIGHT_TRACES_URL": "http://tempo:4318",
		}},
		{"pod defaults", map[string]string{"OPSIGHT_LOG_INCLUDE": "", "POD_NAME": "op-0", "POD_NAMESPACE": "ops", "CONTAINER_NAME": "manager"}},
		{"api log source", map[string]string{"OPSIGHT_LOG_SOURCE": "api", "OPSIGHT_LOG_INCLUDE": "",
			"POD_NAME": "op-0", "POD_NAMESPACE": "ops", "CONTAINER_NAME": "manager"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("OPSIGHT_LOG_INCLUDE", "/var/log/pods/*/manager/*.log")
			t.Setenv("OPSIGHT_STATE_DIR", t.TempDir())
			t.Setenv("OPSIGHT_REVISION", "v1.2.3")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			col, err := otelcol.NewCollector(collectorSettings())
			if err != nil {
				t.Fatal(err)
			}
			if err := col.DryRun(context.Background()); err != nil {
				t.Fatalf("env configuration does not validate: %v", err)
			}
		})
	}
}

// Without a log location the sidecar refuses to start and says what to set.
func TestEnvConfigMissingInclude(t *testing.T) {
	t.Setenv("OPSIGHT_LOG_INCLUDE", "")
	t.Setenv("POD_NAME", "")
	t.Setenv("POD_NAMESPACE", "")
	col, err := otelcol.NewCollector(collectorSettings())
	if err != nil {
		t.Fatal(err)
	}
	err = col.DryRun(context.Background())
	if err == nil {
		t.Fatal("started with no log files to tail")
	}
	for _, want := range []string{"OPSIGHT_LOG_INCLUDE", "POD_NAME"} {
		if !contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
