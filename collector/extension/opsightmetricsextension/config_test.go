package opsightmetricsextension

import (
	"strings"
	"testing"

	"go.opentelemetry.io/collector/component"

	"github.com/opsight/opsight/internal/configtest"
)

func loadConfig(t *testing.T, file, id string) (*Config, error) {
	t.Helper()
	return configtest.Load[Config](t, NewFactory().CreateDefaultConfig, file, id)
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
