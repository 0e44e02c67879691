package adaptivesamplingprocessor

import (
	"strings"
	"testing"
	"time"

	"github.com/opsight/opsight/internal/configtest"
)

func loadConfig(t *testing.T, file, id string) (*Config, error) {
	t.Helper()
	return configtest.Load[Config](t, NewFactory().CreateDefaultConfig, file, id)
}

func TestConfig(t *testing.T) {
	tests := []struct {
		id   string
		want Config
	}{
		{"adaptivesampling", Config{BaselineRatio: 0.1, KeyAttribute: "service.name", Window: time.Minute,
			P99Threshold: 2 * time.Second, MinSamples: 20, Cooldown: 5 * time.Minute, MaxKeys: 1000}},
		{"adaptivesampling/zone", Config{BaselineRatio: 0.05, KeyAttribute: "cloud.availability_zone", Window: 30 * time.Second,
			P99Threshold: 500 * time.Millisecond, ErrorRatioThreshold: 0.05, MinSamples: 50, Cooldown: 10 * time.Minute, MaxKeys: 50}},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			cfg, err := loadConfig(t, "config.yaml", tt.id)
			if err != nil {
				t.Fatalf("valid config rejected: %v", err)
			}
			if *cfg != tt.want {
				t.Errorf("got %+v\nwant %+v", *cfg, tt.want)
			}
		})
	}
}

func TestBadConfigs(t *testing.T) {
	tests := []struct{ file, wantErr string }{
		{"bad_ratio.yaml", "baseline_ratio must be within [0, 1]"},
		{"bad_no_trigger.yaml", "set p99_threshold or error_ratio_threshold"},
		{"bad_key_attribute.yaml", "key_attribute must be set"},
		{"bad_window.yaml", "window must be > 0"},
		{"bad_max_keys.yaml", "max_keys must be >= 1"},
		{"bad_error_ratio.yaml", "error_ratio_threshold must be within [0, 1]"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := loadConfig(t, tt.file, "adaptivesampling")
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
