package e2e

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/opsight/opsight/internal/testservers"
)

// TestTracesBackendDownThenUp: the operator sends spans while the trace
// backend (a real Jaeger behind a fault proxy) refuses connections; once it
// is back every span arrives, with the revision stamped, and nothing was
// dropped.
func TestTracesBackendDownThenUp(t *testing.T) {
	const traces, perBatch = 1500, 50
	jg := testservers.StartJaeger(t)
	proxy := newFaultProxy(t, jg.OTLPHTTP)
	proxy.set(modeRefuse)

	dir := t.TempDir()
	otlpAddr := testservers.FreeAddr(t)
	sc := newSidecar(t, map[string]string{
		"OPSIGHT_LOG_INCLUDE":    filepath.Join(dir, "pods", "*", "*", "*.log"),
		"OPSIGHT_STATE_DIR":      filepath.Join(dir, "state"),
		"OPSIGHT_TRACES_URL":     proxy.URL(),
		"OPSIGHT_REVISION":       "v2.0.0",
		"OPSIGHT_OTLP_HTTP_ADDR": otlpAddr,
	})
	sc.start()
	waitOTLP(t, sc, otlpAddr)

	var ids []string
	for b := 0; b < traces/perBatch; b++ {
		td := ptrace.NewTraces()
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", "outage-operator")
		ss := rs.ScopeSpans().AppendEmpty().Spans()
		for i := 0; i < perBatch; i++ {
			n := uint64(b*perBatch + i + 1)
			var tid pcommon.TraceID
			binary.BigEndian.PutUint64(tid[:8], 0xabcdef0000000000|n)
			binary.BigEndian.PutUint64(tid[8:], n)
			s := ss.AppendEmpty()
			s.SetTraceID(tid)
			s.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, byte(i + 1)})
			s.SetName("Reconcile")
			s.SetKind(ptrace.SpanKindServer)
			now := time.Now()
			s.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-20 * time.Millisecond)))
			s.SetEndTimestamp(pcommon.NewTimestampFromTime(now))
			ids = append(ids, hex.EncodeToString(tid[:]))
		}
		body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Post("http://"+otlpAddr+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("sidecar refused spans during the backend outage: status %d", resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The backend has been down the whole time: nothing can have arrived.
	if ok, _ := jg.HasTrace(ids[0]); ok {
		t.Fatal("a span reached Jaeger through a refusing proxy: the outage was not real")
	}
	queued, _ := sc.metricValue("opsight_export_queue_size", `exporter="otlp_http/traces"`)
	proxy.set(modePass)

	missing := ids
	waitFor(90*time.Second, func() bool {
		var still []string
		for _, id := range missing {
			if ok, err := jg.HasTrace(id); err != nil || !ok {
				still = append(still, id)
			}
		}
		missing = still
		return len(missing) == 0
	})
	dropped, err := sc.metricValue("opsight_export_dropped_total", `exporter="otlp_http/traces"`)
	if err != nil {
		t.Fatal(err)
	}
	sc.stop(syscall.SIGTERM)
	t.Logf("traces %d, queued while down %.0f requests, missing after recovery %d, dropped %.0f", traces, queued, len(missing), dropped)
	if queued == 0 {
		t.Error("opsight_export_queue_size was 0 during the outage: spans were not held in the queue")
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d traces never reached Jaeger after the outage (first: %s)\n%s", len(missing), traces, missing[0], sc.logs())
	}
	if dropped != 0 {
		t.Errorf("opsight_export_dropped_total = %.0f, want 0", dropped)
	}
	// The sidecar stamped the revision on the span resource (Jaeger: process tags).
	resp, err := http.Get(jg.QueryURL + "/api/traces/" + ids[len(ids)-1])
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr struct {
		Data []struct {
			Processes map[string]struct {
				Tags []struct {
					Key   string `json:"key"`
					Value any    `json:"value"`
				} `json:"tags"`
			} `json:"processes"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		t.Fatal(err)
	}
	version := ""
	for _, d := range tr.Data {
		for _, p := range d.Processes {
			for _, tag := range p.Tags {
				if tag.Key == "service.version" {
					version, _ = tag.Value.(string)
				}
			}
		}
	}
	if version != "v2.0.0" {
		t.Errorf("service.version on the stored span = %q, want the configured revision v2.0.0", version)
	}
}
