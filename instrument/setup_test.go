package instrument

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// fakeOTLPHTTP is a loopback OTLP/HTTP traces endpoint, like the sidecar's :4318.
type fakeOTLPHTTP struct {
	mu   sync.Mutex
	reqs []*coltracepb.ExportTraceServiceRequest
	srv  *httptest.Server
}

func newFakeOTLPHTTP(t *testing.T) *fakeOTLPHTTP {
	f := &fakeOTLPHTTP{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" {
			http.NotFound(w, r)
			return
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req := &coltracepb.ExportTraceServiceRequest{}
		if err := proto.Unmarshal(b, req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, req)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		_, _ = w.Write(out)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func TestNewTracerProviderExportsToSidecar(t *testing.T) {
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "service.version=from-env,k8s.pod.name=op-0")
	f := newFakeOTLPHTTP(t)
	ctx := context.Background()
	tp, err := NewTracerProvider(ctx, SetupOptions{
		ServiceName:    "my-operator",
		ServiceVersion: "v1.4.2",
		Protocol:       ProtocolHTTP,
		Endpoint:       strings.TrimPrefix(f.srv.URL, "http://"),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tp.Tracer("test").Start(ctx, "Reconcile")
	span.End()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := tp.Shutdown(sctx); err != nil {
		t.Fatalf("shutdown (flush): %v", err)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) != 1 || len(f.reqs[0].GetResourceSpans()) != 1 {
		t.Fatalf("sidecar got %d requests, want 1 with one resource", len(f.reqs))
	}
	rs := f.reqs[0].GetResourceSpans()[0]
	attrs := map[string]string{}
	for _, kv := range rs.GetResource().GetAttributes() {
		attrs[kv.GetKey()] = kv.GetValue().GetStringValue()
	}
	want := map[string]string{"service.name": "my-operator", "service.version": "v1.4.2", "k8s.pod.name": "op-0"}
	for k, v := range want {
		if attrs[k] != v {
			t.Errorf("resource %s = %q, want %q (all: %v)", k, attrs[k], v, attrs)
		}
	}
	spans := rs.GetScopeSpans()[0].GetSpans()
	if len(spans) != 1 || spans[0].GetName() != "Reconcile" {
		t.Errorf("spans %v, want one Reconcile", spans)
	}
}

func TestSetupOptionErrors(t *testing.T) {
	t.Setenv("OTEL_SERVICE_NAME", "")
	tests := []struct {
		name    string
		opts    SetupOptions
		wantErr string
	}{
		{"no service name", SetupOptions{}, "ServiceName is empty"},
		{"bad protocol", SetupOptions{ServiceName: "op", Protocol: "udp"}, `Protocol "udp" is not supported`},
		{"bad ratio", SetupOptions{ServiceName: "op", SampleRatio: 2}, "SampleRatio must be within [0, 1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Setup(context.Background(), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestSetupWithoutSidecar: the gRPC exporter connects lazily, so an operator
// starting before its sidecar is not held up.
func TestSetupWithoutSidecar(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	shutdown, err := Setup(context.Background(), SetupOptions{ServiceName: "op", Endpoint: "127.0.0.1:1"})
	if err != nil {
		t.Fatalf("Setup with no sidecar listening: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		t.Fatalf("shutdown with nothing to flush: %v", err)
	}
}
