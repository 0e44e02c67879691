package operatorenrichprocessor

import (
	"strconv"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/opsight/opsight/internal/jsonscan"
)

// This file routes the members a line yields (JSON, klog/logfmt pairs or a
// map body) to the fields the processor sets.

// Ranks of the places a trace id can come from; lower wins when a line has
// several (an explicit id field beats traceparent beats Datadog's decimal).
const (
	rankNone        = 0
	rankField       = 1
	rankTraceparent = 2
	rankDatadog     = 3
)

// fields is what one line yields. Strings are substrings of the line (no
// copy) unless the JSON value had escapes.
type fields struct {
	ts    int64 // unix nanoseconds
	hasTS bool
	level level

	msg         string
	controller  string
	reconcileID string
	objNS       string // top-level "namespace" (controller-runtime)
	objName     string // top-level "name"
	kindNS      string // "<Kind>":{"namespace":…}
	kindName    string // "<Kind>":{"name":…}

	traceID   pcommon.TraceID
	traceHex  string // lowercase hex as found in the line, when it already was
	traceRank int8
	spanID    pcommon.SpanID
	spanHex   string
	spanRank  int8

	// klog's JSON format has no level: "v" (verbosity) on info lines, "err"
	// on error lines, and "caller" always.
	klogV     int64
	hasV      bool
	hasErr    bool
	hasCaller bool
}

func (f *fields) objectNamespace() string {
	if f.objNS != "" {
		return f.objNS
	}
	return f.kindNS
}

func (f *fields) objectName() string {
	if f.objName != "" {
		return f.objName
	}
	return f.kindName
}

// set routes one scalar member. raw is the JSON text of a number/literal or
// the undecoded content of a string (esc: it has escapes).
func (sc *scanner) set(depth int, parent, key, raw string, esc bool, kind valueKind) {
	f := sc.f
	str := func() string {
		if esc {
			return jsonscan.Unescape(raw)
		}
		return raw
	}
	if key == sc.logKey {
		if f.reconcileID == "" && kind != kindLiteral {
			f.reconcileID = str()
		}
		return
	}
	if depth == 1 {
		setNested(f, parent, key, str, kind)
		return
	}
	switch key {
	case "ts", "time", "@timestamp", "timestamp":
		if !f.hasTS {
			f.ts, f.hasTS = parseTimestamp(str(), kind)
		}
	case "level", "lvl", "severity":
		if f.level == levelUnknown {
			f.level = parseLevel(str(), kind)
		}
	case "msg", "message":
		if f.msg == "" && kind == kindString {
			f.msg = str()
		}
	case "controller":
		if f.controller == "" && kind == kindString {
			f.controller = str()
		}
	case "namespace":
		if kind == kindString {
			f.objNS = str()
		}
	case "name":
		if kind == kindString {
			f.objName = str()
		}
	case "v":
		if kind == kindNumber {
			if v, err := strconv.ParseInt(raw, 10, 64); err == nil {
				f.klogV, f.hasV = v, true
			}
		}
	case "err":
		f.hasErr = kind != kindLiteral || raw != "null"
	case "caller":
		f.hasCaller = true
	default:
		setTraceKey(f, key, str, kind)
	}
}

func setNested(f *fields, parent, key string, str func() string, kind valueKind) {
	switch {
	case parent == "trace" && key == "id":
		f.setTrace(str(), rankField)
		return
	case parent == "span" && key == "id":
		f.setSpan(str(), rankField)
		return
	case parent == "dd" && key == "trace_id":
		f.setDatadogTrace(str())
		return
	case parent == "dd" && key == "span_id":
		f.setDatadogSpan(str())
		return
	case key == "name" || key == "namespace":
		// controller-runtime logs the object as "<Kind>":{"name","namespace"}.
		if kind == kindString && parent != "" && (('A' <= parent[0] && parent[0] <= 'Z') || parent == "object") {
			if key == "name" {
				if f.kindName == "" {
					f.kindName = str()
				}
			} else if f.kindNS == "" {
				f.kindNS = str()
			}
		}
		return
	}
	setTraceKey(f, key, str, kind)
}

func setTraceKey(f *fields, key string, str func() string, kind valueKind) {
	switch key {
	case "trace_id", "traceId", "traceID", "trace.id", "otelTraceID", "traceid":
		if kind == kindString {
			f.setTrace(str(), rankField)
		}
	case "span_id", "spanId", "spanID", "span.id", "otelSpanID", "spanid":
		if kind == kindString {
			f.setSpan(str(), rankField)
		}
	case "traceparent":
		if kind == kindString {
			f.setTraceparent(str())
		}
	case "dd.trace_id":
		f.setDatadogTrace(str())
	case "dd.span_id":
		f.setDatadogSpan(str())
	}
}

func (f *fields) setTrace(v string, rank int8) {
	if f.traceRank != rankNone && f.traceRank <= rank {
		return
	}
	if id, lower, ok := parseTraceID(v); ok {
		f.traceID, f.traceRank = id, rank
		f.traceHex = ""
		if lower {
			f.traceHex = v
		}
	}
}

func (f *fields) setSpan(v string, rank int8) {
	if f.spanRank != rankNone && f.spanRank <= rank {
		return
	}
	if id, lower, ok := parseSpanID(v); ok {
		f.spanID, f.spanRank = id, rank
		f.spanHex = ""
		if lower {
			f.spanHex = v
		}
	}
}

func (f *fields) setTraceparent(v string) {
	t, s, ok := parseTraceparent(v)
	if !ok {
		return
	}
	if f.traceRank == rankNone || f.traceRank > rankTraceparent {
		f.traceID, f.traceRank, f.traceHex = t, rankTraceparent, ""
	}
	if f.spanRank == rankNone || f.spanRank > rankTraceparent {
		f.spanID, f.spanRank, f.spanHex = s, rankTraceparent, ""
	}
}

func (f *fields) setDatadogTrace(v string) {
	if f.traceRank != rankNone {
		return
	}
	if id, ok := parseDatadogTraceID(v); ok {
		f.traceID, f.traceRank, f.traceHex = id, rankDatadog, ""
	}
}

func (f *fields) setDatadogSpan(v string) {
	if f.spanRank != rankNone {
		return
	}
	if id, ok := parseDatadogSpanID(v); ok {
		f.spanID, f.spanRank, f.spanHex = id, rankDatadog, ""
	}
}
