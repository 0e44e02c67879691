package operatorlogsreceiver

import (
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"

	"github.com/opsight/opsight/internal/configtest"
)

func loadConfig(t *testing.T, file, id string) (*Config, error) {
	t.Helper()
	return configtest.Load[Config](t, NewFactory().CreateDefaultConfig, file, id)
}

func TestLoadConfig(t *testing.T) {
	def, err := loadConfig(t, "config.yaml", "operatorlogs")
	if err != nil {
		t.Fatal(err)
	}
	want := createDefaultConfig().(*Config)
	want.Include = []string{"/var/log/pods/*/*/*.log"}
	if def.Source != SourceFile || def.API.TokenFile != DefaultTokenFile {
		t.Errorf("source defaults: %q %+v", def.Source, def.API)
	}
	if !equalConfig(def, want) {
		t.Errorf("defaults: got %+v, want %+v", def, want)
	}
	if def.StartAt != StartAtBeginning || def.PollInterval != 200*time.Millisecond || def.MaxLineSize != 262144 ||
		def.LongLines != LongLinesSplit || def.ForceFlushPeriod != time.Second || def.FingerprintSize != 1024 || def.Format != FormatAuto || !def.IncludeFilePath || def.Storage != nil {
		t.Errorf("unexpected defaults: %+v", def)
	}

	custom, err := loadConfig(t, "config.yaml", "operatorlogs/custom")
	if err != nil {
		t.Fatal(err)
	}
	storageID := component.MustNewIDWithName("file_storage", "checkpoints")
	want = &Config{
		Source: SourceFile, API: APIConfig{TokenFile: DefaultTokenFile, CAFile: DefaultCAFile},
		Include: []string{"/var/log/pods/ns_op-*/manager/*.log"}, Exclude: []string{"/var/log/pods/*/istio-proxy/*.log"},
		Format: FormatCRI, StartAt: StartAtEnd, PollInterval: 50 * time.Millisecond, MaxLineSize: 65536,
		LongLines: LongLinesTrunc, ForceFlushPeriod: 3 * time.Second, FingerprintSize: 2048, MaxBatchLines: 500, MaxBatchBytes: 524288,
		Storage: &storageID, IncludeFilePath: false,
	}
	if !equalConfig(custom, want) {
		t.Errorf("custom: got %+v, want %+v", custom, want)
	}

	api, err := loadConfig(t, "config.yaml", "operatorlogs/api")
	if err != nil {
		t.Fatal(err)
	}
	want = createDefaultConfig().(*Config)
	want.Source, want.Storage = SourceAPI, &storageID
	want.API = APIConfig{Endpoint: "https://10.96.0.1:443", Namespace: "widget-system", Pod: "widget-controller-7d9f",
		Container: "manager", TokenFile: DefaultTokenFile, CAFile: DefaultCAFile}
	if !equalConfig(api, want) {
		t.Errorf("api: got %+v, want %+v", api, want)
	}
}

func equalConfig(a, b *Config) bool {
	eqs := func(x, y []string) bool { return strings.Join(x, "\x00") == strings.Join(y, "\x00") }
	return a.Source == b.Source && a.API == b.API && eqs(a.Include, b.Include) && eqs(a.Exclude, b.Exclude) && a.Format == b.Format && a.StartAt == b.StartAt &&
		a.PollInterval == b.PollInterval && a.MaxLineSize == b.MaxLineSize && a.LongLines == b.LongLines && a.ForceFlushPeriod == b.ForceFlushPeriod &&
		a.FingerprintSize == b.FingerprintSize && a.MaxBatchLines == b.MaxBatchLines && a.MaxBatchBytes == b.MaxBatchBytes &&
		((a.Storage == nil) == (b.Storage == nil)) && (a.Storage == nil || *a.Storage == *b.Storage) && a.IncludeFilePath == b.IncludeFilePath
}

func TestBadConfigs(t *testing.T) {
	tests := []struct{ file, key string }{
		{"bad_no_include.yaml", "include:"},
		{"bad_format.yaml", "format:"},
		{"bad_start_at.yaml", "start_at:"},
		{"bad_long_lines.yaml", "long_lines:"},
		{"bad_max_line_size.yaml", "max_line_size:"},
		{"bad_poll_interval.yaml", "poll_interval:"},
		{"bad_force_flush_period.yaml", "force_flush_period:"},
		{"bad_fingerprint_size.yaml", "fingerprint_size:"},
		{"bad_glob.yaml", "include: bad glob"},
		{"bad_exclude_glob.yaml", "exclude: bad glob"},
		{"bad_max_batch_lines.yaml", "max_batch_lines:"},
		{"bad_max_batch_bytes.yaml", "max_batch_bytes:"},
		{"bad_source.yaml", "source:"},
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

func TestFactory(t *testing.T) {
	f := NewFactory()
	if f.Type().String() != "operatorlogs" {
		t.Errorf("type = %s", f.Type())
	}
	if f.LogsStability() != component.StabilityLevelAlpha {
		t.Errorf("stability = %v", f.LogsStability())
	}
}
