package testservers

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Jaeger is Jaeger v2 (an OpenTelemetry Collector distribution): the real
// trace backend the end-to-end tests send OTLP to in Tempo's place (Tempo's
// module is AGPL; see docs/e2e.md).
var Jaeger = Tool{Name: "jaeger", Module: "tools/jaeger", Pkg: "github.com/jaegertracing/jaeger/cmd/jaeger"}

// JaegerServer is a running Jaeger v2 process with in-memory storage.
type JaegerServer struct {
	OTLPHTTP string // OTLP/HTTP base URL (…/v1/traces is appended by exporters)
	OTLPGRPC string // host:port of the OTLP/gRPC receiver
	QueryURL string // query service: /api/traces/<id>, /api/v3/traces/<id>, /api/services
	Dir      string
	logs     string
}

// jaegerConfig is the smallest Jaeger v2 configuration: OTLP in, memory
// storage, the query service, every port on loopback; the collector's own
// telemetry is off so parallel instances do not fight over :8888.
const jaegerConfig = `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 200000
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: %s
    grpc:
      endpoint: %s
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
      http:
        endpoint: %s
processors:
  batch:
    timeout: 200ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`

// StartJaeger starts Jaeger v2 on free loopback ports; it is stopped when the
// test ends. It returns once the query service answers and the OTLP/HTTP
// receiver accepts requests.
func StartJaeger(t testing.TB) *JaegerServer {
	t.Helper()
	bin := Jaeger.MustPath(t)
	dir := t.TempDir()
	queryHTTP, queryGRPC, otlpGRPC, otlpHTTP := FreeAddr(t), FreeAddr(t), FreeAddr(t), FreeAddr(t)
	cfg := filepath.Join(dir, "jaeger.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(jaegerConfig, queryHTTP, queryGRPC, otlpGRPC, otlpHTTP)), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &JaegerServer{
		OTLPHTTP: "http://" + otlpHTTP, OTLPGRPC: otlpGRPC, QueryURL: "http://" + queryHTTP,
		Dir: dir, logs: filepath.Join(dir, "jaeger.log"),
	}
	startProcess(t, "jaeger", bin, []string{"--config", cfg}, s.logs, s.QueryURL+"/api/services", 90*time.Second)
	// Extensions start before pipelines: wait for the receiver too. An empty
	// OTLP/HTTP export request is valid and answers 200.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Post(s.OTLPHTTP+"/v1/traces", "application/json", http.NoBody)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("jaeger OTLP/HTTP receiver at %s not accepting: %v\n%s", s.OTLPHTTP, err, s.Logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s
}

// Logs returns what the server printed so far (for failure messages).
func (s *JaegerServer) Logs() string { return tail(s.logs) }

// HasTrace tells whether Jaeger stores the trace with the given 32-hex id.
func (s *JaegerServer) HasTrace(traceID string) (bool, error) {
	n, err := s.SpanCount(traceID)
	return n > 0, err
}

// SpanCount returns how many spans of the trace Jaeger stores (0 when it does
// not know the trace). It reads the query service's /api/traces/<id>.
func (s *JaegerServer) SpanCount(traceID string) (int, error) {
	resp, err := http.Get(s.QueryURL + "/api/traces/" + traceID)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return 0, nil
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("jaeger /api/traces/%s: status %d: %.300s", traceID, resp.StatusCode, body)
	}
	var r struct {
		Data []struct {
			TraceID string `json:"traceID"`
			Spans   []struct {
				SpanID string `json:"spanID"`
			} `json:"spans"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, fmt.Errorf("jaeger /api/traces/%s: %v", traceID, err)
	}
	n := 0
	for _, d := range r.Data {
		n += len(d.Spans)
	}
	return n, nil
}
