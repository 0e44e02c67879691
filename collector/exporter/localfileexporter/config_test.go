package localfileexporter

import (
	"strings"
	"testing"

	"go.opentelemetry.io/collector/component/componenttest"

	"github.com/opsight/opsight/internal/configtest"
)

func loadConfig(t *testing.T, file, id string) (*Config, error) {
	t.Helper()
	return configtest.Load[Config](t, createDefaultConfig, file, id)
}

func TestConfigStruct(t *testing.T) {
	if err := componenttest.CheckConfigStruct(createDefaultConfig()); err != nil {
		t.Fatal(err)
	}
}

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		id   string
		want Config
	}{
		{"localfile", Config{Directory: "/var/lib/opsight/out", MaxFileBytes: 64 << 20, MaxFiles: 10}},
		{"localfile/custom", Config{Directory: "/tmp/opsight-out", MaxFileBytes: 1 << 20, MaxFiles: 0}},
	}
	for _, tt := range tests {
		got, err := loadConfig(t, "config.yaml", tt.id)
		if err != nil {
			t.Fatalf("%s: %v", tt.id, err)
		}
		if *got != tt.want {
			t.Errorf("%s: got %+v, want %+v", tt.id, *got, tt.want)
		}
	}
}

func TestBadConfigs(t *testing.T) {
	tests := []struct{ file, want string }{
		{"bad_no_directory.yaml", "directory: required"},
		{"bad_max_file_bytes.yaml", "max_file_bytes: 0 must be positive"},
		{"bad_max_files.yaml", "max_files: -1"},
	}
	for _, tt := range tests {
		_, err := loadConfig(t, tt.file, "localfile")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err %v, want it to mention %q", tt.file, err, tt.want)
		}
	}
}
