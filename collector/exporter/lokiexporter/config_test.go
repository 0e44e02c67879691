package lokiexporter

import (
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configcompression"
	"go.opentelemetry.io/collector/config/configoptional"

	"github.com/opsight/opsight/internal/componentcheck"
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
	def, err := loadConfig(t, "config.yaml", "loki")
	if err != nil {
		t.Fatalf("default config rejected: %v", err)
	}
	if def.Encoding != EncodingProtobuf || def.ClientConfig.Timeout != 30*time.Second {
		t.Errorf("defaults: encoding %q timeout %v", def.Encoding, def.ClientConfig.Timeout)
	}
	q := def.QueueConfig.Get()
	if q == nil || q.NumConsumers != 1 || !q.BlockOnOverflow || q.StorageID != nil {
		t.Errorf("default queue: %+v", q)
	}
	if !def.RetryConfig.Enabled || def.RetryConfig.MaxElapsedTime != 0 {
		t.Errorf("default retry: %+v", def.RetryConfig)
	}
	// Loki 3.x's limits_config defaults (configuration.md, troubleshoot-ingest.md).
	wantLimits := LimitsConfig{
		MaxLineSize: 262144, RejectOldSamplesMaxAge: 168 * time.Hour, CreationGracePeriod: 10 * time.Minute,
		OutOfOrderWindow: time.Hour, MaxLabelNamesPerSeries: 15, MaxLabelNameLength: 1024, MaxLabelValueLength: 2048,
		MaxStructuredMetadataSize: 65536, MaxStructuredMetadataEntriesCount: 128,
	}
	if def.Limits != wantLimits {
		t.Errorf("default limits %+v\nwant %+v", def.Limits, wantLimits)
	}
	if def.DeadLetter.Directory != "" || def.DeadLetter.MaxBytes != 256<<20 {
		t.Errorf("default dead_letter %+v", def.DeadLetter)
	}

	want := createDefaultConfig().(*Config)
	want.ClientConfig.Endpoint = "http://localhost:3100/loki/api/v1/push"
	if diff := componentcheck.ConfigDiff(want, def); diff != "" {
		t.Errorf("loki: only the endpoint should differ from the defaults:\n%s", diff)
	}

	full, err := loadConfig(t, "config.yaml", "loki/full")
	if err != nil {
		t.Fatalf("full config rejected: %v", err)
	}
	want = createDefaultConfig().(*Config)
	want.ClientConfig.Endpoint = "https://loki.example.com/loki/api/v1/push"
	want.ClientConfig.Compression = configcompression.TypeGzip
	want.ClientConfig.Timeout = 10 * time.Second
	want.ClientConfig.Headers.Set("X-Custom", "value")
	want.Encoding = EncodingJSON
	want.TenantID = "team-a"
	want.BasicAuth = configoptional.Some(BasicAuthConfig{Username: "opsight", Password: "s3cret"})
	want.Labels.Extra = map[string]string{"deployment": "k8s.deployment.name", "node_pool": "k8s.node_pool.name"}
	storage := component.MustNewID("file_storage")
	wq := want.QueueConfig.Get()
	wq.StorageID, wq.QueueSize, wq.NumConsumers = &storage, 5000, 1
	want.RetryConfig.InitialInterval, want.RetryConfig.MaxInterval, want.RetryConfig.MaxElapsedTime = 2*time.Second, 20*time.Second, 0
	want.Limits = LimitsConfig{
		MaxLineSize: 131072, RejectOldSamplesMaxAge: 72 * time.Hour, CreationGracePeriod: 5 * time.Minute,
		OutOfOrderWindow: 30 * time.Minute, MaxLabelNamesPerSeries: 15, MaxLabelNameLength: 512, MaxLabelValueLength: 1024,
		MaxStructuredMetadataSize: 32768, MaxStructuredMetadataEntriesCount: 64,
	}
	want.DeadLetter = DeadLetterConfig{Directory: "/var/lib/opsight/dead-letter", MaxBytes: 104857600}
	if diff := componentcheck.ConfigDiff(want, full); diff != "" {
		t.Errorf("loki/full:\n%s", diff)
	}
}

func TestByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ByteSize
		ok   bool
	}{
		{"262144", 262144, true}, {"256KB", 262144, true}, {"256 KiB", 262144, true}, {"64kb", 65536, true},
		{"1MB", 1 << 20, true}, {"2GiB", 2 << 30, true}, {"10B", 10, true},
		{"", 0, false}, {"KB", 0, false}, {"1.5MB", 0, false}, {"-1", 0, false}, {"1TB", 0, false}, {"99999999999999GB", 0, false},
	} {
		var b ByteSize
		err := b.UnmarshalText([]byte(tc.in))
		if (err == nil) != tc.ok || (tc.ok && b != tc.want) {
			t.Errorf("%q: %d, %v; want %d ok=%v", tc.in, b, err, tc.want, tc.ok)
		}
	}
}

func TestBadConfigs(t *testing.T) {
	tests := []struct {
		file string
		want []string // every fragment must appear in the error
	}{
		{"bad_no_endpoint.yaml", []string{"endpoint: required"}},
		{"bad_endpoint_not_url.yaml", []string{"endpoint:", "not an http(s) URL"}},
		{"bad_encoding.yaml", []string{`'encoding' "avro" is not one of protobuf, json`}},
		{"bad_compression_protobuf.yaml", []string{"compression:", "json only"}},
		{"bad_compression_json.yaml", []string{"compression:", "zstd"}},
		{"bad_two_auth.yaml", []string{"at most one way to authenticate"}},
		{"bad_basic_auth_no_user.yaml", []string{"basic_auth.username"}},
		{"bad_tenant_twice.yaml", []string{"tenant_id:", "x-scope-orgid"}},
		{"bad_label_trace_id.yaml", []string{"labels.extra.trace_id", "may never be a stream label", "cardinality"}},
		{"bad_label_span_id.yaml", []string{"labels.extra.span_id", "may never be a stream label"}},
		{"bad_label_reconcile_id.yaml", []string{"labels.extra.reconcile_id", "may never be a stream label"}},
		{"bad_label_from_trace_id.yaml", []string{"labels.extra.tid", `mapped from "trace_id"`}},
		{"bad_label_from_reconcile_attr.yaml", []string{"labels.extra.rid", `mapped from "reconcile.id"`}},
		{"bad_label_name.yaml", []string{"labels.extra.node-pool", "not a valid Loki label name"}},
		{"bad_label_reserved.yaml", []string{"labels.extra.__name__", "reserved"}},
		{"bad_label_builtin.yaml", []string{"labels.extra.namespace", "already a stream label"}},
		{"bad_label_empty_attr.yaml", []string{"labels.extra.team", "empty"}},
		{"bad_too_many_labels.yaml", []string{"labels.extra:", "16 stream labels", "more than Loki's 15"}},
		{"bad_queue_size.yaml", []string{"queue_size"}},
		{"bad_limits.yaml", []string{"limits.max_line_size: 2", "limits.reject_old_samples_max_age", "limits.creation_grace_period: -1m0s must be at least 1m0s",
			"limits.out_of_order_window: 1m0s", "limits.max_label_names_per_series: 0", "limits.max_label_name_length: 3",
			"limits.max_label_value_length: 0", "limits.max_structured_metadata_size: 10", "limits.max_structured_metadata_entries_count: 0"}},
		{"bad_limits_grace_window.yaml", []string{"limits.creation_grace_period: 1h0m0s must be less than limits.out_of_order_window"}},
		{"bad_limits_label_count.yaml", []string{"labels.extra:", "8 stream labels", "limits.max_label_names_per_series"}},
		{"bad_limits_byte_size.yaml", []string{"max_line_size", `"256 kilobytes" is not a byte size`}},
		{"bad_dead_letter.yaml", []string{"dead_letter.directory:", "not an absolute path", "dead_letter.max_bytes: 1000"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := loadConfig(t, tt.file, "loki")
			if err == nil {
				t.Fatal("accepted; want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestValidateNamesEncoding: a configuration built in code (UnmarshalText
// never ran) with an unknown encoding is still refused, naming the key and
// the allowed values.
func TestValidateNamesEncoding(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.ClientConfig.Endpoint = "http://loki:3100/loki/api/v1/push"
	cfg.Encoding = "avro"
	want := `encoding: "avro" is not one of protobuf, json`
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Validate() = %v, want it to contain %q", err, want)
	}
}
