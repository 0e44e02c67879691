package opsightmetricsextension

import (
	"path/filepath"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
)

func loadConfig(t *testing.T, file, id string) (*Config, error) {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", file))
	if err != nil {
		t.Fatalf("load %s: %v", file, err)
	}
	sub, err := cm.Sub(id)
	if err != nil {
		t.Fatalf("sub %s: %v", id, err)
	}
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	if err := sub.Unmarshal(cfg); err != nil {
		return nil, err
	}
	return cfg, confmap.Validate(cfg)
}

func TestConfig(t *testing.T) {
	tests := []struct {
		id       string
		endpoint string
	}{
		{"opsightmetrics", ":9464"},
		{"opsightmetrics/custom", "127.0.0.1:19464"},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			cfg, err := loadConfig(t, "config.yaml", tt.id)
			if err != nil {
				t.Fatalf("valid config rejected: %v", err)
			}
			if cfg.NetAddr.Endpoint != tt.endpoint {
				t.Errorf("endpoint = %q, want %q", cfg.NetAddr.Endpoint, tt.endpoint)
			}
		})
	}
}

func TestBadConfigs(t *testing.T) {
	tests := []struct{ file, wantErr string }{
		{"bad_empty_endpoint.yaml", "endpoint must be set"},
		{"bad_endpoint_no_port.yaml", "not host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := loadConfig(t, tt.file, "opsightmetrics")
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestFactoryType(t *testing.T) {
	if got := NewFactory().Type(); got != component.MustNewType("opsightmetrics") {
		t.Fatalf("type = %v", got)
	}
}
