package operatorenrichprocessor

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

const (
	tid   = "4bf92f3577b34da6a3ce929d0e0e4736"
	sid   = "00f067aa0ba902b7"
	ddTID = "0000000000000000" + "00f067aa0ba902b7" // 67667974448284343 zero-padded
	ddSID = "00f067aa0ba902b7"
	ddDec = "67667974448284343"
)

func hexOf(b []byte) string { return hex.EncodeToString(b) }

func TestScanTraceSpellings(t *testing.T) {
	tests := []struct {
		name, line          string
		wantTrace, wantSpan string
	}{
		{"trace_id", `{"trace_id":"` + tid + `","span_id":"` + sid + `"}`, tid, sid},
		{"traceId", `{"traceId":"` + tid + `","spanId":"` + sid + `"}`, tid, sid},
		{"traceID", `{"traceID":"` + tid + `","spanID":"` + sid + `"}`, tid, sid},
		{"trace.id", `{"trace.id":"` + tid + `","span.id":"` + sid + `"}`, tid, sid},
		{"trace nested", `{"trace":{"id":"` + tid + `"},"span":{"id":"` + sid + `"}}`, tid, sid},
		{"otelTraceID", `{"otelTraceID":"` + tid + `","otelSpanID":"` + sid + `"}`, tid, sid},
		{"dd dotted decimal", `{"dd.trace_id":"` + ddDec + `","dd.span_id":"` + ddDec + `"}`, ddTID, ddSID},
		{"dd number", `{"dd.trace_id":` + ddDec + `,"dd.span_id":` + ddDec + `}`, ddTID, ddSID},
		{"dd nested", `{"dd":{"trace_id":"` + ddDec + `","span_id":"` + ddDec + `"}}`, ddTID, ddSID},
		{"dd 128-bit hex", `{"dd.trace_id":"` + tid + `"}`, tid, ""},
		{"traceparent", `{"traceparent":"00-` + tid + `-` + sid + `-01"}`, tid, sid},
		{"nested otel", `{"otel":{"trace_id":"` + tid + `","span_id":"` + sid + `"}}`, tid, sid},
		{"uppercase normalised", `{"trace_id":"` + strings.ToUpper(tid) + `","span_id":"` + strings.ToUpper(sid) + `"}`, tid, sid},
		{"all-zero is absent", `{"trace_id":"00000000000000000000000000000000","span_id":"0000000000000000"}`, "", ""},
		{"wrong length", `{"trace_id":"` + tid[:31] + `","span_id":"` + sid + `0"}`, "", ""},
		{"not hex", `{"trace_id":"` + tid[:31] + `g"}`, "", ""},
		{"traceparent version ff", `{"traceparent":"ff-` + tid + `-` + sid + `-01"}`, "", ""},
		{"field beats traceparent", `{"traceparent":"00-` + strings.Repeat("1", 32) + `-` + strings.Repeat("2", 16) + `-01","trace_id":"` + tid + `","span_id":"` + sid + `"}`, tid, sid},
		{"dd zero", `{"dd.trace_id":"0"}`, "", ""},
		{"dd overflow", `{"dd.trace_id":"18446744073709551616"}`, "", ""},
		{"too deep not looked at", `{"a":{"b":{"trace_id":"` + tid + `"}}}`, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f fields
			if r := scanLine(tt.line, "reconcileID", &f); r != "" {
				t.Fatalf("reason %q for a valid line", r)
			}
			gotT, gotS := "", ""
			if f.traceRank != rankNone {
				gotT = traceHex(f.traceID, f.traceHex)
			}
			if f.spanRank != rankNone {
				gotS = spanHex(f.spanID, f.spanHex)
			}
			if gotT != tt.wantTrace || gotS != tt.wantSpan {
				t.Errorf("trace %q span %q, want %q %q", gotT, gotS, tt.wantTrace, tt.wantSpan)
			}
		})
	}
}

func TestScanControllerRuntimeLine(t *testing.T) {
	line := `{"level":"info","ts":"2024-05-01T10:00:00.123Z","logger":"controller.foo","msg":"Reconciling \"bar\"","controller":"foo","controllerGroup":"apps.example.com","controllerKind":"Foo","Foo":{"name":"bar","namespace":"default"},"namespace":"default","name":"bar","reconcileID":"6b3a0a5e-2d2c-4d7e-9c1e-9a3b1b1f2e11"}`
	var f fields
	if r := scanLine(line, "reconcileID", &f); r != "" {
		t.Fatalf("reason %q", r)
	}
	want := time.Date(2024, 5, 1, 10, 0, 0, 123e6, time.UTC).UnixNano()
	if !f.hasTS || f.ts != want {
		t.Errorf("ts = %d, want %d", f.ts, want)
	}
	if f.level != levelInfo || f.msg != `Reconciling "bar"` || f.controller != "foo" || f.reconcileID != "6b3a0a5e-2d2c-4d7e-9c1e-9a3b1b1f2e11" {
		t.Errorf("fields %+v", f)
	}
	if f.objectNamespace() != "default" || f.objectName() != "bar" {
		t.Errorf("object %q/%q", f.objectNamespace(), f.objectName())
	}

	// Only the nested "<Kind>" form (older controller-runtime).
	f = fields{}
	scanLine(`{"msg":"x","Pod":{"name":"p1","namespace":"ns1"},"other":{"name":"nope"}}`, "reconcileID", &f)
	if f.objectNamespace() != "ns1" || f.objectName() != "p1" {
		t.Errorf("nested kind object %q/%q", f.objectNamespace(), f.objectName())
	}
	// A custom correlation key.
	f = fields{}
	scanLine(`{"reconcile_id":"abc","reconcileID":"no"}`, "reconcile_id", &f)
	if f.reconcileID != "abc" {
		t.Errorf("custom key: %q", f.reconcileID)
	}
}
