package online

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/triage/internal/data"
)

// Tempo answers trace-by-id requests in protobuf's JSON mapping, not OTLP
// JSON: ids are base64, kinds and status codes enum names (recorded in
// testdata/tempo_trace_by_id_v2.json). These types read both.
type tempoTrace struct {
	Trace *struct {
		ResourceSpans []tempoRS `json:"resourceSpans"`
	} `json:"trace"` // /api/v2/traces
	Batches []tempoRS `json:"batches"` // /api/traces (v1)
}

type tempoRS struct {
	Resource struct {
		Attributes []tempoKV `json:"attributes"`
	} `json:"resource"`
	ScopeSpans []struct {
		Spans []tempoSpan `json:"spans"`
	} `json:"scopeSpans"`
	InstrumentationLibrarySpans []struct { // older Tempo
		Spans []tempoSpan `json:"spans"`
	} `json:"instrumentationLibrarySpans"`
}

type tempoKV struct {
	Key   string `json:"key"`
	Value struct {
		StringValue *string `json:"stringValue"`
	} `json:"value"`
}

type tempoSpan struct {
	TraceID      string          `json:"traceId"`
	SpanID       string          `json:"spanId"`
	ParentSpanID string          `json:"parentSpanId"`
	Name         string          `json:"name"`
	Kind         json.RawMessage `json:"kind"`
	Start        string          `json:"startTimeUnixNano"`
	End          string          `json:"endTimeUnixNano"`
	Status       struct {
		Code json.RawMessage `json:"code"`
	} `json:"status"`
}

// Trace fetches one trace (Tempo's /api/v2/traces/<id>) as spans.
func (c Client) Trace(ctx context.Context, id string) ([]data.Span, error) {
	var t tempoTrace
	if err := c.get(ctx, "/api/v2/traces/"+id, nil, nil, &t); err != nil {
		return nil, err
	}
	return tempoSpans(t)
}

// ParseTempoTrace decodes a trace-by-id answer (v1 or v2).
func ParseTempoTrace(b []byte) ([]data.Span, error) { return decode(b, tempoSpans) }

// tempoSpans converts a decoded answer.
func tempoSpans(t tempoTrace) ([]data.Span, error) {
	rss := t.Batches
	if t.Trace != nil {
		rss = append(rss, t.Trace.ResourceSpans...)
	}
	var out []data.Span
	for _, rs := range rss {
		res := &data.Resource{}
		for _, kv := range rs.Resource.Attributes {
			if kv.Value.StringValue == nil {
				continue
			}
			v := *kv.Value.StringValue
			switch kv.Key {
			case conventions.AttrServiceName:
				res.Service = v
			case conventions.AttrServiceVersion:
				res.Revision = v
			case conventions.AttrNamespace:
				res.Namespace = v
			case conventions.AttrCluster:
				res.Cluster = v
			case conventions.AttrPod:
				res.Pod = v
			case conventions.AttrZone:
				res.Zone = v
			}
		}
		spans := func(yield func(tempoSpan)) {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					yield(s)
				}
			}
			for _, ss := range rs.InstrumentationLibrarySpans {
				for _, s := range ss.Spans {
					yield(s)
				}
			}
		}
		var err error
		spans(func(s tempoSpan) {
			if err != nil {
				return
			}
			sp := data.Span{Name: s.Name, Res: res}
			if err = decodeID(sp.Trace[:], s.TraceID); err != nil {
				err = fmt.Errorf("span %q: traceId %q: %v", s.Name, s.TraceID, err)
				return
			}
			if err = decodeID(sp.ID[:], s.SpanID); err != nil {
				err = fmt.Errorf("span %q: spanId %q: %v", s.Name, s.SpanID, err)
				return
			}
			if s.ParentSpanID != "" {
				if err = decodeID(sp.Parent[:], s.ParentSpanID); err != nil {
					err = fmt.Errorf("span %q: parentSpanId %q: %v", s.Name, s.ParentSpanID, err)
					return
				}
			}
			sp.Start, _ = strconv.ParseInt(s.Start, 10, 64)
			sp.End, _ = strconv.ParseInt(s.End, 10, 64)
			sp.Kind = enumName(s.Kind, kindNames, "SPAN_KIND_UNSPECIFIED")
			sp.Error = enumName(s.Status.Code, statusNames, "") == "STATUS_CODE_ERROR"
			out = append(out, sp)
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

var kindNames = conventions.SpanKindNames
var statusNames = []string{"STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"}

// enumName reads an enum given as its name or its number.
func enumName(raw json.RawMessage, names []string, def string) string {
	if len(raw) == 0 {
		return def
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n int
	if json.Unmarshal(raw, &n) == nil && n >= 0 && n < len(names) {
		return names[n]
	}
	return def
}

// decodeID reads an id as hex (OTLP JSON; Tempo's search trims leading
// zeros, so shorter hex is padded) or base64 (protobuf JSON).
func decodeID(dst []byte, s string) error {
	if s == "" {
		return nil
	}
	if len(s) <= 2*len(dst) && isHex(s) {
		s = strings.Repeat("0", 2*len(dst)-len(s)) + s
		_, err := hex.Decode(dst, []byte(s))
		return err
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	if len(b) != len(dst) {
		return fmt.Errorf("%d bytes, want %d", len(b), len(dst))
	}
	copy(dst, b)
	return nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
