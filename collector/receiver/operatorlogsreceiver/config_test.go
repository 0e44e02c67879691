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
	if !equalConfig(def, want) {
		t.Errorf("defaults: got %+v, want %+v", def, want)
	}
	if def.StartAt != StartAtBeginning || def.PollInterval != 200*time.Millisecond || def.MaxLineSize != 262144 ||
		def.LongLines != LongLinesSplit || def.FingerprintSize != 1024 || def.Format != FormatAuto || !def.IncludeFilePath || def.Storage != nil {
		t.Errorf("unexpected defaults: %+v", def)
	}

	custom, err := loadConfig(t, "config.yaml", "operatorlogs/custom")
	if err != nil {
		t.Fatal(err)
	}
	storageID := component.MustNewIDWithName("file_storage", "checkpoints")
	want = &Config{
		Include: []string{"/var/log/pods/ns_op-*/manager/*.log"}, Exclude: []string{"/var/log/pods/*/istio-proxy/*.log"},
		Format: FormatCRI, StartAt: StartAtEnd, PollInterval: 50 * time.Millisecond, MaxLineSize: 65536,
		LongLines: LongLinesTrunc, FingerprintSize: 2048, MaxBatchLines: 500, MaxBatchBytes: 524288,
		Storage: &storageID, IncludeFilePath: false,
	}
	if !equalConfig(custom, want) {
		t.Errorf("custom: got %+v, want %+v", custom, want)
	}
}

func equalConfig(a, b *Config) bool {
	eqs := func(x, y []string) bool { return strings.Join(x, "\x00") == strings.Join(y, "\x00") }
	return eqs(a.Include, b.Include) && eqs(a.Exclude, b.Exclude) && a.Format == b.Format && a.StartAt == b.StartAt &&
		a.PollInterval == b.PollInterval && a.MaxLineSize == b.MaxLineSize && a.LongLines == b.LongLines &&
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
		{"bad_fingerprint_size.yaml", "fingerprint_size:"},
		{"bad_glob.yaml", "include: bad glob"},
		{"bad_exclude_glob.yaml", "exclude: bad glob"},
		{"bad_max_batch_lines.yaml", "max_batch_lines:"},
		{"bad_max_batch_bytes.yaml", "max_batch_bytes:"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
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
