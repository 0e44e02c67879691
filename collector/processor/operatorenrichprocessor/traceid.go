package operatorenrichprocessor

import (
	"encoding/hex"
	"strconv"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// parseTraceID accepts 32 hex digits (either case). lower reports that v is
// already the canonical lowercase form (so it can be reused without a copy).
// All-zero is the W3C "invalid" id: absent.
func parseTraceID(v string) (id pcommon.TraceID, lower, ok bool) {
	if len(v) != 32 {
		return id, false, false
	}
	lower, ok = decodeHex(id[:], v)
	return id, lower, ok && !id.IsEmpty()
}

// parseSpanID accepts 16 hex digits; all-zero is absent.
func parseSpanID(v string) (id pcommon.SpanID, lower, ok bool) {
	if len(v) != 16 {
		return id, false, false
	}
	lower, ok = decodeHex(id[:], v)
	return id, lower, ok && !id.IsEmpty()
}

func decodeHex(dst []byte, v string) (lower, ok bool) {
	lower = true
	for i := 0; i < len(dst); i++ {
		a, b := v[2*i], v[2*i+1]
		hi, lo := unhex(a), unhex(b)
		if hi < 0 || lo < 0 {
			return false, false
		}
		if a >= 'A' && a <= 'F' || b >= 'A' && b <= 'F' {
			lower = false
		}
		dst[i] = byte(hi<<4 | lo)
	}
	return lower, true
}

// parseTraceparent parses a W3C traceparent: "vv-<32 hex>-<16 hex>-ff".
// Version ff is invalid; future versions may append fields after the flags.
func parseTraceparent(v string) (t pcommon.TraceID, s pcommon.SpanID, ok bool) {
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' || (len(v) > 55 && v[55] != '-') {
		return t, s, false
	}
	if unhex(v[0]) < 0 || unhex(v[1]) < 0 || unhex(v[53]) < 0 || unhex(v[54]) < 0 {
		return t, s, false
	}
	if lowerASCII(v[0]) == 'f' && lowerASCII(v[1]) == 'f' {
		return t, s, false
	}
	if v[0] == '0' && v[1] == '0' && len(v) != 55 {
		return t, s, false
	}
	t, _, okT := parseTraceID(v[3:35])
	s, _, okS := parseSpanID(v[36:52])
	if !okT || !okS {
		return pcommon.TraceID{}, pcommon.SpanID{}, false
	}
	return t, s, true
}

// parseDatadogTraceID: Datadog logs the low 64 bits as a decimal (zero-pad
// to 128 bits), or all 128 bits as 32 hex digits when 128-bit ids are logged.
func parseDatadogTraceID(v string) (id pcommon.TraceID, ok bool) {
	if len(v) == 32 {
		id, _, ok = parseTraceID(v)
		return id, ok
	}
	x, ok := parseDecimalID(v)
	if !ok {
		return id, false
	}
	for i := 0; i < 8; i++ {
		id[15-i] = byte(x >> (8 * i))
	}
	return id, true
}

func parseDatadogSpanID(v string) (id pcommon.SpanID, ok bool) {
	x, ok := parseDecimalID(v)
	if !ok {
		return id, false
	}
	for i := 0; i < 8; i++ {
		id[7-i] = byte(x >> (8 * i))
	}
	return id, true
}

// parseDecimalID parses an unsigned 64-bit decimal; 0 is absent.
func parseDecimalID(v string) (uint64, bool) {
	if v == "" || len(v) > 20 {
		return 0, false
	}
	for i := 0; i < len(v); i++ {
		if !isDigit(v[i]) {
			return 0, false
		}
	}
	x, err := strconv.ParseUint(v, 10, 64)
	return x, err == nil && x != 0
}

// traceHex returns the lowercase hex of id, reusing found when the line
// already had it in that form (no allocation).
func traceHex(id pcommon.TraceID, found string) string {
	if found != "" {
		return found
	}
	return hex.EncodeToString(id[:])
}

func spanHex(id pcommon.SpanID, found string) string {
	if found != "" {
		return found
	}
	return hex.EncodeToString(id[:])
}
