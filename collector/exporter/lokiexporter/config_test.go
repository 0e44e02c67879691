package lokiexporter

import (
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configcompression"

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

	full, err := loadConfig(t, "config.yaml", "loki/full")
	if err != nil {
		t.Fatalf("full config rejected: %v", err)
	}
	if full.Encoding != EncodingJSON || full.ClientConfig.Compression != configcompression.TypeGzip ||
		full.TenantID != "team-a" || full.ClientConfig.Timeout != 10*time.Second {
		t.Errorf("full: %+v", full)
	}
	if ba := full.BasicAuth.Get(); ba == nil || ba.Username != "opsight" || string(ba.Password) != "s3cret" {
		t.Errorf("basic_auth: %+v", ba)
	}
	if full.Labels.Extra["deployment"] != "k8s.deployment.name" || len(full.Labels.Extra) != 2 {
		t.Errorf("labels.extra: %v", full.Labels.Extra)
	}
	fq := full.QueueConfig.Get()
	if fq.StorageID == nil || *fq.StorageID != component.MustNewID("file_storage") || fq.QueueSize != 5000 {
		t.Errorf("sending_queue: %+v", fq)
	}
	if full.RetryConfig.InitialInterval != 2*time.Second || full.RetryConfig.MaxElapsedTime != 0 {
		t.Errorf("retry_on_failure: %+v", full.RetryConfig)
	}
}

func TestBadConfigs(t *testing.T) {
	tests := []struct {
		file string
		want []string // every fragment must appear in the error
	}{
		{"bad_no_endpoint.yaml", []string{"endpoint: required"}},
		{"bad_endpoint_not_url.yaml", []string{"endpoint:", "not an http(s) URL"}},
		{"bad_encoding.yaml", []string{"encoding:", "avro"}},
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
