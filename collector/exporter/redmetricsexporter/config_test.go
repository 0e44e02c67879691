package redmetricsexporter

import (
	"reflect"
	"strings"
	"testing"

	"github.com/opsight/opsight/internal/configtest"
)

func loadConfig(t *testing.T, file, id string) (*Config, error) {
	t.Helper()
	return configtest.Load[Config](t, NewFactory().CreateDefaultConfig, file, id)
}

func TestConfig(t *testing.T) {
	tests := []struct {
		id       string
		size     int
		excluded []string
	}{
		{"redmetrics", DefaultDimensionsCacheSize, nil},
		{"redmetrics/tuned", 500, []string{"SPAN_KIND_INTERNAL", "SPAN_KIND_CLIENT"}},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			cfg, err := loadConfig(t, "config.yaml", tt.id)
			if err != nil {
				t.Fatalf("valid config rejected: %v", err)
			}
			if cfg.DimensionsCacheSize != tt.size || !reflect.DeepEqual(cfg.ExcludeSpanKinds, tt.excluded) {
				t.Errorf("got %d %v, want %d %v", cfg.DimensionsCacheSize, cfg.ExcludeSpanKinds, tt.size, tt.excluded)
			}
		})
	}
}

func TestBadConfigs(t *testing.T) {
	tests := []struct{ file, wantErr string }{
		{"bad_cache_size.yaml", "dimensions_cache_size must be > 0"},
		{"bad_span_kind.yaml", `exclude_span_kinds: unknown span kind "INTERNAL"`},
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
