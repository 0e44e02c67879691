package operatorenrichprocessor

import (
	"strings"
	"testing"
)

// FuzzNormaliseTraceID: whatever the input, an accepted id is 32/16 hex
// digits equal to the input ignoring case and never all-zero.
func FuzzNormaliseTraceID(f *testing.F) {
	f.Add(tid, sid, "00-"+tid+"-"+sid+"-01", ddDec)
	f.Add(strings.ToUpper(tid), "0000000000000000", "ff-"+tid+"-"+sid+"-01", "0")
	f.Fuzz(func(t *testing.T, trace, span, traceparent, dec string) {
		if id, lower, ok := parseTraceID(trace); ok {
			h := hexOf(id[:])
			if !strings.EqualFold(h, trace) || id.IsEmpty() || (lower && h != trace) {
				t.Fatalf("parseTraceID(%q) = %s lower=%v", trace, h, lower)
			}
		}
		if id, _, ok := parseSpanID(span); ok {
			if h := hexOf(id[:]); !strings.EqualFold(h, span) || id.IsEmpty() {
				t.Fatalf("parseSpanID(%q) = %s", span, h)
			}
		}
		if tr, sp, ok := parseTraceparent(traceparent); ok {
			if !strings.EqualFold(hexOf(tr[:]), traceparent[3:35]) || !strings.EqualFold(hexOf(sp[:]), traceparent[36:52]) || tr.IsEmpty() || sp.IsEmpty() {
				t.Fatalf("parseTraceparent(%q) = %x %x", traceparent, tr, sp)
			}
		}
		if id, ok := parseDatadogSpanID(dec); ok {
			if id.IsEmpty() || len(hexOf(id[:])) != 16 {
				t.Fatalf("parseDatadogSpanID(%q) = %x", dec, id)
			}
		}
		if id, ok := parseDatadogTraceID(dec); ok && len(dec) != 32 {
			if id.IsEmpty() || hexOf(id[:8]) != "0000000000000000" {
				t.Fatalf("parseDatadogTraceID(%q) = %x: decimal ids are 64-bit, zero-padded", dec, id)
			}
		}
	})
}
