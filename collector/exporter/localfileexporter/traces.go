package localfileexporter

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// tracesConsumer writes each batch as one OTLP JSON ExportTraceServiceRequest
// line (the collector file exporter's format).
func tracesConsumer(w *fileWriter) func(context.Context, ptrace.Traces) error {
	var m ptrace.JSONMarshaler
	return func(_ context.Context, td ptrace.Traces) error {
		if td.SpanCount() == 0 {
			return nil
		}
		b, err := m.MarshalTraces(td)
		if err != nil {
			return consumererror.NewPermanent(fmt.Errorf("marshaling traces to OTLP JSON: %w", err))
		}
		if bytes.ContainsAny(b, "\r\n") {
			var c bytes.Buffer
			if err := json.Compact(&c, b); err != nil {
				return consumererror.NewPermanent(fmt.Errorf("compacting OTLP JSON: %w", err))
			}
			b = c.Bytes()
		}
		b = append(b, '\n')
		return w.write(b, []int{len(b)})
	}
}
