package redmetricsexporter

import (
	"strings"
	"testing"

	"github.com/opsight/opsight/internal/componentcheck"
	"github.com/opsight/opsight/internal/configtest"
)

func loadConfig(t *testing.T, file, id string) (*Config, error) {
	t.Helper()
	return configtest.Load[Config](t, NewFactory().CreateDefaultConfig, file, id)
}

func TestConfig(t *testing.T) {
	tests := []struct {
		id   string
		want *Config
	}{
		{"redmetrics", &Config{DimensionsCacheSize: DefaultDimensionsCacheSize}},
		{"redmetrics/tuned", &Config{DimensionsCacheSize: 500, ExcludeSpanKinds: []SpanKindName{"SPAN_KIND_INTERNAL", "SPAN_KIND_CLIENT"}}},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			cfg, err := loadConfig(t, "config.yaml", tt.id)
			if err != nil {
				t.Fatalf("valid config rejected: %v", err)
			}
			if diff := componentcheck.ConfigDiff(tt.want, cfg); diff != "" {
				t.Errorf("config differs:\n%s", diff)
			}
		})
	}
}

func TestBadConfigs(t *testing.T) {
	tests := []struct{ file, wantErr string }{
		{"bad_cache_size.yaml", "dimensions_cache_size must be > 0"},
		{"bad_span_kind.yaml", `'exclude_span_kinds[0]' unknown span kind "INTERNAL": use one of SPAN_KIND_UNSPECIFIED`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := loadConfig(t, tt.file, "redmetrics")
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestValidateNamesSpanKind: a configuration built in code (UnmarshalText
// never ran) with an unknown span kind is still refused.
func TestValidateNamesSpanKind(t *testing.T) {
	cfg := &Config{DimensionsCacheSize: 1, ExcludeSpanKinds: []SpanKindName{"INTERNAL"}}
	want := `exclude_span_kinds: unknown span kind "INTERNAL"`
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Validate() = %v, want it to contain %q", err, want)
	}
}
