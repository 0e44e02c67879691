package operatorlogsreceiver

import (
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"

	"github.com/opsight/opsight/internal/componentcheck"
	"github.com/opsight/opsight/internal/configtest"
)

func loadConfig(t *testing.T, file, id string) (*Config, error) {
	t.Helper()
	return configtest.Load[Config](t, NewFactory().CreateDefaultConfig, file, id)
}

func TestLoadConfig(t *testing.T) {
	storageID := component.MustNewIDWithName("file_storage", "checkpoints")
	tests := []struct {
		id   string
		want func() *Config
	}{
		{"operatorlogs", func() *Config {
			c := createDefaultConfig().(*Config)
			c.Include = []string{"/var/log/pods/*/*/*.log"}
			return c
		}},
		{"operatorlogs/custom", func() *Config {
			return &Config{
				Source: SourceFile, API: APIConfig{TokenFile: DefaultTokenFile, CAFile: DefaultCAFile},
				Include: []string{"/var/log/pods/ns_op-*/manager/*.log"}, Exclude: []string{"/var/log/pods/*/istio-proxy/*.log"},
				Format: FormatCRI, StartAt: StartAtEnd, PollInterval: 50 * time.Millisecond, MaxLineSize: 65536,
				LongLines: LongLinesTrunc, ForceFlushPeriod: 3 * time.Second, FingerprintSize: 2048, MaxBatchLines: 500, MaxBatchBytes: 524288,
				Storage: &storageID, IncludeFilePath: false,
			}
		}},
		{"operatorlogs/api", func() *Config {
			c := createDefaultConfig().(*Config)
			c.Source, c.Storage = SourceAPI, &storageID
			c.API = APIConfig{Endpoint: "https://10.96.0.1:443", Namespace: "widget-system", Pod: "widget-controller-7d9f",
				Container: "manager", TokenFile: DefaultTokenFile, CAFile: DefaultCAFile}
			return c
		}},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			got, err := loadConfig(t, "config.yaml", tt.id)
			if err != nil {
				t.Fatal(err)
			}
			if diff := componentcheck.ConfigDiff(tt.want(), got); diff != "" {
				t.Errorf("config differs from the expected one:\n%s", diff)
			}
		})
	}
}

// TestDefaults pins the documented defaults (README.md), which TestLoadConfig
// takes from createDefaultConfig.
func TestDefaults(t *testing.T) {
	want := &Config{
		Source: SourceFile, API: APIConfig{TokenFile: DefaultTokenFile, CAFile: DefaultCAFile},
		Format: FormatAuto, StartAt: StartAtBeginning, PollInterval: 200 * time.Millisecond, MaxLineSize: 262144,
		LongLines: LongLinesSplit, ForceFlushPeriod: time.Second, FingerprintSize: 1024,
		MaxBatchLines: createDefaultConfig().(*Config).MaxBatchLines, MaxBatchBytes: createDefaultConfig().(*Config).MaxBatchBytes,
		IncludeFilePath: true,
	}
	if diff := componentcheck.ConfigDiff(want, createDefaultConfig()); diff != "" {
		t.Errorf("defaults differ from the documented ones:\n%s", diff)
	}
}

func TestBadConfigs(t *testing.T) {
	tests := []struct{ file, key string }{
		{"bad_no_include.yaml", "include:"},
		{"bad_format.yaml", `'format' "syslog" is not one of auto, cri, docker, json`},
		{"bad_start_at.yaml", `'start_at' "middle" is not one of beginning, end`},
		{"bad_long_lines.yaml", `'long_lines' "drop" is not one of split, truncate`},
		{"bad_max_line_size.yaml", "max_line_size:"},
		{"bad_poll_interval.yaml", "poll_interval:"},
		{"bad_force_flush_period.yaml", "force_flush_period:"},
		{"bad_fingerprint_size.yaml", "fingerprint_size:"},
		{"bad_glob.yaml", "include: bad glob"},
		{"bad_exclude_glob.yaml", "exclude: bad glob"},
		{"bad_max_batch_lines.yaml", "max_batch_lines:"},
		{"bad_max_batch_bytes.yaml", "max_batch_bytes:"},
		{"bad_source.yaml", `'source' "journald" is not one of file, api`},
		{"bad_api_no_pod.yaml", "api.pod:"},
		{"bad_api_no_pod.yaml", "api.container:"},
		{"bad_api_endpoint.yaml", "api.endpoint:"},
	}
	for _, tt := range tests {
		t.Run(tt.file+"/"+tt.key, func(t *testing.T) {
			_, err := loadConfig(t, tt.file, "operatorlogs")
			if err == nil {
				t.Fatal("expected an error")
			}
			if !strings.Contains(err.Error(), tt.key) {
				t.Errorf("error %q does not name %q", err, tt.key)
			}
		})
	}
}

// TestValidateNamesEnumKeys: a configuration built in code (not loaded, so
// UnmarshalText never ran) with a bad value is still refused by Validate,
// naming the key and the allowed values.
func TestValidateNamesEnumKeys(t *testing.T) {
	tests := []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.Source = "journald" }, `source: "journald" is not one of file, api`},
		{func(c *Config) { c.Format = "syslog" }, `format: "syslog" is not one of auto, cri, docker, json`},
		{func(c *Config) { c.StartAt = "middle" }, `start_at: "middle" is not one of beginning, end`},
		{func(c *Config) { c.LongLines = "drop" }, `long_lines: "drop" is not one of split, truncate`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			cfg := createDefaultConfig().(*Config)
			cfg.Include = []string{"/var/log/pods/*/*/*.log"}
			tt.edit(cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestFactory(t *testing.T) {
	f := NewFactory()
	if f.Type().String() != "operatorlogs" {
		t.Errorf("type = %s", f.Type())
	}
	if f.LogsStability() != component.StabilityLevelAlpha {
		t.Errorf("stability = %v", f.LogsStability())
	}
}
